"""CloudStack request signing, verified the way CloudStack does it and the way real clients sign.

CloudStack authenticates an API-key request with an HMAC-SHA1 over a canonical string built from
every received parameter except ``signature``: names sorted case-sensitively, each value
URL-encoded like Java's ``URLEncoder`` (a space as ``%20``), pairs joined with ``&``, the whole
string lower-cased. Real clients deviate slightly from that encoding (see
``canonical_strings``), so a signature is accepted over the canonical string or over one of
those exact variants, and nothing looser.

Everything here is pure: no I/O, no clock (the caller passes ``now``), no logging.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone

__all__ = [
    "canonical_strings",
    "check_expiry",
    "find_param",
    "is_valid_param_name",
    "parse_expires",
    "sign",
    "signature_digest",
    "valid_until",
    "verify_signature",
]

# What java.net.URLEncoder leaves alone; everything else becomes %XX of its UTF-8 bytes.
_JAVA_SAFE = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.*_-"

# Parameter names go into the canonical string *unencoded* (that is how CloudStack does it).
# A name holding "=" or "&" could therefore re-cut a signed string into different parameters:
# a captured request "...&expires=E&response=json&signatureversion=3" can be replayed with a
# single parameter named "expires=E&response=json&signatureversion" valued "3", which has the
# same canonical string but no longer carries expires/signatureVersion, defeating the expiry
# check. Only plain names can be signed. This set covers every name CloudStack defines,
# including map parameters such as "details[0].key", and every client encodes these
# characters identically (libcloud's quote(name, safe="[]") is the identity on them).
_NAME_RE = re.compile(r"[A-Za-z0-9_.\[\]-]+", re.ASCII)


def _byte_encoder(extra_safe: bytes) -> Callable[[str], str]:
    """Build a value encoder that keeps ``_JAVA_SAFE + extra_safe`` and %XX-escapes the rest."""
    safe = frozenset(_JAVA_SAFE + extra_safe)
    table = [chr(b) if b in safe else f"%{b:02X}" for b in range(256)]

    def encode(value: str) -> str:
        # surrogatepass: a lone surrogate must give *some* deterministic bytes rather than
        # raise, so that verification fails cleanly instead of erroring.
        return "".join(table[b] for b in value.encode("utf-8", "surrogatepass"))

    return encode


# CloudStack itself (URLEncoder.encode(v, "UTF-8").replace("+", "%20")); legacy cloudmonkey
# too: Python 2's quote_plus(v, safe="*") keeps exactly the same set (its "~" is escaped).
_encode_java = _byte_encoder(b"")
# cs (urllib.parse.quote(v, safe="*")) and cmk (Go url.QueryEscape, then "+"->"%20",
# "%2A"->"*"): Python 3's quote and Go both treat "~" as unreserved.
_encode_tilde = _byte_encoder(b"~")
# libcloud: urllib.parse.quote(v, safe="[]*").
_encode_libcloud = _byte_encoder(b"~[]")


def _case_sensitive(pair: tuple[str, str]) -> str:
    return pair[0]


def _case_folded(pair: tuple[str, str]) -> str:
    return pair[0].lower()


# (sort key, value encoder) for each signing scheme, the canonical one first.
_VARIANTS: tuple[tuple[Callable[[tuple[str, str]], str], Callable[[str], str]], ...] = (
    (_case_sensitive, _encode_java),  # CloudStack ApiServer.verifyRequest
    (_case_sensitive, _encode_tilde),  # cs, cmk
    (_case_folded, _encode_libcloud),  # libcloud
    (_case_folded, _encode_java),  # legacy cloudmonkey (Python 2)
)


def is_valid_param_name(name: str) -> bool:
    """Whether ``name`` may appear in a signed request (letters, digits, ``_ . [ ] -``)."""
    return _NAME_RE.fullmatch(name) is not None


def canonical_strings(params: Sequence[tuple[str, str]]) -> list[str]:
    """Return the strings a client may have signed for ``params``, the canonical one first.

    ``params`` are all received (name, value) pairs, query string and form body merged, already
    URL-decoded. Every ``signature`` parameter (any case) is left out; every other parameter is
    included, duplicates too, so that no received value escapes the signature (CloudStack
    itself signs only the first value of a repeated name; a client that repeats a name is
    refused here rather than having an unsigned value slip through).

    The strings, duplicates removed:

    1. CloudStack's canonical form: names sorted case-sensitively, ``name=URLEncoder(value)``
       joined with ``&``, lower-cased;
    2. the same with ``~`` unencoded (``cs``, ``cmk``);
    3. names sorted on their lower-cased form, ``~ [ ]`` unencoded (libcloud);
    4. names sorted on their lower-cased form, canonical encoding (legacy cloudmonkey).

    Raises ``ValueError`` if a parameter name is not a plain name (see
    ``is_valid_param_name``): such a request cannot be verified unambiguously.
    """
    pairs = [(name, value) for name, value in params if name.lower() != "signature"]
    for name, _ in pairs:
        if not is_valid_param_name(name):
            raise ValueError(f"parameter name not allowed in a signed request: {name!r}")
    strings: dict[str, None] = {}
    for sort_key, encode in _VARIANTS:
        # sorted() is stable: names that tie keep the order in which they were received,
        # which is the order a client iterating its own mapping would have used.
        ordered = sorted(pairs, key=sort_key)
        text = "&".join(f"{name}={encode(value)}" for name, value in ordered).lower()
        strings.setdefault(text, None)
    return list(strings)


def sign(canonical: str, secret: str) -> str:
    """Return the CloudStack signature of ``canonical``: base64 of its HMAC-SHA1 with ``secret``."""
    digest = hmac.new(
        secret.encode("utf-8", "surrogatepass"),
        canonical.encode("utf-8", "surrogatepass"),
        hashlib.sha1,
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_signature(params: Sequence[tuple[str, str]], signature: str, secret: str) -> bool:
    """Whether ``signature`` signs ``params`` (see ``canonical_strings``) with ``secret``.

    Never raises: a malformed request, an empty signature or an empty secret is simply refused.
    """
    if not signature or not secret:
        return False
    # Base64 never holds a space, but "+" does, and a client that put the signature into a
    # query string without escaping it has had every "+" decoded to a space by form parsing.
    received = signature.replace(" ", "+").encode("utf-8", "surrogatepass")
    try:
        candidates = canonical_strings(params)
    except ValueError:
        return False
    matched = False
    for canonical in candidates:
        # Compare against every variant, without stopping at a match, so the time taken says
        # nothing about which scheme (if any) matched.
        expected = sign(canonical, secret).encode("ascii")
        matched |= hmac.compare_digest(expected, received)
    return matched


def find_param(params: Sequence[tuple[str, str]], name: str) -> str | None:
    """Return the first value of parameter ``name`` matched case-insensitively, else ``None``.

    For the names CloudStack itself matches without regard to case (``apiKey``, ``signature``,
    ``signatureVersion``, ``expires``); clients send both ``signatureVersion`` and
    ``signatureversion``.
    """
    wanted = name.lower()
    for key, value in params:
        if key.lower() == wanted:
            return value
    return None


def _find_all(params: Sequence[tuple[str, str]], name: str) -> list[str]:
    wanted = name.lower()
    return [value for key, value in params if key.lower() == wanted]


# The expires formats clients send, and CloudStack's DateUtil.parseTZDateString accepts:
# cmk "2024-05-01T10:00:00Z" (RFC 3339), cs and legacy cloudmonkey "...+0000",
# ISO "...+00:00", each optionally with a fraction of a second, and CloudStack's oldest form
# "...Z+0000" (SimpleDateFormat "yyyy-MM-dd'T'HH:mm:ss'Z'Z"). re.ASCII: \d must not match
# non-ASCII digits.
_EXPIRES_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:Z|Z?([+-])(\d{2}):?(\d{2}))",
    re.ASCII,
)


def parse_expires(value: str) -> datetime | None:
    """Parse an ``expires`` value into an aware datetime, or ``None`` if it is not valid.

    Accepted: ``YYYY-MM-DDTHH:MM:SS`` with an optional fraction (up to 9 digits, kept to the
    microsecond), followed by ``Z``, ``+HH:MM`` or ``+HHMM`` (any sign and offset), or the
    legacy ``Z+HHMM``.
    """
    match = _EXPIRES_RE.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, sign_, off_h, off_m = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        tz = UTC
        if sign_ is not None:
            if int(off_m) >= 60:
                return None
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            tz = timezone(-offset if sign_ == "-" else offset)
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tz
        )
    except ValueError:  # month 13, hour 25, offset of 24h or more...
        return None


def check_expiry(
    params: Sequence[tuple[str, str]],
    now: datetime,
    *,
    max_lifetime: timedelta | None = None,
    require: bool = False,
) -> str | None:
    """Check a request's expiry; return why it is refused, or ``None``.

    Without a ``signatureVersion`` parameter (any case; libcloud never sends one) there is no
    check, unless ``require`` is set: then every request must carry ``signatureVersion=3``.
    With ``signatureVersion=3``, ``expires`` is required, must parse (see ``parse_expires``)
    and must not be before ``now``, as in CloudStack; if ``max_lifetime`` is given it must
    also not lie further than that ahead. Any other ``signatureVersion`` is refused, where
    CloudStack would skip the check. Every occurrence of either parameter is checked, so a
    repeated one cannot smuggle in a second value.

    ``now`` should be timezone-aware; a naive ``now`` is taken to be UTC. The message is the
    text of the 401 the client gets (it names no secret).
    """
    versions = _find_all(params, "signatureVersion")
    if not versions:
        if require:
            return (
                "this server requires signatureVersion=3 and an expires parameter "
                "on every signed request"
            )
        return None
    for version in versions:
        if version != "3":
            return f"unsupported signatureVersion {version!r}"
    expires_values = _find_all(params, "expires")
    if not expires_values:
        return "missing expires parameter for signatureVersion 3"
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    for value in expires_values:
        expires_at = parse_expires(value)
        if expires_at is None:
            return f"incorrect date format for expires parameter: {value!r}"
        if expires_at < now:
            return "request expired"
        if max_lifetime is not None and expires_at > now + max_lifetime:
            return (
                "expires parameter is set too far in the future: this server accepts "
                f"at most {int(max_lifetime.total_seconds())} seconds ahead"
            )
    return None


def valid_until(params: Sequence[tuple[str, str]]) -> datetime | None:
    """Until when a request that passed ``check_expiry`` is accepted; ``None``: for good.

    Only ``signatureVersion=3`` makes ``expires`` count (without it CloudStack ignores the
    parameter, and so does ``check_expiry``). With several values, every one is checked, so
    the earliest ends the request's validity.
    """
    if not _find_all(params, "signatureVersion"):
        return None
    parsed = [parse_expires(value) for value in _find_all(params, "expires")]
    times = [when for when in parsed if when is not None]
    return min(times) if times else None


def signature_digest(signature: str) -> str:
    """The hex SHA-256 of the HMAC bytes a signature holds: what identifies a use of it.

    Of the decoded bytes, not of the text, so that the spellings ``verify_signature``
    accepts for one signature (a ``+`` decoded to a space) are the same use. Call it only on
    a verified signature (valid base64).
    """
    raw = base64.b64decode(signature.replace(" ", "+"), validate=True)
    return hashlib.sha256(raw).hexdigest()
