"""The lab's web server: files over HTTP, and over HTTPS with the lab's certificates.

``python -m cloudiag.lab.webserver --bind ADDR --directory DIR --http-port N
[--tls PORT:CERT:KEY]...``, run inside the web namespace. Every port serves the same
files; ``/redirect`` answers 302 to ``/`` (for the http check's redirect case). Each
port is bound before any is served, so once the HTTP port listens every port does.
"""

from __future__ import annotations

import argparse
import functools
import ssl
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

#: The path that answers a redirect, and where it points.
REDIRECT_PATH = "/redirect"
REDIRECT_TO = "/"


class LabHandler(SimpleHTTPRequestHandler):
    """The directory's files, plus the redirect."""

    def _redirect(self) -> bool:
        if self.path.split("?", 1)[0] != REDIRECT_PATH:
            return False
        self.send_response(302)
        self.send_header("Location", REDIRECT_TO)
        self.send_header("Content-Length", "0")
        self.end_headers()
        return True

    def do_GET(self) -> None:
        """GET, or the redirect."""
        if not self._redirect():
            super().do_GET()

    def do_HEAD(self) -> None:
        """HEAD, or the redirect."""
        if not self._redirect():
            super().do_HEAD()


def _tls_server(
    bind: str, spec: str, handler: functools.partial[LabHandler]
) -> ThreadingHTTPServer:
    port, cert, key = spec.split(":", 2)
    server = ThreadingHTTPServer((bind, int(port)), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def main(argv: list[str] | None = None) -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser(prog="cloudiag.lab.webserver")
    parser.add_argument("--bind", required=True)
    parser.add_argument("--directory", required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--tls", action="append", default=[], metavar="PORT:CERT:KEY")
    args = parser.parse_args(argv)
    handler = functools.partial(LabHandler, directory=args.directory)
    # The HTTP port last: the lab waits for it, and then every port is there.
    servers = [_tls_server(args.bind, spec, handler) for spec in args.tls]
    servers.append(ThreadingHTTPServer((args.bind, args.http_port), handler))
    for server in servers[:-1]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    servers[-1].serve_forever()


if __name__ == "__main__":
    main()
