"""The http probe: one request to a URL, each step timed (name, connect, TLS, first byte).

The socket is made here (so each step can be timed) and handed to http.client for the
request and response. HTTPS is verified against the VM's trust store and every ``*.pem``
in :data:`EXTRA_CA_DIR` (an operator's, or the lab's, own CA), unless ``-k``. Redirects are
reported, not followed. The body is read to its end (or :data:`MAX_BODY` bytes) and
counted, never printed.
"""

from __future__ import annotations

import calendar
import glob
import http.client
import os
import socket
import ssl
import time

from ..options import float_option
from ..tokens import parse_ip
from .report import finish, ms, say, shown
from .tcp import family_of, resolve

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from ..validate import Request

#: Extra trust anchors: every ``*.pem`` here is trusted besides the system's store.
EXTRA_CA_DIR = "/etc/cloudiag/ca.d"
#: The body is counted up to this many bytes, then the fetch stops.
MAX_BODY = 64 << 20
#: Response headers kept in the summary (the report shows them all).
MAX_HEADERS = 100
_CHUNK = 65536
_USER_AGENT = "cloudiag-probe"


class _Expired(Exception):
    """The whole fetch ran out of its -w seconds."""


def split_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of a checked URL; the fragment is dropped."""
    scheme, _, rest = url.partition("://")
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, path = rest[:cut], rest[cut:].split("#", 1)[0]
    if netloc.startswith("["):
        host, _, port = netloc[1:].partition("]")
        port = port[1:]
    else:
        host, _, port = netloc.partition(":")
    default = 443 if scheme == "https" else 80
    if not path.startswith("/"):
        path = "/" + path
    return scheme, host, int(port) if port else default, path


def context(verify: bool, extra_dir: str | None = None) -> ssl.SSLContext:
    """The TLS context: the system's trust store and the extra CAs (of ``extra_dir``, by
    default EXTRA_CA_DIR), or no checks at all."""
    if not verify:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = ssl.create_default_context()
    for path in sorted(glob.glob(os.path.join(extra_dir or EXTRA_CA_DIR, "*.pem"))):
        try:
            ctx.load_verify_locations(cafile=path)
        except (OSError, ssl.SSLError) as exc:
            say(f"note: {path} is not a CA file ({exc})")
    return ctx


_SHORT_NAMES = {"commonName": "CN", "organizationName": "O", "countryName": "C"}


def _name_of(parts: Any) -> str:
    """ "O=cloudiag lab, CN=web.lab.test" from getpeercert()'s form of a name."""
    return ", ".join(f"{_SHORT_NAMES.get(k, k)}={v}" for rdn in parts or () for k, v in rdn)


def certificate(sock: ssl.SSLSocket) -> dict[str, Any]:
    """The TLS facts of a verified connection: version, cipher, subject, issuer, expiry."""
    cert = sock.getpeercert() or {}
    facts: dict[str, Any] = {
        "version": sock.version(),
        "cipher": (sock.cipher() or ("",))[0],
        "verified": bool(cert),
        "subject": _name_of(cert.get("subject")) or None,
        "issuer": _name_of(cert.get("issuer")) or None,
        "not_after": cert.get("notAfter"),
        "days_left": None,
        "san": [f"{pair[0]}:{pair[1]}" for pair in cert.get("subjectAltName", ())],
        "error": "",
    }
    if cert.get("notAfter"):
        expires = ssl.cert_time_to_seconds(str(cert["notAfter"]))
        facts["days_left"] = int((expires - calendar.timegm(time.gmtime())) // 86400)
    return facts


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _Expired
    return left


def _header_bytes(resp: http.client.HTTPResponse) -> int:
    """The size of the status line and headers as they came (CRLF line ends)."""
    status = len(f"HTTP/1.x {resp.status} {resp.reason}\r\n")
    return status + sum(len(k) + len(v) + 4 for k, v in resp.getheaders()) + 2


def _address(
    result: dict[str, Any], host: str, port: int, options: Mapping[str, str], pinned: str | None
) -> tuple[int, tuple[str, int]] | str:
    """(family, sockaddr) to connect to, or why there is none; the lookup's time in
    ``result`` when a name was resolved here."""
    if pinned is not None:
        # The name was resolved (and checked) before the probe started.
        return int(socket.AF_INET6 if ":" in pinned else socket.AF_INET), (pinned, port)
    try:
        addresses, took = resolve(host, port, family_of(options))
    except (OSError, UnicodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return f"{host} cannot be resolved ({why})"
    if parse_ip(host) is None:
        result["ttr"] = ms(took)
    return addresses[0]


def _handshake(
    result: dict[str, Any], sock: socket.socket, host: str, verify: bool, deadline: float
) -> tuple[socket.socket, str]:
    """The TLS socket over ``sock`` and "", or ``sock`` and why the handshake failed."""
    mark = time.monotonic()
    try:
        sock.settimeout(_remaining(deadline))
        tls_sock = context(verify).wrap_socket(sock, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        why = exc.verify_message or str(exc)
        result["tls"] = {"verified": False, "error": why}
        return sock, f"TLS: the certificate is not trusted: {why}"
    except (ssl.SSLError, OSError) as exc:
        result["tls"] = {"verified": False, "error": str(exc)}
        return sock, f"TLS: {exc}"
    result["tls_time"] = ms(time.monotonic() - mark)
    tls = result["tls"] = certificate(tls_sock)
    say(f"TLS {tls['version']} {tls['cipher']} in {result['tls_time']} ms")
    if tls["verified"]:
        subject, issuer = shown(tls["subject"] or ""), shown(tls["issuer"] or "")
        say(f"certificate: {subject}, issuer {issuer}")
        say(f"expires: {tls['not_after']} ({tls['days_left']} days left)")
    else:
        say("certificate: not verified (-k)")
    return tls_sock, ""


def _exchange(
    result: dict[str, Any],
    sock: socket.socket,
    netloc: str,
    path: str,
    started: float,
    deadline: float,
) -> str:
    """Send the request, read the response to its end (bounded); why it failed, or ""."""
    conn = http.client.HTTPConnection("cloudiag-probe")
    sock.settimeout(_remaining(deadline))
    conn.sock = sock
    conn.putrequest(result["method"], path, skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", netloc)
    conn.putheader("User-Agent", _USER_AGENT)
    conn.putheader("Accept", "*/*")
    conn.putheader("Connection", "close")
    conn.endheaders()
    resp = conn.getresponse()
    result["ttfb"] = ms(time.monotonic() - started)
    result["res"], result["reason"] = resp.status, resp.reason
    result["ver"] = "1.1" if resp.version == 11 else "1.0"
    headers = resp.getheaders()
    result["headers"] = [[k, v] for k, v in headers[:MAX_HEADERS]]
    result["hsize"] = _header_bytes(resp)
    result["location"] = resp.getheader("Location")
    say(f"HTTP/{result['ver']} {resp.status} {shown(resp.reason)}")
    say(f"first byte after {result['ttfb']} ms")
    for key, value in headers:
        say(f"  {shown(key)}: {shown(value)}")
    size = 0
    while True:
        # http.client may have closed its end already (Connection: close): the response
        # reads on through its own reference, under the timeout set last.
        _remaining(deadline)
        chunk = resp.read(min(_CHUNK, MAX_BODY - size))
        if not chunk:
            break
        size += len(chunk)
        if size >= MAX_BODY:
            result["body_truncated"] = True
            break
    result["bsize"] = size
    result["rt"] = ms(time.monotonic() - started)
    say(f"body: {size} bytes, total {result['rt']} ms")
    if result["location"]:
        say(f"redirect to: {shown(result['location'])}")
    return f"HTTP {resp.status} {resp.reason}" if resp.status >= 400 else ""


def _fetch(result: dict[str, Any], url: str, options: Mapping[str, str], pinned: str | None) -> str:
    """Do the fetch, filling ``result``: why it failed, or ""."""
    scheme, host, port, path = split_url(url)
    wait = float_option(options, "-w", 10.0)
    started = time.monotonic()
    deadline = started + wait
    found = _address(result, host, port, options, pinned)
    if isinstance(found, str):
        return found
    family, sockaddr = found
    result["dst_addr"], result["af"] = sockaddr[0], 6 if family == socket.AF_INET6 else 4
    say(f"{result['method']} {url} ({sockaddr[0]} port {port})")
    mark = time.monotonic()
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(_remaining(deadline))
        try:
            sock.connect(sockaddr)
        except TimeoutError:
            return f"connect: no answer in {wait:g} s"
        except OSError as exc:
            return f"connect: {exc.strerror or exc}"
        result["ttc"] = ms(time.monotonic() - mark)
        say(f"connected in {result['ttc']} ms")
        if scheme == "https":
            sock, why = _handshake(result, sock, host, "-k" not in options, deadline)
            if why:
                return why
        # The Host header as the URL has it: the port only when it is not the default.
        netloc = f"[{host}]" if ":" in host else host
        if port != (443 if scheme == "https" else 80):
            netloc += f":{port}"
        return _exchange(result, sock, netloc, path, started, deadline)
    except (TimeoutError, _Expired):
        return f"no complete response in {wait:g} s"
    except (http.client.HTTPException, OSError) as exc:
        return f"HTTP: {exc}" if str(exc) else f"HTTP: {exc!r}"
    finally:
        sock.close()


def probe(req: Request, options: Mapping[str, str], pinned: str | None) -> int:
    """Fetch the URL (at ``pinned``, the address its name was pinned to, if it was), print
    the report and the machine line; the exit code."""
    method = options.get("-X", "GET")
    result: dict[str, Any] = {
        "url": req.address,
        "method": method,
        "af": None,
        "dst_addr": None,
        "res": None,
        "reason": None,
        "ver": None,
        "ttr": None,
        "ttc": None,
        "tls_time": None,
        "ttfb": None,
        "rt": None,
        "hsize": None,
        "bsize": None,
        "headers": [],
        "location": None,
        "tls": None,
        "body_truncated": False,
        "err": "",
    }
    why = _fetch(result, req.address, options, pinned)
    result["err"] = why
    if why:
        say(f"error: {why}")
    return finish(result, not why, why)
