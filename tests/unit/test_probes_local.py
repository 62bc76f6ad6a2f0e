"""The probes themselves, on loopback (IPv4 and IPv6) against servers the test runs: a TCP
listener, the lab's web handler over HTTP and HTTPS, and a DNS server whose UDP answers
come truncated (or with a stranger's id first). The probe is run as the session runs it,
through its subcommand, and read through its parser."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cloudiag import parsers
from cloudiag.lab import certs
from cloudiag.lab.webserver import LabHandler
from cloudiag.sysvm.probes import dns_wire, run
from cloudiag.sysvm.probes import http as http_probe


def probe(capsys: pytest.CaptureFixture[str], *words: str) -> tuple[int, dict[str, Any]]:
    """(exit code, parsed summary) of ``probe <words>``."""
    code = run.main(list(words))
    out = capsys.readouterr()
    summary = parsers.parse(words[0], out.out, out.err, str(code))
    assert summary is not None and summary["complete"], out
    return code, summary


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


HOSTS = [
    ("127.0.0.1", "127.0.0.1"),
    pytest.param(
        "::1", "[::1]", marks=pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback")
    ),
]


@pytest.mark.parametrize(("host", "shown"), HOSTS)
def test_tcp_open_and_refused(capsys: pytest.CaptureFixture[str], host: str, shown: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.bind((host, 0))
        listener.listen()
        port = listener.getsockname()[1]
        code, opened = probe(capsys, "tcp", "-w", "2", "--", f"{shown}:{port}")
    assert (code, opened["state"], opened["af"], opened["dst_port"]) == (
        0,
        "open",
        4 if family == socket.AF_INET else 6,
        port,
    )
    code, refused = probe(capsys, "tcp", "-w", "2", "--", f"{shown}:{port}")
    assert (code, refused["state"]) == (1, "refused")


@contextlib.contextmanager
def web(tmp_path: Path, host: str, tls: bool = False) -> Iterator[int]:
    """The lab's web handler on loopback (HTTPS with the lab's certificate); its port."""
    (tmp_path / "index.html").write_text("hello\n")
    handler = lambda *a: LabHandler(*a, directory=str(tmp_path))  # noqa: E731
    server_class = type(
        "Server",
        (ThreadingHTTPServer,),
        {"address_family": socket.AF_INET6 if ":" in host else socket.AF_INET},
    )
    server = server_class((host, 0), handler)
    if tls:
        certs.make(tmp_path)
        served = certs.server_certs(tmp_path)[certs.HTTPS_PORT]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(served.cert, served.key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("host", "shown"), HOSTS)
def test_http_get_head_and_redirect(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, host: str, shown: str
) -> None:
    with web(tmp_path, host) as port:
        code, got = probe(capsys, "http", "-X", "GET", "--", f"http://{shown}:{port}/")
        assert (code, got["res"], got["bsize"], got["method"]) == (0, 200, 6, "GET")
        assert got["ttr"] is None and got["ttc"] <= got["ttfb"] <= got["rt"]
        code, moved = probe(capsys, "http", "-X", "HEAD", "--", f"http://{shown}:{port}/redirect")
        assert (code, moved["res"], moved["location"], moved["redirect"]) == (0, 302, "/", True)
        code, missing = probe(capsys, "http", "-X", "GET", "--", f"http://{shown}:{port}/nope")
        assert (code, missing["res"]) == (1, 404)


def test_https_trusts_the_extra_ca_and_checks_the_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    anchors = tmp_path / "ca.d"
    anchors.mkdir()
    with web(tmp_path, "127.0.0.1", tls=True) as port:
        url = f"https://127.0.0.1:{port}/"
        # The name the certificate is for, pinned to the loopback address (as the VM pins a
        # name it checked).
        named = ("--", f"https://web.lab.test:{port}/", "127.0.0.1")
        code, unknown = probe(capsys, "http", "-X", "GET", *named)
        assert code == 1 and unknown["tls"]["verified"] is False
        assert unknown["tls"]["error"] == "unable to get local issuer certificate"
        (anchors / "lab.pem").write_bytes(certs.ca_file(tmp_path).read_bytes())
        monkeypatch.setattr(http_probe, "EXTRA_CA_DIR", str(anchors))
        code, right = probe(capsys, "http", "-X", "GET", *named)
        assert (code, right["res"], right["tls"]["verified"]) == (0, 200, True)
        assert right["tls"]["subject"] == "O=cloudiag lab, CN=web.lab.test"
        # Trusted, but issued for web.lab.test and its address, not for 127.0.0.1.
        code, wrong = probe(capsys, "http", "-X", "GET", "--", url)
        assert code == 1 and "mismatch" in wrong["tls"]["error"]
        code, unchecked = probe(capsys, "http", "-k", "-X", "GET", "--", url)
        assert (code, unchecked["res"], unchecked["tls"]["verified"]) == (0, 200, False)


def _udp_and_tcp_port() -> tuple[socket.socket, socket.socket, int]:
    """A UDP socket and a listening TCP one on the same free port of 127.0.0.1."""
    for _ in range(50):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind(("127.0.0.1", port))
        except OSError:  # Someone's TCP port: try another.
            udp.close()
            tcp.close()
            continue
        tcp.listen()
        return udp, tcp, port
    raise RuntimeError("no port free for both UDP and TCP")


@contextlib.contextmanager
def dns_server(records: bytes, count: int) -> Iterator[int]:
    """A DNS server on 127.0.0.1: over UDP a stranger's answer, then a truncated one;
    over TCP (same port) the whole answer with ``records``."""
    udp, tcp, port = _udp_and_tcp_port()

    def reply(query: bytes, flags: int, body: bytes, n: int) -> bytes:
        qid = query[:2]
        question = query[12:]
        return qid + struct.pack("!HHHHH", flags, 1, n, 0, 0) + question + body

    def serve_udp() -> None:
        with contextlib.suppress(OSError):
            while True:
                query, peer = udp.recvfrom(512)
                stranger = bytes([query[0] ^ 0xFF, query[1]]) + query[2:]
                udp.sendto(reply(stranger, 0x8180, b"", 0), peer)
                udp.sendto(reply(query, 0x8380, b"", 0), peer)

    def serve_tcp() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = tcp.accept()
                with conn, conn.makefile("rb") as stream:
                    (length,) = struct.unpack("!H", stream.read(2))
                    answer = reply(stream.read(length), 0x8580, records, count)
                    conn.sendall(struct.pack("!H", len(answer)) + answer)

    for target in (serve_udp, serve_tcp):
        threading.Thread(target=target, daemon=True).start()
    try:
        yield port
    finally:
        udp.close()
        tcp.close()


def test_dns_truncated_over_udp_asks_again_over_tcp(capsys: pytest.CaptureFixture[str]) -> None:
    txt = b"\xc0\x0c" + struct.pack("!HHIH", 16, 1, 60, 6) + b"\x05hello"
    with dns_server(txt, 1) as port:
        code, found = probe(
            capsys,
            "dns",
            "-t",
            "TXT",
            "-s",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            "2",
            "--",
            "lab.test",
        )
    assert code == 0 and (found["proto"], found["truncated_udp"]) == ("TCP", True)
    assert found["answers"] == [
        {"NAME": "lab.test.", "TYPE": "TXT", "TTL": 60, "RDATA": '"hello"', "STRINGS": ["hello"]}
    ]
    assert found["result"]["flags"]["aa"] is True


def test_dns_without_an_answer(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        code, found = probe(
            capsys, "dns", "-s", "127.0.0.1", "-p", str(port), "-w", "0.2", "--", "lab.test"
        )
    assert code == 1 and found["result"] is None and "no answer" in found["error"]


def test_the_system_resolver_is_the_first_nameserver(tmp_path: Path) -> None:
    from cloudiag.sysvm.probes import dns

    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# x\nsearch lab.test\nnameserver bogus\nnameserver 198.51.100.53\nnameserver 192.0.2.1\n"
    )
    assert dns.system_server(str(conf)) == "198.51.100.53"
    assert dns.system_server(str(tmp_path / "none")) == "127.0.0.1"
    assert dns.question("192.0.2.1", {}) == ("1.2.0.192.in-addr.arpa.", "PTR")
    assert dns.question("192.0.2.1", {"-t": "A"}) == ("192.0.2.1.", "A")
    assert dns_wire.TYPE_CODES["SOA"] == 6


def test_the_request_is_what_the_url_says(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def answer() -> None:
            conn, _ = listener.accept()
            with conn, conn.makefile("rb") as stream:
                seen.append(b"".join(iter(stream.readline, b"\r\n")))
                conn.sendall(b"HTTP/1.1 204 No Content\r\nX-A: \x1b[31mred\r\n\r\n")

        thread = threading.Thread(target=answer)
        thread.start()
        # A name pinned to the address: the name goes in the Host header.
        url = f"http://web.lab.test:{port}/p?q=1#frag"
        code = run.main(["http", "-X", "HEAD", "--", url, "127.0.0.1"])
        thread.join(10)
    out = capsys.readouterr().out
    done = parsers.parse("http", out)
    assert done is not None
    assert (code, done["res"], done["ver"], done["dst_addr"]) == (0, 204, "1.1", "127.0.0.1")
    request = seen[0].decode().split("\r\n")
    assert request[0] == "HEAD /p?q=1 HTTP/1.1"
    assert f"Host: web.lab.test:{port}" in request and "Connection: close" in request
    # The header's escape character reaches the summary as it came, the report escaped.
    assert done["headers"] == [["X-A", "\x1b[31mred"]]
    assert "  X-A: \\x1b[31mred\n" in out and "\x1b" not in out.split("@cloudiag-probe")[0]
