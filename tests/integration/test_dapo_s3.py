"""The DAPO phase reading and writing a real S3 server (SeaweedFS), as in production."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from rloop_trainer import s3, store, toy
from rloop_trainer.dapo import run_dapo_phase
from rloop_trainer.policy import load_policy

from tests.cluster.s3 import S3Endpoint

pytestmark = pytest.mark.s3


@pytest.fixture
def s3_env(s3_server: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The trainer's environment pointed at the test bucket; yields the bucket's URI."""
    for name, value in s3_server.client_env().items():
        monkeypatch.setenv(name, value)
    s3.configure()
    yield f"s3://{s3_server.bucket}"
    s3.configure()


def test_store_round_trips_objects_and_listings_on_s3(s3_env: str, tmp_path: Path) -> None:
    prefix = store.join(s3_env, "store-test")
    store.write_bytes(store.join(prefix, "b/two.bin"), b"2")
    store.write_bytes(store.join(prefix, "a/one.bin"), b"1")
    store.write_marker(prefix, {"ok": True})

    assert store.read_bytes(store.join(prefix, "a/one.bin")) == b"1"
    assert store.list_uris(prefix, suffix=".bin") == [
        store.join(prefix, "a/one.bin"),
        store.join(prefix, "b/two.bin"),
    ]
    assert store.read_marker(prefix) == {"ok": True}
    store.retract_marker(prefix)
    assert store.read_marker(prefix) is None
    assert not store.exists(store.join(prefix, "missing"))
    copied = store.download_dir(prefix, tmp_path / "copy")
    assert (copied / "b" / "two.bin").read_bytes() == b"2"
    store.remove_prefix(prefix)
    assert store.list_uris(prefix) == []


def test_dapo_phase_runs_entirely_against_s3(s3_env: str, tmp_path: Path) -> None:
    toy.build_policy(tmp_path / "policy", warm_start_steps=150, seed=0)
    policy_uri = store.join(s3_env, "models", "toy")
    store.upload_dir(tmp_path / "policy", policy_uri)
    train_uri = store.join(s3_env, "data", "train.parquet")
    toy.write_prompts(toy.make_problems("train", 32, 0), train_uri)
    output_uri = store.join(s3_env, "run", "iter-000", "rl")
    config = toy.dapo_config(
        output_uri,
        policy_uri=policy_uri,
        train_data_uri=train_uri,
        steps=3,
        oversample=1,
        max_generation_rounds=3,
        checkpoint_every=1,
        **toy.TINY_DAPO,
    )

    run_dapo_phase(config)

    trajectories = store.list_uris(store.join(output_uri, "trajectories"), suffix=".parquet")
    assert [uri.rsplit("/", 1)[1] for uri in trajectories] == [
        "step-000001.parquet",
        "step-000002.parquet",
        "step-000003.parquet",
    ]
    checkpoints = store.list_uris(store.join(output_uri, "checkpoints"), suffix="_SUCCESS")
    assert checkpoints == [store.join(output_uri, "checkpoints", "step-000002", "_SUCCESS")]
    assert store.read_marker(output_uri) is not None
    model, _ = load_policy(store.join(output_uri, "policy"), torch.float32, torch.device("cpu"))
    assert model.config.vocab_size == len(toy.build_tokenizer())
