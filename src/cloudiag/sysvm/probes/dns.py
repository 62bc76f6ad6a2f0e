"""The dns probe: one question to one server, over UDP (TCP when the answer is truncated).

A small resolver of its own: ``socket.getaddrinfo`` cannot ask for MX, TXT or SOA records,
nor ask a chosen server. It asks the server of ``-s``, else the VM's first nameserver in
/etc/resolv.conf (127.0.0.1 without one, as the C library does).
"""

from __future__ import annotations

import os
import socket
import struct
import time

from ..options import float_option, int_option
from ..tokens import parse_ip
from . import dns_wire
from .report import finish, ms, say, shown

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from ..validate import Request

RESOLV_CONF = "/etc/resolv.conf"
_MAX_UDP = 65535


def system_server(path: str = RESOLV_CONF) -> str:
    """The first nameserver of resolv.conf, or 127.0.0.1 when it names none."""
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            for line in handle:
                words = line.split()
                if len(words) >= 2 and words[0] == "nameserver" and parse_ip(words[1]):
                    return str(parse_ip(words[1]))
    except OSError:
        pass
    return "127.0.0.1"


def question(target: str, options: Mapping[str, str]) -> tuple[str, str]:
    """(name, type) to ask: an address asks for its PTR name unless -t says otherwise."""
    ip = parse_ip(target)
    qtype = options.get("-t") or ("PTR" if ip is not None else "A")
    if ip is not None and qtype == "PTR":
        return ip.reverse_pointer + ".", qtype
    return target.rstrip(".") + ".", qtype


def _udp(server: tuple[str, int], family: int, message: bytes, qid: int, wait: float) -> bytes:
    """The answer to ``message`` over UDP within ``wait`` s (socket.timeout when none)."""
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(wait)
        sock.connect(server)
        sock.send(message)
        deadline = time.monotonic() + wait
        while True:
            data = sock.recv(_MAX_UDP)
            # A stray datagram (an old answer) is not ours: keep waiting for the rest.
            if len(data) >= 2 and struct.unpack("!H", data[:2])[0] == qid:
                return data
            sock.settimeout(max(deadline - time.monotonic(), 0.001))


def _recv_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("the server closed the connection mid-answer")
        data += chunk
    return data


def _tcp(server: tuple[str, int], family: int, message: bytes, wait: float) -> bytes:
    """The answer to ``message`` over TCP (two-byte length first), within ``wait`` s."""
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(wait)
        sock.connect(server)
        sock.sendall(struct.pack("!H", len(message)) + message)
        (length,) = struct.unpack("!H", _recv_exactly(sock, 2))
        return _recv_exactly(sock, length)


def ask(
    server: tuple[str, int], message: bytes, qid: int, wait: float, tcp_only: bool
) -> tuple[bytes, str, float, bool]:
    """(answer, "UDP" or "TCP", seconds of the try that answered, whether UDP was cut)."""
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    if not tcp_only:
        from ..types.dns import UDP_TRIES

        for attempt in range(UDP_TRIES):
            started = time.monotonic()
            try:
                data = _udp(server, family, message, qid, wait)
            except TimeoutError:
                if attempt + 1 == UDP_TRIES:
                    raise
                continue
            if not dns_wire.is_truncated(data):
                return data, "UDP", time.monotonic() - started, False
            break
    started = time.monotonic()
    data = _tcp(server, family, message, wait)
    return data, "TCP", time.monotonic() - started, not tcp_only


def _report(name: str, qtype: str, answer: dict[str, Any]) -> None:
    say(f"status: {answer['rcode']}, id {answer['ID']}, answers {answer['ANCOUNT']}")
    for title, records in (("ANSWER", answer["answers"]), ("AUTHORITY", answer["authority"])):
        if records:
            say(f"{title}:")
        for rec in records:
            say(f"  {shown(rec['NAME'])} {rec['TTL']} IN {rec['TYPE']} {shown(rec['RDATA'])}")


def probe(req: Request, options: Mapping[str, str], pinned: str | None) -> int:
    """Ask the question, print the answer and the machine line; the exit code (``pinned``
    is always None: the name is asked about, never pinned)."""
    name, qtype = question(req.address, options)
    server = options.get("-s") or system_server()
    port = int_option(options, "-p", 53)
    wait = float_option(options, "-w", 3.0)
    result: dict[str, Any] = {
        "af": 6 if ":" in server else 4,
        "dst_addr": server,
        "dst_port": port,
        "proto": "TCP" if "-T" in options else "UDP",
        "qname": name,
        "qtype": qtype,
        "rcode": None,
        "result": None,
        "truncated_udp": False,
        "error": "",
    }
    qid = int.from_bytes(os.urandom(2), "big")
    say(f"DNS {qtype} {name} at {server} port {port}")
    try:
        data, proto, seconds, cut = ask(
            (server, port), dns_wire.query(qid, name, qtype), qid, wait, "-T" in options
        )
        answer = dns_wire.read_answer(data)
    except TimeoutError:
        result["error"] = f"no answer from {server} in {wait:g} s"
    except (OSError, dns_wire.WireError) as exc:
        result["error"] = (
            f"{server}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}"
        )
    else:
        result.update(proto=proto, truncated_udp=cut, rcode=answer.pop("rcode"))
        result["result"] = {"rt": ms(seconds), **answer}
        if cut:
            say("the UDP answer was truncated: asked again over TCP")
        _report(name, qtype, {"rcode": result["rcode"], **answer})
        say(f"time: {ms(seconds)} ms over {proto}, {answer['size']} bytes")
    if result["error"]:
        say(f"error: {result['error']}")
        return finish(result, False, result["error"])
    ok = result["rcode"] == "NOERROR"
    return finish(result, ok, f"{name} {qtype}: {result['rcode']}")
