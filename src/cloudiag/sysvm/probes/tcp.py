"""The tcp probe: one TCP connect to host:port, timed; open, refused or timed out."""

from __future__ import annotations

import errno
import socket
import time

from ..options import float_option
from ..tokens import parse_ip
from .report import finish, ms, say

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..validate import Request


_UNREACHABLE = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH})


def family_of(options: Mapping[str, str]) -> int:
    """The address family the -4/-6 options ask for (0: either)."""
    if "-4" in options:
        return socket.AF_INET
    if "-6" in options:
        return socket.AF_INET6
    return 0


def resolve(host: str, port: int, family: int) -> tuple[list[tuple[int, tuple[str, int]]], float]:
    """(family, sockaddr) of each address of ``host`` (OSError if none) and the seconds it took."""
    started = time.monotonic()
    infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    found = [(int(info[0]), (str(info[4][0]), int(info[4][1]))) for info in infos]
    return list(dict.fromkeys(found)), time.monotonic() - started


def connect(family: int, sockaddr: tuple[str, int], wait: float) -> tuple[str, float, str]:
    """(state, seconds, error) of one connect: state open, refused, timeout, unreachable
    (an ICMP unreachable, or no route) or error."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(wait)
    started = time.monotonic()
    try:
        sock.connect(sockaddr)
        return "open", time.monotonic() - started, ""
    except TimeoutError:
        return "timeout", time.monotonic() - started, f"no answer in {wait:g} s"
    except ConnectionRefusedError:
        return "refused", time.monotonic() - started, "connection refused"
    except OSError as exc:
        why = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
        state = "unreachable" if exc.errno in _UNREACHABLE else "error"
        return state, time.monotonic() - started, why
    finally:
        sock.close()


def probe(req: Request, options: Mapping[str, str], pinned: str | None) -> int:
    """Connect once to the target (at ``pinned``, the address its name was pinned to, if it
    was), print the report and the machine line; the exit code."""
    host, port_text = req.type.target.host(req.address), req.address.rpartition(":")[2]
    port = int(port_text)
    wait = float_option(options, "-w", 5.0)
    result = {
        "dst_name": host,
        "dst_addr": None,
        "dst_port": port,
        "af": None,
        "state": "error",
        "connect_time": None,
        "resolve_time": None,
        "timeout": wait,
        "error": "",
    }
    ip = parse_ip(pinned or host)
    try:
        addresses, took = resolve(pinned or host, port, family_of(options))
    except (OSError, UnicodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        result.update(state="unresolved", error=f"{host} cannot be resolved ({why})")
        say(f"TCP {host} port {port}: {result['error']}")
        return finish(result, False, str(result["error"]))
    if ip is None:  # Resolved here, not pinned before.
        result["resolve_time"] = ms(took)
    family, sockaddr = addresses[0]
    result["dst_addr"], result["af"] = sockaddr[0], 6 if family == socket.AF_INET6 else 4
    say(f"TCP connect to {host} ({sockaddr[0]}) port {port}, waiting up to {wait:g} s")
    state, seconds, error = connect(family, sockaddr, wait)
    result.update(state=state, connect_time=ms(seconds), error=error)
    if state == "open":
        say(f"open: connected in {ms(seconds)} ms")
    else:
        say(f"{state}: {error} (after {ms(seconds)} ms)")
    return finish(result, state == "open", f"{host} port {port}: {error}")
