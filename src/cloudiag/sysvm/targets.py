"""What a diagnostic is aimed at, and the positional words a type may take besides options.

CloudStack's ``ipaddress`` field holds the target. Its kind depends on the type: an address
or host name (ping), a URL (an HTTP check), ``host:port`` (a TCP check). Every kind knows
the host inside it, so that the operator's policy can judge that host and aim the tool at
the very address it checked. Positional words in ``params`` (``@server`` and ``TYPE`` of
``dig @server name TYPE``) are declared one by one with their own validators.
"""

from __future__ import annotations

import re

from .errors import DiagnosticsInputError
from .frozen import Frozen, set_fields
from .tokens import parse_ip, validate_address

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

TARGET_ADDRESS = "address"
TARGET_URL = "url"
TARGET_HOST_PORT = "host_port"

# Patterns, not compiled ones: re compiles (and caches) them on first use, so the script's
# start-up does not pay for kinds of target it is not running.
_PORT = r"[0-9]{1,5}"
# The characters of a URL (RFC 3986) minus the ones no check needs: no quote, no space,
# no backslash, nothing a careless consumer could read as markup.
_URL_CHARS = r"[A-Za-z0-9._~:/?#\[\]@!$&()*+,;=%-]+"
MAX_URL_LENGTH = 2048


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class Target(Frozen):
    """The kind of a type's target and the IP versions its literal hosts may have."""

    __slots__ = ("families", "kind", "schemes")
    kind: str
    families: frozenset[int]
    schemes: tuple[str, ...]

    def __init__(
        self,
        kind: str = TARGET_ADDRESS,
        families: frozenset[int] = frozenset({4, 6}),
        schemes: tuple[str, ...] = ("http", "https"),
    ) -> None:
        if kind not in (TARGET_ADDRESS, TARGET_URL, TARGET_HOST_PORT):
            raise ValueError(f"unknown target kind {kind!r}")
        set_fields(self, kind=kind, families=families, schemes=schemes)

    def check(self, value: str, type_name: str) -> str:
        """The normalized target; DiagnosticsInputError(field="ipaddress") if it is refused."""
        if self.kind == TARGET_URL:
            normalized, host = self._check_url(value)
        elif self.kind == TARGET_HOST_PORT:
            host, port = self._split_host_port(value)
            host = validate_address(host)
            normalized = f"{_bracket(host)}:{port}"
        else:
            normalized = host = validate_address(value)
        ip = parse_ip(host)
        if ip is not None and ip.version not in self.families:
            wanted = " or ".join(f"IPv{f}" for f in sorted(self.families))
            raise DiagnosticsInputError(
                "ipaddress",
                f"{type_name} needs an {wanted} address or a host name, got IPv{ip.version} "
                f'address "{host}".',
            )
        return normalized

    def host(self, target: str) -> str:
        """The host inside a checked target (an IP literal or a name)."""
        if self.kind == TARGET_URL:
            return self._url_parts(target)[1]
        if self.kind == TARGET_HOST_PORT:
            return self._split_host_port(target)[0]
        return target

    def with_host(self, target: str, address: str) -> str:
        """The checked target aimed at ``address`` instead of its host."""
        if self.kind == TARGET_URL:
            scheme, _, port, rest = self._url_parts(target)
            netloc = _bracket(address) + (f":{port}" if port else "")
            return f"{scheme}://{netloc}{rest}"
        if self.kind == TARGET_HOST_PORT:
            return f"{_bracket(address)}:{self._split_host_port(target)[1]}"
        return address

    def _split_host_port(self, value: str) -> tuple[str, str]:
        host, sep, port = value.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        elif ":" in host:
            host = ""  # An IPv6 literal without brackets: its port cannot be told apart.
        if not sep or not host or not re.fullmatch(_PORT, port) or not 0 < int(port) < 65536:
            raise DiagnosticsInputError(
                "ipaddress",
                f'"{value}" is not host:port (a host name or address, [IPv6]:port, and a '
                "port from 1 to 65535).",
            )
        return host, str(int(port))

    def _url_parts(self, url: str) -> tuple[str, str, str, str]:
        """(scheme, host, port, path-and-rest) of a URL; ValueError if it has none."""
        scheme, sep, rest = url.partition("://")
        if not sep:
            raise ValueError(url)
        cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
        netloc, rest = rest[:cut], rest[cut:]
        if netloc.startswith("["):
            host, closed, port = netloc[1:].partition("]")
            if not closed:
                raise ValueError(url)  # "[::1" without its "]"
            port = port[1:] if port.startswith(":") else port
        else:
            host, _, port = netloc.partition(":")
        return scheme.lower(), host, port, rest

    def _check_url(self, value: str) -> tuple[str, str]:
        if not isinstance(value, str) or not value:
            raise DiagnosticsInputError("ipaddress", "A URL is required.")
        wanted = " or ".join(f"{s}://" for s in self.schemes)
        problem = f'"{value}" is not a URL starting with {wanted} and a host'
        if len(value) > MAX_URL_LENGTH or not re.fullmatch(_URL_CHARS, value):
            raise DiagnosticsInputError("ipaddress", problem + " (or has a forbidden character).")
        try:
            scheme, host, port, rest = self._url_parts(value)
        except ValueError:
            raise DiagnosticsInputError("ipaddress", problem + ".") from None
        if scheme not in self.schemes or "@" in host or (port and not re.fullmatch(_PORT, port)):
            raise DiagnosticsInputError("ipaddress", problem + ".")
        if port and not 0 < int(port) < 65536:
            raise DiagnosticsInputError("ipaddress", f'The port of "{value}" is not 1 to 65535.')
        host = validate_address(host)
        netloc = _bracket(host) + (f":{int(port)}" if port else "")
        return f"{scheme}://{netloc}{rest}", host

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready description (for the API and the UI)."""
        described: dict[str, object] = {"kind": self.kind, "families": sorted(self.families)}
        if self.kind == TARGET_URL:
            described["schemes"] = list(self.schemes)
        return described


class Positional(Frozen):
    """A positional word of ``params``: a token that does not start with "-".

    A token starting with ``prefix`` (e.g. "@") fills this positional; positionals without
    a prefix are filled in order. ``check`` gets the word without its prefix and returns it
    normalized, or raises DiagnosticsInputError(field="params").
    """

    __slots__ = ("check", "description", "name", "prefix", "required")
    name: str
    description: str
    check: Callable[[str], str]
    prefix: str
    required: bool

    def __init__(
        self,
        name: str,
        description: str,
        check: Callable[[str], str],
        prefix: str = "",
        required: bool = False,
    ) -> None:
        set_fields(
            self, name=name, description=description, check=check, prefix=prefix, required=required
        )

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready description (for the API and the UI)."""
        return {
            "name": self.name,
            "description": self.description,
            "prefix": self.prefix,
            "required": self.required,
        }


#: The target of most types: an IP literal (IPv4 or IPv6) or a host name.
ADDRESS = Target()
