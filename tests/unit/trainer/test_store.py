"""The storage module on file:// (the S3 half runs against SeaweedFS in integration)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rloop_trainer import store
from rloop_trainer.errors import PhaseError


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
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    store._s3_client.cache_clear()
    try:
        with pytest.raises(PhaseError, match=r"s3://bucket/key.*127\.0\.0\.1:9.*AWS_ENDPOINT_URL"):
            store.read_bytes("s3://bucket/key")
    finally:
        store._s3_client.cache_clear()


def test_a_retracted_marker_is_gone_and_retracting_twice_is_fine(tmp_path: Path) -> None:
    prefix = f"file://{tmp_path}/phase"
    store.write_marker(prefix, {"steps": 3})
    store.retract_marker(prefix)
    assert store.read_marker(prefix) is None
    store.retract_marker(prefix)
    assert store.read_marker(prefix) is None
