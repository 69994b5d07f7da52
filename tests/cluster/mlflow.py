"""A real MLflow tracking server for tests, and a proxy that can make it answer 500.

`mlflow server` from the mlflow package, on loopback: runs in a sqlite file, artifacts in
the test S3 bucket under mlflow/, which the server itself reads and writes
(--serve-artifacts, MLflow's default), so clients need no S3 credentials.

`FaultyProxy` forwards every request to the server until `answer_500()`; from then on
it answers each with HTTP 500, as a tracking server whose database broke does.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .procs import Server, free_port, start_ready_server
from .s3 import S3Endpoint

log = logging.getLogger(__name__)

MLFLOW = Path(sys.executable).parent / "mlflow"
# Imports, then sqlite migrations: about 20 s on two busy cores.
READY_TIMEOUT_S = 180.0
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass(frozen=True)
class MlflowServer:
    tracking_uri: str
    artifacts_prefix: str  # the key prefix of the artifacts in the S3 bucket
    server: Server


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def running_mlflow(work_dir: Path, s3: S3Endpoint) -> Iterator[MlflowServer]:
    """Start `mlflow server` with a sqlite backend and the test bucket as artifact store;
    stop it (and its workers) on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        str(MLFLOW), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{work_dir / 'mlflow.db'}",
        "--artifacts-destination", f"s3://{s3.bucket}/mlflow",
    ]  # fmt: skip
    env = {"PATH": f"{MLFLOW.parent}:/usr/bin:/bin", "HOME": str(work_dir)}
    env |= s3.client_env() | {"MLFLOW_S3_ENDPOINT_URL": s3.endpoint_url}
    log.info("waiting up to %.0fs for the MLflow server at %s", READY_TIMEOUT_S, url)
    server = start_ready_server(
        "mlflow", argv, work_dir, lambda: _healthy(url), READY_TIMEOUT_S, env=env
    )
    try:
        yield MlflowServer(url, "mlflow/", server)
    finally:
        server.stop()


class FaultyProxy:
    """A plain HTTP proxy on loopback in front of `upstream` (http://127.0.0.1:port)."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.removeprefix("http://").partition(":")
        self._upstream = (host, int(port))
        self.failing = threading.Event()
        self.answered_500 = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer_500(self) -> None:
        self.failing.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Forward(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def _any(self) -> None:
                proxy._answer(self)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

        return Forward

    def _answer(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else None
        if self.failing.is_set():
            self.answered_500 += 1
            request.send_response(500)
            request.send_header("Content-Type", "application/json")
            message = b'{"error_code": "INTERNAL_ERROR", "message": "database is locked"}'
            request.send_header("Content-Length", str(len(message)))
            request.end_headers()
            request.wfile.write(message)
            return
        connection = http.client.HTTPConnection(*self._upstream, timeout=60)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        connection.request(request.command, request.path, body=body, headers=headers)
        answer = connection.getresponse()
        content = answer.read()
        request.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in HOP_BY_HOP:
                request.send_header(key, value)
        request.send_header("Content-Length", str(len(content)))
        request.end_headers()
        request.wfile.write(content)
        connection.close()


@contextlib.contextmanager
def faulty_proxy(upstream: str) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(upstream)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
