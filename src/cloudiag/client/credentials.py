"""API-key credentials: a request signed exactly as the server verifies it.

The canonical string and the HMAC come from the server's own ``cloudiag.api.signing`` (pure
code, no web framework), so the client and the server cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cloudiag.api.signing import canonical_strings, sign

__all__ = ["ApiKey", "signature"]


def signature(params: Mapping[str, str], secret: str) -> str:
    """CloudStack's signature of ``params`` (every parameter but ``signature``) with ``secret``.

    Raises ``ValueError`` for a parameter name that cannot be signed.
    """
    return sign(canonical_strings(list(params.items()))[0], secret)


@dataclass(frozen=True)
class ApiKey:
    """A user's API key and secret key."""

    apikey: str
    secretkey: str = field(repr=False)

    def sign(self, params: Mapping[str, str]) -> dict[str, str]:
        """``params`` with ``apiKey`` and their ``signature`` added."""
        query = {**params, "apiKey": self.apikey}
        query["signature"] = signature(query, self.secretkey)
        return query
