"""A real S3 server for tests: SeaweedFS (`weed mini`) on loopback, free ports only.

`controlled_s3` also lets a test make the store misbehave the way a real one does:
freeze it (SIGSTOP: connections are accepted, nothing answers), kill it, and start
it again on the same ports and data directory.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from .procs import Server, free_port, free_ports, start_server, wait_until

WEED = Path(sys.executable).parent / "weed"
READY_TIMEOUT_S = 90.0
# `weed mini` starts a maintenance worker that dials the admin server at its HTTP port plus
# this offset, whatever -admin.port.grpc says, so both ports must be free.
WEED_GRPC_PORT_OFFSET = 10000


@dataclass(frozen=True)
class S3Endpoint:
    """What a client needs to reach the test bucket, as production configures it."""

    endpoint_url: str
    bucket: str
    access_key_id: str
    secret_access_key: str
    region: str = "us-east-1"

    def client_env(self) -> dict[str, str]:
        """The environment variables boto3 and the RLoop trainer read."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
        }


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _admin_port() -> int:
    for _ in range(50):
        port = free_port()
        if port + WEED_GRPC_PORT_OFFSET < 65536 and _port_free(port + WEED_GRPC_PORT_OFFSET):
            return port
    raise RuntimeError("no free port pair for the SeaweedFS admin server on 127.0.0.1")


def weed_mini_argv(data_dir: Path, bucket: str) -> tuple[list[str], int]:
    """The `weed mini` command line with every listening port chosen free; and the S3 port."""
    port_flags = [
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
        "s3.port",
        "s3.port.grpc",
        "webdav.port",
    ]
    ports = dict(zip(port_flags, free_ports(len(port_flags)), strict=True))
    argv = [
        str(WEED),
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-bucket={bucket}",
        "-master.telemetry=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-admin.port={_admin_port()}",
        *(f"-{flag}={port}" for flag, port in ports.items()),
    ]
    return argv, ports["s3.port"]


def s3_client(
    endpoint: S3Endpoint, access_key_id: str | None = None, secret_access_key: str | None = None
) -> Any:
    """A boto3 S3 client for `endpoint`; the key arguments override its credentials."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint.endpoint_url,
        aws_access_key_id=access_key_id or endpoint.access_key_id,
        aws_secret_access_key=secret_access_key or endpoint.secret_access_key,
        region_name=endpoint.region,
        config=botocore.config.Config(
            connect_timeout=2, read_timeout=30, retries={"max_attempts": 1}
        ),
    )


def _bucket_ready(endpoint: S3Endpoint) -> bool:
    try:
        s3_client(endpoint).head_bucket(Bucket=endpoint.bucket)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
        return False
    return True


@dataclass
class S3Server:
    """A running SeaweedFS that a test can freeze, kill and start again."""

    endpoint: S3Endpoint
    argv: list[str]
    work_dir: Path
    env: dict[str, str]
    server: Server = field(init=False)

    def start(self) -> None:
        """Start it (again: same ports, same data) and wait until the bucket answers."""
        self.server = start_server("seaweedfs", self.argv, self.work_dir, env=self.env)
        bucket = self.endpoint.bucket
        try:
            wait_until(lambda: _bucket_ready(self.endpoint), self.server, READY_TIMEOUT_S, bucket)
        except BaseException:
            self.server.stop()
            raise

    def freeze(self) -> None:
        """SIGSTOP: the kernel still accepts connections and requests; nothing answers."""
        os.killpg(self.server.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.killpg(self.server.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, as a crash or a lost node would: no goodbye to open connections."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.server.process.pid, signal.SIGKILL)
        self.server.process.wait()

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.thaw()  # a stopped process would sit on SIGTERM for the whole grace period
        self.server.stop()


@contextlib.contextmanager
def controlled_s3(work_dir: Path, bucket: str = "rloop") -> Iterator[S3Server]:
    """Start SeaweedFS with fresh credentials and `bucket`; stop it (and its group) on exit."""
    data_dir = work_dir / "seaweedfs"
    data_dir.mkdir(parents=True, exist_ok=True)
    argv, s3_port = weed_mini_argv(data_dir, bucket)
    endpoint = S3Endpoint(
        endpoint_url=f"http://127.0.0.1:{s3_port}",
        bucket=bucket,
        access_key_id=f"rloop{secrets.token_hex(6)}",
        secret_access_key=secrets.token_hex(20),
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work_dir)}
    env |= {
        "AWS_ACCESS_KEY_ID": endpoint.access_key_id,
        "AWS_SECRET_ACCESS_KEY": endpoint.secret_access_key,
    }
    server = S3Server(endpoint, argv, work_dir, env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def running_s3(work_dir: Path, bucket: str = "rloop") -> Iterator[S3Endpoint]:
    """Start SeaweedFS with fresh credentials and `bucket`; stop it (and its group) on exit."""
    with controlled_s3(work_dir, bucket) as server:
        yield server.endpoint
