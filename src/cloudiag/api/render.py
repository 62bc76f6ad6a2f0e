"""Encode API responses exactly as CloudStack does, in JSON or XML.

The caller shapes the payload (``{"count": N, "zone": [...]}``, ``{}`` for an empty list,
``{"jobid": ...}``); this module only wraps it in the ``<command>response`` envelope and
encodes it. Clients are strict about the envelope: ``cs`` refuses any content type but JSON,
cmk and libcloud look for the single ``<lower-cased command>response`` key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final
from xml.sax.saxutils import escape, quoteattr

from cloudiag.api.errors import ApiError

__all__ = [
    "CLOUDSTACK_VERSION",
    "JSON_CONTENT_TYPE",
    "XML_CONTENT_TYPE",
    "envelope_key",
    "error_payload",
    "render",
    "render_error",
    "wants_json",
]

JSON_CONTENT_TYPE: Final = "application/json; charset=UTF-8"
XML_CONTENT_TYPE: Final = "text/xml; charset=UTF-8"
# Announced on the XML root element, as CloudStack does; the API surface matches 4.19.
CLOUDSTACK_VERSION: Final = "4.19.0"

_XML_DECLARATION: Final = '<?xml version="1.0" encoding="UTF-8"?>'
# A command name becomes an element name (and a JSON key): only plain names are used as is.
_COMMAND_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9]*", re.ASCII)
# Field names are chosen by code, never by clients, but an invalid one must fail loudly
# rather than produce a document nobody can parse.
_XML_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*", re.ASCII)
# Characters XML 1.0 cannot carry at all, not even as a character reference (C0 controls
# other than tab/LF/CR, lone surrogates, U+FFFE/U+FFFF): replaced by U+FFFD.
_XML_INVALID_RE: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# A raw CR would be normalised to LF by every XML parser: keep it as a reference.
_XML_TEXT_ENTITIES: Final = {"\r": "&#13;"}


def envelope_key(command: str | None) -> str:
    """Return the top-level key: ``<command lower-cased>response``, else ``errorresponse``.

    ``None`` (no command, or one that does not exist) and names that are not plain
    alphanumeric words give ``errorresponse``, so a client-chosen string never becomes an
    element name.
    """
    if command is None or _COMMAND_RE.fullmatch(command) is None:
        return "errorresponse"
    return f"{command.lower()}response"


def wants_json(fmt: str | None) -> bool:
    """Whether the ``response`` parameter asks for JSON; anything else (or nothing) is XML."""
    return fmt is not None and fmt.lower() == "json"


def render(command: str | None, payload: Mapping[str, Any], fmt: str | None) -> tuple[bytes, str]:
    """Encode ``payload`` under its envelope; return ``(body, content type)``.

    ``fmt`` is the request's ``response`` parameter: ``json`` (any case) gives compact UTF-8
    JSON with exactly one top-level key; anything else gives CloudStack's XML, where lists
    become repeated elements, mappings nested elements, booleans ``true``/``false`` and
    ``None`` values are left out. Raises ``TypeError`` or ``ValueError`` for a payload that
    holds something other than mappings, lists, tuples, strings, numbers, booleans and
    ``None``, or (XML) a field name that is not an XML name.
    """
    key = envelope_key(command)
    if wants_json(fmt):
        return _render_json(key, payload), JSON_CONTENT_TYPE
    return _render_xml(key, payload), XML_CONTENT_TYPE


def error_payload(err: ApiError) -> dict[str, Any]:
    """Return CloudStack's error body (to put under the envelope).

    ``{"uuidList": [], "errorcode": N, "cserrorcode": M, "errortext": "..."}``, without
    ``cserrorcode`` when it is ``None`` (a 401).
    """
    payload: dict[str, Any] = {"uuidList": [], "errorcode": err.errorcode}
    if err.cserrorcode is not None:
        payload["cserrorcode"] = err.cserrorcode
    payload["errortext"] = err.errortext
    return payload


def render_error(command: str | None, err: ApiError, fmt: str | None) -> tuple[bytes, str]:
    """Render ``err`` under the envelope of ``command`` (the HTTP status is ``err.errorcode``)."""
    return render(command, error_payload(err), fmt)


def _json_default(value: object) -> Any:
    # json only knows dict; a read-only Mapping (MappingProxyType, ...) is just as good.
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot encode {type(value).__name__} in an API response")


def _render_json(key: str, payload: Mapping[str, Any]) -> bytes:
    text = json.dumps(
        {key: payload},
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,  # NaN/Infinity are not JSON; cmk's and cs's parsers reject them
        default=_json_default,
    )
    # With ensure_ascii=False a lone surrogate (say, from undecodable command output) is
    # copied raw and cannot be UTF-8 encoded. It can only occur inside a JSON string, where
    # backslashreplace writes it as "\udcxx", which is exactly JSON's escape for it.
    return text.encode("utf-8", "backslashreplace")


def _xml_scalar(value: object) -> str:
    if isinstance(value, bool):  # before int: bool is an int
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, int | float):
        text = str(value)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} in an API response")
    return escape(_XML_INVALID_RE.sub("\ufffd", text), _XML_TEXT_ENTITIES)


def _xml_name(name: object) -> str:
    if not isinstance(name, str) or _XML_NAME_RE.fullmatch(name) is None:
        raise ValueError(f"not an XML element name: {name!r}")
    return name


def _xml_children(out: list[str], payload: Mapping[str, Any]) -> None:
    for name, value in payload.items():
        _xml_element(out, _xml_name(name), value)


def _xml_element(out: list[str], name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, Mapping):
        out.append(f"<{name}>")
        _xml_children(out, value)
        out.append(f"</{name}>")
    elif isinstance(value, list | tuple):
        # CloudStack writes a list as the element repeated once per item.
        for item in value:
            _xml_element(out, name, item)
    else:
        out.append(f"<{name}>{_xml_scalar(value)}</{name}>")


def _render_xml(key: str, payload: Mapping[str, Any]) -> bytes:
    out = [_XML_DECLARATION, f"<{key} cloud-stack-version={quoteattr(CLOUDSTACK_VERSION)}>"]
    _xml_children(out, payload)
    out.append(f"</{key}>")
    # Every character left is valid XML (see _XML_INVALID_RE), so this cannot fail.
    return "".join(out).encode("utf-8")
