"""The one module that reads and writes the object store: `s3://` and `file://`.

A plain absolute path is treated as `file://`. Writes are atomic from a reader's
point of view: a local file is written to a temporary name and renamed into place;
an S3 PUT (multipart or not) becomes visible only when complete. The S3 endpoint
and credentials come from the standard environment (`AWS_ENDPOINT_URL_S3` or
`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`); every S3 call
rides out an unavailable store for a while (rloop_trainer.s3).

Every write and delete first passes the write guard, if one is set: the phase's
writer fence (rloop_trainer.fencing) stops an attempt that is no longer current.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from rloop_trainer import s3
from rloop_trainer.errors import MissingObject, PhaseError

MARKER_NAME = "_SUCCESS"
# Called with the URI before each write or delete (and before each retry of one).
WriteGuard = Callable[[str], None]
_write_guard: WriteGuard | None = None


def set_write_guard(guard: WriteGuard | None) -> None:
    """Check every later write and delete with `guard`; None: no check."""
    global _write_guard
    _write_guard = guard


def _guard(uri: str) -> Callable[[], None]:
    def check() -> None:
        if _write_guard is not None:
            _write_guard(uri)

    return check


def _is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def _local_path(uri: str) -> Path:
    if uri.startswith("file://"):
        return Path(urlparse(uri).path)
    if uri.startswith("/"):
        return Path(uri)
    raise PhaseError(
        f"unsupported storage URI {uri!r}: "
        "use s3://bucket/key, file:///abs/path or an absolute path"
    )


def _bucket_key(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if not parsed.netloc:
        raise PhaseError(f"S3 URI {uri!r} has no bucket; write it as s3://bucket/key")
    return parsed.netloc, parsed.path.lstrip("/")


def _transfer_config() -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=s3.MULTIPART_THRESHOLD, max_concurrency=4)


def join(uri: str, *parts: str) -> str:
    """Append path parts to a URI with single slashes."""
    joined = uri.rstrip("/")
    for part in parts:
        joined = f"{joined}/{part.strip('/')}"
    return joined


def read_bytes(uri: str) -> bytes:
    if _is_s3(uri):
        bucket, key = _bucket_key(uri)

        def get() -> bytes:
            body: bytes = s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
            return body

        return s3.call("read", uri, get)
    path = _local_path(uri)
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise MissingObject.at(uri) from exc
    except OSError as exc:
        raise PhaseError(f"cannot read {uri}: {exc.strerror}") from exc


def _write_local_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def write_bytes(uri: str, data: bytes) -> None:
    if _is_s3(uri):
        import io

        bucket, key = _bucket_key(uri)
        upload = s3.client(large_upload=len(data) >= s3.MULTIPART_THRESHOLD)
        s3.call(
            "write",
            uri,
            lambda: upload.upload_fileobj(io.BytesIO(data), bucket, key, Config=_transfer_config()),
            before_attempt=_guard(uri),
        )
        return
    _guard(uri)()
    try:
        _write_local_atomic(_local_path(uri), data)
    except OSError as exc:
        raise PhaseError(
            f"cannot write {uri}: {exc.strerror}; check the path and its permissions"
        ) from exc


def exists(uri: str) -> bool:
    if _is_s3(uri):
        bucket, key = _bucket_key(uri)

        def head() -> bool:
            try:
                s3.client().head_object(Bucket=bucket, Key=key)
            except Exception as exc:
                answer = s3.error_code(exc)
                if answer is not None and answer[0] in s3.MISSING_CODES:
                    return False
                raise
            return True

        return s3.call("look up", uri, head)
    return _local_path(uri).exists()


def list_uris(prefix_uri: str, suffix: str = "") -> list[str]:
    """Every object under `prefix_uri` (recursively) whose name ends in `suffix`, sorted."""
    if _is_s3(prefix_uri):
        bucket, key = _bucket_key(prefix_uri)
        prefix = key.rstrip("/") + "/" if key else ""

        def listing() -> list[str]:
            pages = (
                s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            )
            return [
                f"s3://{bucket}/{item['Key']}"
                for page in pages
                for item in page.get("Contents", [])
            ]

        found = s3.call("list", prefix_uri, listing)
        return sorted(uri for uri in found if uri.endswith(suffix))
    root = _local_path(prefix_uri)
    if not root.is_dir():
        return []
    scheme = "file://" if prefix_uri.startswith("file://") else ""
    return sorted(
        f"{scheme}{path}"
        for path in root.rglob("*")
        if path.is_file() and not path.name.startswith(".") and str(path).endswith(suffix)
    )


def download_dir(uri: str, local_dir: Path) -> Path:
    """Copy every object under `uri` into `local_dir` (keeping relative paths)."""
    local_dir.mkdir(parents=True, exist_ok=True)
    if not _is_s3(uri):
        source = _local_path(uri)
        if not source.is_dir():
            raise PhaseError(f"{uri} is not a directory; check the URI")
        shutil.copytree(source, local_dir, dirs_exist_ok=True)
        return local_dir
    bucket, key = _bucket_key(uri)
    prefix = key.rstrip("/") + "/"
    objects = list_uris(uri)
    if not objects:
        raise PhaseError(f"nothing under {uri}; check the URI or run the phase that writes it")
    for object_uri in objects:
        relative = _bucket_key(object_uri)[1][len(prefix) :]
        target = local_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        download = partial(
            s3.client().download_file,
            bucket,
            prefix + relative,
            str(target),
            Config=_transfer_config(),
        )
        s3.call("download", object_uri, download)
    return local_dir


def upload_dir(local_dir: Path, uri: str) -> None:
    """Copy every file under `local_dir` to `uri` (keeping relative paths)."""
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        target = join(uri, path.relative_to(local_dir).as_posix())
        if not _is_s3(target):
            write_bytes(target, path.read_bytes())
            continue
        bucket, key = _bucket_key(target)
        client = s3.client(large_upload=path.stat().st_size >= s3.MULTIPART_THRESHOLD)
        upload = partial(client.upload_file, str(path), bucket, key, Config=_transfer_config())
        s3.call("upload", target, upload, before_attempt=_guard(target))


def write_marker(prefix_uri: str, payload: dict[str, object]) -> None:
    """Publish `<prefix>/_SUCCESS`: the phase's output under `prefix_uri` is complete."""
    write_bytes(join(prefix_uri, MARKER_NAME), json.dumps(payload, indent=2).encode())


def retract_marker(prefix_uri: str) -> None:
    """Withdraw `<prefix>/_SUCCESS` before rewriting the output under `prefix_uri`, so that
    no reader takes a half-rewritten output for a finished one; a missing marker is fine."""
    marker_uri = join(prefix_uri, MARKER_NAME)
    if not _is_s3(marker_uri):
        _guard(marker_uri)()
        _local_path(marker_uri).unlink(missing_ok=True)
        return
    bucket, key = _bucket_key(marker_uri)
    s3.call(
        "delete",
        marker_uri,
        lambda: s3.client().delete_object(Bucket=bucket, Key=key),
        before_attempt=_guard(marker_uri),
    )


def read_marker(prefix_uri: str) -> dict[str, object] | None:
    marker_uri = join(prefix_uri, MARKER_NAME)
    if not exists(marker_uri):
        return None
    payload: dict[str, object] = json.loads(read_bytes(marker_uri))
    return payload


def remove_prefix(prefix_uri: str) -> None:
    """Delete every object under `prefix_uri` (an old checkpoint); missing is fine."""
    if not _is_s3(prefix_uri):
        _guard(prefix_uri)()
        shutil.rmtree(_local_path(prefix_uri), ignore_errors=True)
        return
    bucket, _ = _bucket_key(prefix_uri)
    keys = [_bucket_key(uri)[1] for uri in list_uris(prefix_uri)]
    for start in range(0, len(keys), 1000):
        batch = [{"Key": key} for key in keys[start : start + 1000]]
        delete = partial(
            s3.client().delete_objects, Bucket=bucket, Delete={"Objects": batch, "Quiet": True}
        )
        s3.call("delete", prefix_uri, delete, before_attempt=_guard(prefix_uri))
