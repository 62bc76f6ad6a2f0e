"""API-key credentials: a request signed exactly as the server verifies it.

The canonical string and the HMAC come from the server's own ``cloudiag.api.signing`` (pure
code, no web framework), so the client and the server cannot drift apart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cloudiag.api.signing import canonical_strings, sign

__all__ = ["ApiKey", "signature"]

_EXPIRY_NAMES = frozenset({"signatureversion", "expires"})
_last_expires_us = 0
_expires_lock = threading.Lock()


def signature(params: Mapping[str, str], secret: str) -> str:
    """CloudStack's signature of ``params`` (every parameter but ``signature``) with ``secret``.

    Raises ``ValueError`` for a parameter name that cannot be signed.
    """
    return sign(canonical_strings(list(params.items()))[0], secret)


def _unique_expires(lifetime: float) -> str:
    """``lifetime`` seconds from now, to the microsecond, never the same twice in a process.

    The server accepts a signature of a command that changes something once: two identical
    calls (the same ping, twice) must differ somewhere, and expires is the parameter made
    to differ. Threads share the client, hence the lock.
    """
    global _last_expires_us
    with _expires_lock:
        micros = max(time.time_ns() // 1000 + int(lifetime * 1e6), _last_expires_us + 1)
        _last_expires_us = micros
    when = datetime.fromtimestamp(micros // 1_000_000, UTC).replace(microsecond=micros % 1_000_000)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class ApiKey:
    """A user's API key and secret key."""

    apikey: str
    secretkey: str = field(repr=False)
    #: Seconds each signature stays valid (signatureVersion 3): a captured request is
    #: worthless after that. At most the server's signature_max_lifetime (1 h by default).
    lifetime: float = 300.0

    def sign(self, params: Mapping[str, str]) -> dict[str, str]:
        """``params`` with ``apiKey``, ``signatureVersion``, ``expires`` (unless ``params``
        has its own) and their ``signature`` added."""
        query = {**params, "apiKey": self.apikey}
        if not _EXPIRY_NAMES & {name.lower() for name in query}:
            query |= {"signatureVersion": "3", "expires": _unique_expires(self.lifetime)}
        query["signature"] = signature(query, self.secretkey)
        return query
