"""The storage module on file://, and the S3 decisions that need no server (the S3 half
runs against SeaweedFS in integration: test_dapo_s3.py, test_store_outages.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from rloop_trainer import s3, store
from rloop_trainer.errors import PhaseError, StoreUnavailable


def test_written_bytes_read_back_and_leave_no_temporary_files(tmp_path: Path) -> None:
    uri = f"file://{tmp_path}/a/b/data.bin"

    store.write_bytes(uri, b"first")
    store.write_bytes(uri, b"second")

    assert store.read_bytes(uri) == b"second"
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["data.bin"]


def test_plain_absolute_paths_are_file_uris(tmp_path: Path) -> None:
    store.write_bytes(str(tmp_path / "x.txt"), b"x")

    assert store.read_bytes(f"file://{tmp_path}/x.txt") == b"x"
    assert store.exists(str(tmp_path / "x.txt"))
    assert not store.exists(str(tmp_path / "y.txt"))


def test_listing_is_recursive_sorted_and_filtered_by_suffix(tmp_path: Path) -> None:
    for name in ["t/step-000002.parquet", "t/step-000001.parquet", "t/sub/z.parquet", "t/n.txt"]:
        store.write_bytes(str(tmp_path / name), b"")

    listed = store.list_uris(str(tmp_path / "t"), suffix=".parquet")

    assert listed == [
        str(tmp_path / "t/step-000001.parquet"),
        str(tmp_path / "t/step-000002.parquet"),
        str(tmp_path / "t/sub/z.parquet"),
    ]
    assert store.list_uris(str(tmp_path / "missing")) == []


def test_directories_round_trip(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "nested").mkdir(parents=True)
    (source / "config.json").write_text("{}")
    (source / "nested" / "w.bin").write_bytes(b"w")

    store.upload_dir(source, f"file://{tmp_path}/remote")
    copied = store.download_dir(f"file://{tmp_path}/remote", tmp_path / "copy")

    assert (copied / "nested" / "w.bin").read_bytes() == b"w"
    assert (copied / "config.json").read_text() == "{}"


def test_marker_is_absent_until_written(tmp_path: Path) -> None:
    prefix = f"file://{tmp_path}/phase"

    assert store.read_marker(prefix) is None
    store.write_marker(prefix, {"steps": 3})
    assert store.read_marker(prefix) == {"steps": 3}


def test_a_missing_object_is_an_error_naming_the_uri(tmp_path: Path) -> None:
    with pytest.raises(PhaseError, match=r"nothing-here\.parquet does not exist"):
        store.read_bytes(str(tmp_path / "nothing-here.parquet"))


def test_an_unsupported_scheme_is_an_error_naming_the_forms_that_work() -> None:
    with pytest.raises(PhaseError, match="use s3://bucket/key"):
        store.read_bytes("gs://bucket/key")


def test_an_unreachable_s3_endpoint_is_an_error_naming_the_uri_and_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # discard port: refused
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    s3.configure(s3.StoreSettings(retry_seconds=0))
    try:
        with pytest.raises(
            StoreUnavailable, match=r"s3://bucket/key.*127\.0\.0\.1:9.*AWS_ENDPOINT_URL"
        ):
            store.read_bytes("s3://bucket/key")
    finally:
        s3.configure()


def test_a_retracted_marker_is_gone_and_retracting_twice_is_fine(tmp_path: Path) -> None:
    prefix = f"file://{tmp_path}/phase"
    store.write_marker(prefix, {"steps": 3})
    store.retract_marker(prefix)
    assert store.read_marker(prefix) is None
    store.retract_marker(prefix)
    assert store.read_marker(prefix) is None


def s3_answer(code: str, status: int) -> ClientError:
    """What botocore raises when S3 answers `status` with error `code`."""
    response: Any = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "PutObject")


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (s3_answer("SlowDown", 503), True),
        (s3_answer("InternalError", 500), True),
        (s3_answer("TooManyRequests", 429), True),
        (s3_answer("RequestTimeout", 400), True),
        (EndpointConnectionError(endpoint_url="http://s3"), True),
        (ReadTimeoutError(endpoint_url="http://s3"), True),
        (ConnectionResetError(), True),
        (s3_answer("AccessDenied", 403), False),
        (s3_answer("NoSuchKey", 404), False),
        (s3_answer("InvalidAccessKeyId", 403), False),
        (NoCredentialsError(), False),
        (ValueError("a bug"), False),
    ],
)
def test_only_an_unavailable_or_throttling_store_is_retried(
    error: Exception, transient: bool
) -> None:
    assert s3.is_transient(error) is transient


def test_a_wrapped_throttling_answer_is_still_retried() -> None:
    try:
        try:
            raise s3_answer("SlowDown", 503)
        except ClientError as exc:
            raise S3UploadFailedError(f"Failed to upload: {exc}")  # noqa: B904 (as boto3 does)
    except S3UploadFailedError as wrapped:
        assert s3.is_transient(wrapped)


@pytest.mark.parametrize(
    ("cause", "says"),
    [
        ("InvalidAccessKeyId", "does not know the access key id 'AKID'; either AWS_ACCESS_KEY_ID"),
        ("SignatureDoesNotMatch", "the secret key does not match"),
        ("NoSuchBucket", "bucket 'bucket' does not exist there"),
        ("AccessDenied", "the credentials are valid there but not allowed this call"),
    ],
)
def test_a_refusal_names_its_likely_cause(cause: str, says: str) -> None:
    message = s3.refusal_message("s3://bucket/run/_SUCCESS", "403", cause, "http://s3:8333", "AKID")
    assert message.startswith("S3 at endpoint http://s3:8333 refused s3://bucket/run/_SUCCESS")
    assert says in message


def test_the_retry_window_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert s3.StoreSettings.from_env().retry_seconds >= 60
    monkeypatch.setenv(s3.RETRY_SECONDS_ENV, "5")
    assert s3.StoreSettings.from_env().retry_seconds == 5
    monkeypatch.setenv(s3.RETRY_SECONDS_ENV, "a minute")
    with pytest.raises(PhaseError, match=r"RLOOP_STORE_RETRY_SECONDS='a minute' is not a number"):
        s3.StoreSettings.from_env()


def test_every_kind_of_write_passes_the_write_guard_first(tmp_path: Path) -> None:
    checked: list[str] = []
    source = tmp_path / "src"
    source.mkdir()
    (source / "w.bin").write_bytes(b"w")
    store.set_write_guard(checked.append)
    try:
        store.write_bytes(f"{tmp_path}/out/a.bin", b"a")
        store.upload_dir(source, f"{tmp_path}/out/dir")
        store.write_marker(f"{tmp_path}/out", {"ok": True})
        store.retract_marker(f"{tmp_path}/out")
        store.remove_prefix(f"{tmp_path}/out/dir")
    finally:
        store.set_write_guard(None)

    assert checked == [
        f"{tmp_path}/out/a.bin",
        f"{tmp_path}/out/dir/w.bin",
        f"{tmp_path}/out/_SUCCESS",
        f"{tmp_path}/out/_SUCCESS",
        f"{tmp_path}/out/dir",
    ]


def test_a_write_the_guard_refuses_leaves_nothing(tmp_path: Path) -> None:
    def refuse(uri: str) -> None:
        raise PhaseError(f"not allowed: {uri}")

    store.set_write_guard(refuse)
    try:
        with pytest.raises(PhaseError, match="not allowed"):
            store.write_bytes(f"{tmp_path}/a.bin", b"a")
    finally:
        store.set_write_guard(None)
    assert list(tmp_path.iterdir()) == []
