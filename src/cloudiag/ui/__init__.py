"""The web UI: static files only (HTML, CSS, ES modules), served by `cloudiag serve` at `/`.

There is no build step: the browser loads the modules as they are. The UI is a client of
`/client/api` (session login) and `/client/stream` like any other client.
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

#: Security headers worth sending with the static files (the page also carries its CSP in
#: a meta tag; `frame-ancestors` only works as a header).
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def static_dir() -> Path:
    """The folder of the UI's static files (index.html at its root)."""
    return Path(__file__).resolve().parent / "static"


class UiFiles(StaticFiles):
    """The UI's static files with its security headers, revalidated on every load.

    No build step means no content hashes in file names, so the browser must ask again
    (cheap: ETag/304) or an upgrade would run old modules against a new server.
    """

    def __init__(self) -> None:
        super().__init__(directory=static_dir(), html=True)

    async def get_response(self, path: str, scope: Scope) -> Response:
        """The file at ``path`` (index.html for ``/``) with the UI's headers."""
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        response.headers["cache-control"] = "no-cache"
        return response
