"""A client's credentials and TLS on the bus, as nats-py takes them."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BusAccess:
    """Who a client is on the bus and how it trusts the server: an nkey seed (a file, or
    the seed itself), and TLS (a CA to check the server, a certificate of its own)."""

    nkey_seed_file: Path | None = None
    nkey_seed: str | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None

    def tls_context(self) -> ssl.SSLContext | None:
        """The client's TLS context, when a CA or a certificate is configured."""
        if self.tls_ca is None and self.tls_cert is None:
            return None
        context = ssl.create_default_context(
            cafile=str(self.tls_ca) if self.tls_ca is not None else None
        )
        if self.tls_cert is not None:
            context.load_cert_chain(
                str(self.tls_cert), str(self.tls_key) if self.tls_key is not None else None
            )
        return context

    def options(self) -> dict[str, Any]:
        """nats.connect's keyword arguments for these credentials and this TLS."""
        found: dict[str, Any] = {}
        if self.nkey_seed_file is not None:
            found["nkeys_seed"] = str(self.nkey_seed_file)
        elif self.nkey_seed is not None:
            found["nkeys_seed_str"] = self.nkey_seed
        context = self.tls_context()
        if context is not None:
            found["tls"] = context
        return found
