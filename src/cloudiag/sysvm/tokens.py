"""The lexical rules: which characters a token may hold, and how words are recognised.

Every check here is ASCII-only and uses ``fullmatch()`` ("$" would accept a trailing
newline). Refusing unexpected characters first, in one place, stops shell, glob, quoting and
control characters (and non-ASCII look-alikes) before any other rule runs.
"""

from __future__ import annotations

import ipaddress
import re

from .errors import DiagnosticsInputError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

# Bounds on raw input, checked before any parsing so that pathological input is cheap.
MAX_PARAMS_LENGTH = 512
MAX_ADDRESS_LENGTH = 253

# Every character an option token can need: flags (-c), numbers, interface names, IP literals.
TOKEN_CHARS = r"A-Za-z0-9_.:\-"  # noqa: S105 (a character class, not a secret)
ADDRESS_CHARS = re.compile(r"[A-Za-z0-9.:-]+")
INT_RE = re.compile(r"[0-9]{1,9}")
FLOAT_RE = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,6})?")
_INTERFACE_RE = re.compile(r"[A-Za-z0-9_.:-]{1,15}")
_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# A part inet_aton() would read as a number (decimal, octal or hex).
_INET_ATON_PART_RE = re.compile(r"0[xX][0-9A-Fa-f]*|[0-9]+")


def describe_char(char: str) -> str:
    """Name a character so that invisible ones (newline, NUL, ...) show up in messages."""
    if char.isprintable() and not char.isspace():
        return repr(char)
    if char == " ":
        return "' ' (space)"
    return f"{char!r} (U+{ord(char):04X})"


def first_bad_char(text: str, allowed: re.Pattern[str]) -> str | None:
    """The first character of ``text`` that ``allowed`` does not match, or None."""
    for char in text:
        if not allowed.fullmatch(char):
            return char
    return None


def is_interface_name(value: str) -> bool:
    """Whether ``value`` is a Linux interface name that cannot read as an option."""
    # "." and ".." are refused by the kernel; a leading "-" would read as an option.
    return (
        bool(_INTERFACE_RE.fullmatch(value))
        and not value.startswith("-")
        and value not in (".", "..")
    )


def parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parse an IPv4/IPv6 literal without zone id or brackets; None if it is not one."""
    if not ADDRESS_CHARS.fullmatch(value):
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def format_number(value: float) -> str:
    """A number as messages show it (no trailing ".0")."""
    return f"{value:g}"


def _looks_like_inet_aton(name: str) -> bool:
    # getaddrinfo() falls back to inet_aton(), which reads "0x7f000001", "127.1" or
    # "017.0.0.1" as addresses; such names would slip past any check done on literals.
    parts = name.rstrip(".").split(".")
    return len(parts) <= 4 and all(_INET_ATON_PART_RE.fullmatch(p) for p in parts)


def validate_address(value: str, field: str = "ipaddress") -> str:
    """Check a host: an IPv4/IPv6 literal or an RFC 1123 host name.

    Returns it (IP literals in their canonical form); raises DiagnosticsInputError(field).
    """
    if not isinstance(value, str) or not value:
        raise DiagnosticsInputError(field, "An IP address or host name is required.")
    if len(value) > MAX_ADDRESS_LENGTH:
        raise DiagnosticsInputError(
            field,
            f"Address is too long ({len(value)} characters, at most {MAX_ADDRESS_LENGTH}).",
        )
    bad = first_bad_char(value, ADDRESS_CHARS)
    if bad is not None:
        raise DiagnosticsInputError(
            field,
            f"Address contains a forbidden character {describe_char(bad)}; "
            "use an IPv4/IPv6 address or a host name.",
        )
    if value.startswith("-"):
        raise DiagnosticsInputError(field, "Address must not start with '-'.")
    ip = parse_ip(value)
    if ":" in value:
        if not isinstance(ip, ipaddress.IPv6Address):
            raise DiagnosticsInputError(field, f'"{value}" is not a valid IPv6 address.')
        return str(ip)
    if ip is not None:
        return str(ip)
    name = value[:-1] if value.endswith(".") else value
    labels = name.split(".")
    for label in labels:
        if not _LABEL_RE.fullmatch(label):
            raise DiagnosticsInputError(
                field,
                f'"{value}" is not a valid IP address or host name '
                "(labels are 1-63 letters, digits or '-', not starting or ending with '-').",
            )
    if labels[-1].isdigit() or _looks_like_inet_aton(name):
        raise DiagnosticsInputError(
            field,
            f'"{value}" is not a valid IP address or host name '
            "(write IPv4 addresses as four decimal numbers, e.g. 192.0.2.1).",
        )
    return value


def split_params(params: str | Sequence[str] | None, extra_chars: str = "") -> list[str]:
    """The words of ``params`` (one string split at ASCII spaces, or a list of strings).

    ``extra_chars`` widens the allowed characters for types whose positional tokens need
    them (e.g. "@" of ``dig @server``). Raises DiagnosticsInputError(field="params").
    """
    if params is None:
        return []
    if isinstance(params, str):
        pieces: Sequence[str] = [params]
    elif isinstance(params, (list, tuple)) and all(isinstance(p, str) for p in params):
        pieces = params
    else:
        raise DiagnosticsInputError("params", "Parameters must be a string or a list of strings.")
    if sum(len(p) + 1 for p in pieces) > MAX_PARAMS_LENGTH:
        raise DiagnosticsInputError(
            "params", f"Parameters are too long (at most {MAX_PARAMS_LENGTH} characters)."
        )
    allowed = re.compile(f"[{TOKEN_CHARS}{re.escape(extra_chars)}]")
    listed = " ".join((".", "_", ":", "-", *extra_chars))
    tokens: list[str] = []
    for piece in pieces:
        # Only ASCII spaces separate words: tabs, newlines and other blanks are refused
        # below instead of being silently treated as separators.
        for token in piece.split(" "):
            if not token:
                continue
            bad = first_bad_char(token, allowed)
            if bad is not None:
                raise DiagnosticsInputError(
                    "params",
                    f'Parameter "{token}" contains a forbidden character {describe_char(bad)};'
                    f" parameters are options and values made of letters, digits and {listed}",
                )
            tokens.append(token)
    return tokens
