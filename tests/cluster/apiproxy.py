"""An HTTPS proxy in front of the test API server that can hang chosen requests forever.

It terminates TLS with the API server's own serving certificate (valid for 127.0.0.1),
forwards each request with its headers (the bearer token included) to the API server,
and streams the answer back, watches included. `hang(matches)` holds every later
request that `matches(method, path)` selects without ever answering it, as a stalled
connection or a dead load balancer would; the held requests stay held until the proxy
stops. `requests` records every request line, for checks of what a client asked.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from .controlplane import ControlPlane
from .procs import free_port

Matcher = Callable[[str, str], bool]  # (method, path with query) -> hang it?
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class ApiProxy:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.port = free_port()
        self.requests: list[tuple[str, str]] = []
        self._matches: Matcher | None = None
        self._stopped = threading.Event()
        upstream = urlsplit(plane.server_url)
        self._upstream = (upstream.hostname or "127.0.0.1", upstream.port or 443)
        self._client_tls = ssl.create_default_context(cafile=str(plane.pki.ca.cert))
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(str(plane.pki.serving.cert), str(plane.pki.serving.key))
        # The handshake happens in each request's thread, not in the accepting one.
        self._server.socket = server_tls.wrap_socket(
            self._server.socket, server_side=True, do_handshake_on_connect=False
        )
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def kubeconfig(self, through: Path, path: Path) -> Path:
        """A copy of kubeconfig `through` whose server is this proxy."""
        config = json.loads(through.read_text())
        config["clusters"][0]["cluster"]["server"] = self.url
        path.write_text(json.dumps(config))
        path.chmod(0o600)
        return path

    def hang(self, matches: Matcher | None) -> None:
        """Hold every later request that `matches` selects; None: forward everything."""
        self._matches = matches

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Forward(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy._forward(self)

            do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

        return Forward

    def _forward(self, request: BaseHTTPRequestHandler) -> None:
        self.requests.append((request.command, request.path))
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else None
        matches = self._matches
        if matches is not None and matches(request.command, request.path):
            self._stopped.wait()  # never answered while the proxy runs
            request.close_connection = True
            return
        upstream = http.client.HTTPSConnection(*self._upstream, context=self._client_tls)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            upstream.request(request.command, request.path, body=body, headers=headers)
            answer = upstream.getresponse()
            request.send_response(answer.status, answer.reason)
            for key, value in answer.getheaders():
                if key.lower() not in HOP_BY_HOP:
                    request.send_header(key, value)
            length_header = answer.getheader("Content-Length")
            if length_header is not None:
                data = answer.read()
                request.send_header("Content-Length", str(len(data)))
                request.end_headers()
                request.wfile.write(data)
                return
            # A watch: pass each piece on as it comes.
            request.send_header("Transfer-Encoding", "chunked")
            request.end_headers()
            while chunk := answer.read1(65536):
                request.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                request.wfile.flush()
            request.wfile.write(b"0\r\n\r\n")
        except (OSError, http.client.HTTPException):
            request.close_connection = True  # the client or the API server went away
        finally:
            upstream.close()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def running_proxy(plane: ControlPlane) -> Iterator[ApiProxy]:
    proxy = ApiProxy(plane)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
