"""An API answer read as CloudStack clients read it: the body under its envelope, or the
error it carries."""

from __future__ import annotations

from typing import Any

import httpx

from cloudiag.client.errors import ApiCallError

__all__ = ["read_body"]


def read_body(command: str, response: httpx.Response) -> dict[str, Any]:
    """The body of a successful answer to ``command`` (under ``<command>response``).

    Raises ``ApiCallError`` with the server's codes for an error answer, and with the HTTP
    status for an answer that is not the API's (a proxy's error page, say).
    """
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.is_success and isinstance(data, dict):
        body = data.get(f"{command.lower()}response")
        if isinstance(body, dict):
            return body
    # An error sits under the command's envelope, or under errorresponse when the server
    # could not tell the command.
    if isinstance(data, dict) and len(data) == 1:
        (error,) = data.values()
        if isinstance(error, dict) and "errortext" in error:
            cserrorcode = error.get("cserrorcode")
            raise ApiCallError(
                command,
                int(error.get("errorcode", response.status_code)),
                str(error["errortext"]),
                None if cserrorcode is None else int(cserrorcode),
            )
    raise ApiCallError(command, response.status_code, f"unexpected answer: {response.text[:200]}")
