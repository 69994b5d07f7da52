"""The store against a real SeaweedFS that blinks, freezes, dies and refuses.

Each test gets its own server (the session's is shared with other tests), which it may
kill, freeze (SIGSTOP) and start again on the same ports and data. The retry window and
the timeouts are cut to seconds (s3.StoreSettings) to keep the tests short; the
production defaults are checked in tests/unit/trainer/test_store.py.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rloop_trainer import checkpoint, s3, store, toy
from rloop_trainer.dapo import run_dapo_phase
from rloop_trainer.errors import PhaseError, StoreUnavailable

from tests.cluster.s3 import S3Endpoint, S3Server, controlled_s3

pytestmark = pytest.mark.s3

FAST = s3.StoreSettings(
    retry_seconds=60, connect_timeout=1, read_timeout=2, upload_read_timeout=2, slow_call_seconds=1
)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """A SeaweedFS of this test's own, with the trainer's environment pointed at it."""
    with controlled_s3(tmp_path) as running:
        point_at(running.endpoint, monkeypatch)
        s3.configure(FAST)
        yield running
    s3.configure()


def point_at(
    endpoint: S3Endpoint,
    monkeypatch: pytest.MonkeyPatch,
    key_id: str | None = None,
    secret: str | None = None,
) -> None:
    env = endpoint.client_env()
    env["AWS_ACCESS_KEY_ID"] = key_id or env["AWS_ACCESS_KEY_ID"]
    env["AWS_SECRET_ACCESS_KEY"] = secret or env["AWS_SECRET_ACCESS_KEY"]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s3.configure(FAST)


class Background:
    """A store call running in a thread while the test plays with the server."""

    def __init__(self, call: Callable[[], object]) -> None:
        self.error: BaseException | None = None
        self.finished_at: float | None = None
        self.thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self.thread.start()

    def _run(self, call: Callable[[], object]) -> None:
        try:
            call()
        except BaseException as exc:
            self.error = exc
        self.finished_at = time.monotonic()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the store call did not finish in {timeout}s"
        if self.error is not None:
            raise self.error


def wait_for_log(caplog: pytest.LogCaptureFixture, text: str, timeout: float) -> float:
    """Seconds until a log line containing `text` appeared."""
    started = time.monotonic()
    while not any(text in record.getMessage() for record in caplog.records):
        assert time.monotonic() - started < timeout, f"no log line with {text!r} in {timeout}s"
        time.sleep(0.1)
    return time.monotonic() - started


def test_a_write_rides_out_a_store_that_dies_and_comes_back(
    server: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    uri = f"s3://{server.endpoint.bucket}/run/metrics.jsonl"
    caplog.set_level(logging.WARNING, logger="rloop_trainer.s3")
    server.kill()

    write = Background(lambda: store.write_bytes(uri, b'{"step": 1}\n'))
    wait_for_log(caplog, "retrying in", timeout=10)
    server.start()
    write.join(timeout=60)

    assert store.read_bytes(uri) == b'{"step": 1}\n'
    waits = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert waits[0].startswith(f"object store: write {uri} failed (")


def test_a_frozen_store_is_reported_while_the_call_waits_for_it(
    server: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    uri = f"s3://{server.endpoint.bucket}/run/trajectories/step-000001.parquet"
    caplog.set_level(logging.WARNING, logger="rloop_trainer.s3")
    server.freeze()
    try:
        write = Background(lambda: store.write_bytes(uri, b"rows"))
        seconds = wait_for_log(caplog, "so far; still waiting for the server", timeout=10)
    finally:
        server.thaw()
    write.join(timeout=60)

    assert seconds < 3 * FAST.slow_call_seconds
    assert store.read_bytes(uri) == b"rows"


def test_a_store_that_stays_down_fails_after_the_window_with_a_clear_message(
    server: S3Server,
) -> None:
    s3.configure(s3.StoreSettings(retry_seconds=3, connect_timeout=1, read_timeout=2))
    uri = f"s3://{server.endpoint.bucket}/run/_SUCCESS"
    server.kill()
    started = time.monotonic()

    with pytest.raises(StoreUnavailable) as raised:
        store.exists(uri)

    assert 3 <= time.monotonic() - started < 20
    assert str(raised.value).startswith(
        f"cannot reach the object store for {uri} (endpoint {server.endpoint.endpoint_url}) "
        "within 3s of retries (RLOOP_STORE_RETRY_SECONDS)"
    )
    server.start()  # the fixture stops what it started


def test_a_wrong_access_key_is_named_though_a_head_has_no_body(
    server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(server.endpoint, monkeypatch, key_id="AKIDNOBODYHAS")
    uri = f"s3://{server.endpoint.bucket}/run/_SUCCESS"

    with pytest.raises(PhaseError) as raised:
        store.exists(uri)  # a HEAD: the answer is a bare 403

    assert raised.value.__class__ is not StoreUnavailable
    assert "does not know the access key id 'AKIDNOBODYHAS'" in str(raised.value)
    assert "AWS_ACCESS_KEY_ID is wrong or the endpoint is" in str(raised.value)


def test_a_wrong_secret_key_is_named(server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    point_at(server.endpoint, monkeypatch, secret="not-the-secret")

    with pytest.raises(PhaseError, match="the secret key does not match the access key id"):
        store.exists(f"s3://{server.endpoint.bucket}/run/_SUCCESS")


def test_a_missing_bucket_is_named(server: S3Server) -> None:
    with pytest.raises(PhaseError) as raised:
        store.read_bytes("s3://no-such-bucket/run/_SUCCESS")

    assert str(raised.value) == (
        "bucket 'no-such-bucket' of s3://no-such-bucket/run/_SUCCESS does not exist at "
        f"endpoint {server.endpoint.endpoint_url}; create it or fix the URI"
    )


@pytest.mark.slow
def test_a_dapo_phase_cut_off_after_a_checkpoint_resumes_with_every_metrics_row(
    server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = f"s3://{server.endpoint.bucket}"
    toy.build_policy(tmp_path / "policy", warm_start_steps=150, seed=0)
    store.upload_dir(tmp_path / "policy", f"{bucket}/models/toy")
    toy.write_prompts(toy.make_problems("train", 32, 0), f"{bucket}/data/train.parquet")
    output = f"{bucket}/run/iter-000/rl"
    config = toy.dapo_config(
        output,
        policy_uri=f"{bucket}/models/toy",
        train_data_uri=f"{bucket}/data/train.parquet",
        steps=4,
        checkpoint_every=2,
        **toy.TINY_DAPO,
    )
    save = checkpoint.Checkpoints.save

    def save_then_lose_the_store(self: checkpoint.Checkpoints, *args: Any, **kwargs: Any) -> None:
        save(self, *args, **kwargs)
        server.kill()  # the checkpoint of step 2 is complete; nothing after it gets through

    monkeypatch.setattr(checkpoint.Checkpoints, "save", save_then_lose_the_store)
    s3.configure(s3.StoreSettings(retry_seconds=2, connect_timeout=1, read_timeout=2))
    with pytest.raises(StoreUnavailable):
        run_dapo_phase(config)
    monkeypatch.setattr(checkpoint.Checkpoints, "save", save)
    server.start()

    run_dapo_phase(config)

    marker = store.read_marker(output)
    assert marker is not None and marker["resumed_from_step"] == 2
    lines = store.read_bytes(f"{output}/metrics.jsonl").decode().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]
