"""The lab's servers: the upstream web server (webserver.py) and DNS server (dnsmasq).

Their argv, starting them detached inside their namespace, and their pid and log files in
the lab's state directory. A pid is only trusted once its command line shows the server.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import sys
import time
from pathlib import Path

from cloudiag.lab import certs, system
from cloudiag.lab.errors import LabError
from cloudiag.lab.topology import (
    DNS,
    DNS6,
    DNS_DOMAIN,
    DNS_RECORDS,
    DNS_RECORDS6,
    SEGMENTS,
    Node,
    Service,
    namespace,
)

log = logging.getLogger(__name__)

#: How long a freshly started server may take to bind its socket.
SERVICE_START_TIMEOUT = 10.0

_INDEX_HTML = """<!doctype html>
<html><head><title>cloudiag lab</title></head>
<body><h1>cloudiag lab</h1><p>The web server of the lab zone ({prefix}).</p></body></html>
"""


def is_service(pid: int, svc: Service) -> bool:
    """Whether process `pid` runs the program of `svc` (http.server or dnsmasq)."""
    argv = system.cmdline(pid)
    if svc.kind == "web":
        return "cloudiag.lab.webserver" in argv
    return bool(argv) and os.path.basename(argv[0]) == "dnsmasq"


def service_pid(ns: str, svc: Service) -> int | None:
    """The pid of `svc`'s server inside namespace `ns`, if one runs there."""
    return next((p for p in system.namespace_pids(ns) if is_service(p, svc)), None)


def pid_file_service(state: Path, n: Node) -> int | None:
    """The pid in a server's pid file, if that process is still that server."""
    if n.service is None:
        return None
    try:
        pid = int((state / f"{n.service.stem}.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    # The pid may have been reused by an unrelated process since: check what it runs.
    return pid if system.alive(pid) and is_service(pid, n.service) else None


#: A TXT record longer than a plain UDP answer (512 bytes) holds: the dns check's answer
#: comes truncated and is asked again over TCP.
BIG_TXT_NAME = f"big.{DNS_DOMAIN}"
_BIG_TXT = ",".join(["x" * 200] * 3)


def _zone_records() -> list[str]:
    """The lab zone's records besides A and PTR: SOA and NS (dnsmasq answers them as the
    zone's authoritative server), MX, and TXT records."""
    subnets = ",".join(
        [str(seg.network) for seg in SEGMENTS if seg.network.prefixlen == 24]
        + [str(seg.network6) for seg in SEGMENTS if seg.network6 is not None]
    )
    return [
        f"--auth-server=dns.{DNS_DOMAIN},{DNS}",
        f"--auth-zone={DNS_DOMAIN},{subnets}",
        f"--auth-soa=2026120201,hostmaster.{DNS_DOMAIN}",
        f"--mx-host={DNS_DOMAIN},web.{DNS_DOMAIN},10",
        f"--txt-record={DNS_DOMAIN},v=spf1 -all",
        f"--txt-record={BIG_TXT_NAME},{_BIG_TXT}",
    ]


def _dnsmasq_argv(dnsmasq: str) -> list[str]:
    try:
        user = pwd.getpwnam("nobody")
        creds = ["--user=nobody", f"--group={grp.getgrgid(user.pw_gid).gr_name}"]
    except KeyError:
        creds = ["--user=root", "--group=root"]
    # Authoritative for the lab's zone and the reverse zones of its /24s and /64s: unknown
    # names get NXDOMAIN at once. No upstream servers (--no-resolv), so nothing is ever
    # forwarded. Each name's A and AAAA come from one --host-record.
    reverse = [
        seg.network.network_address.reverse_pointer.split(".", 1)[1]
        for seg in SEGMENTS
        if seg.network.prefixlen == 24
    ]
    # The last 16 nibbles of an ip6.arpa name are the interface identifier of a /64.
    reverse += [
        seg.network6.network_address.reverse_pointer.split(".", 16)[16]
        for seg in SEGMENTS
        if seg.network6 is not None
    ]
    records = [
        ",".join([name, str(addr), *([str(DNS_RECORDS6[name])] if name in DNS_RECORDS6 else [])])
        for name, addr in DNS_RECORDS.items()
    ]
    return [
        dnsmasq,
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        f"--listen-address={DNS},{DNS6}",
        "--bind-interfaces",
        *creds,
        "--log-facility=-",
        "--pid-file=",
        *(f"--local=/{zone}/" for zone in (DNS_DOMAIN, *reverse)),
        *(f"--host-record={record}" for record in records),
        *_zone_records(),
    ]


def _service_argv(svc: Service, state: Path) -> list[str] | None:
    if svc.kind == "web":
        tls = [f"{port}:{c.cert}:{c.key}" for port, c in certs.server_certs(state).items()]
        return [
            sys.executable,
            "-I",
            "-m",
            "cloudiag.lab.webserver",
            "--bind",
            str(svc.address),
            "--directory",
            str(state / "www"),
            "--http-port",
            str(svc.port),
            *(f"--tls={spec}" for spec in tls),
        ]
    dnsmasq = system.which("dnsmasq")
    return _dnsmasq_argv(dnsmasq) if dnsmasq else None


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def start_services(prefix: str, state: Path, nodes: list[Node]) -> None:
    """Start the servers of these nodes (stale ones killed first) and wait until bound.

    A web server that does not start raises LabError; a DNS server that does not is only
    logged (the lab works without one).
    """
    www = state / "www"
    www.mkdir(parents=True, exist_ok=True)
    (www / "index.html").write_text(_INDEX_HTML.format(prefix=prefix))
    if any(n.service and n.service.kind == "web" for n in nodes):
        certs.make(state)
        certs.install_ca(prefix, state)
    started: list[tuple[Service, int]] = []
    for n in nodes:
        svc = n.service
        if svc is None:
            continue
        ns = namespace(prefix, n)
        system.terminate(p for p in system.namespace_pids(ns) if is_service(p, svc))
        argv = _service_argv(svc, state)
        if argv is None:
            log.warning("dnsmasq is not installed: the lab has no DNS server")
            continue
        pid = system.spawn_detached(ns, argv, state / f"{svc.stem}.log")
        (state / f"{svc.stem}.pid").write_text(f"{pid}\n")
        started.append((svc, pid))
    deadline = time.monotonic() + SERVICE_START_TIMEOUT
    for svc, pid in started:
        while not system.listening(pid, svc.protocol, str(svc.address), svc.port):
            if not system.alive(pid) or time.monotonic() > deadline:
                tail = _log_tail(state / f"{svc.stem}.log")
                msg = f"the lab's {svc.program} did not start: {tail or 'no output'}"
                if svc.kind == "dns":
                    # DNS is optional: the lab works without it, status says why.
                    log.warning("%s", msg)
                    break
                raise LabError(msg)
            time.sleep(0.02)
