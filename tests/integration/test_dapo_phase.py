"""The DAPO exploration phase end to end on CPU: a tiny Qwen2-shaped model, a tokenizer
trained in the test, the toy sums task, DeepSpeed ZeRO-2 and the transformers engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import torch
from rloop_trainer import s3, store, toy
from rloop_trainer.cli import EXIT_PERMANENT
from rloop_trainer.config import DapoPhaseConfig
from rloop_trainer.dapo import run_dapo_phase
from rloop_trainer.errors import PhaseError
from rloop_trainer.policy import load_policy
from rloop_trainer.termination import PATH_ENV
from safetensors.torch import load_file

from tests.cluster.procs import free_port

WARM_START_STEPS = 150  # success rate on train about 0.2: neither 0 nor 1
TRAIN_PROBLEMS = 64


@dataclass(frozen=True)
class ToyInputs:
    policy_dir: Path
    train_data: Path


@pytest.fixture(scope="module")
def toy_inputs(tmp_path_factory: pytest.TempPathFactory) -> ToyInputs:
    root = tmp_path_factory.mktemp("toy")
    toy.build_policy(root / "policy", WARM_START_STEPS, seed=0)
    toy.write_prompts(toy.make_problems("train", TRAIN_PROBLEMS, 0), str(root / "train.parquet"))
    return ToyInputs(root / "policy", root / "train.parquet")


def dapo_config(
    policy_uri: str, train_data_uri: str, output_uri: str, **overrides: Any
) -> DapoPhaseConfig:
    settings: dict[str, Any] = {
        "policy_uri": policy_uri,
        "train_data_uri": train_data_uri,
        "steps": 4,
        "group_size": 8,
        "prompts_per_step": 32,
        "updates_per_step": 1,
        "oversample": 1,  # rounds as large as a step: cheaper on 2 cores
        "max_prompt_tokens": 16,
        "max_response_tokens": 8,
        "overlong_buffer": 2,
        "engine": "hf",
        "lr": 5e-4,
        "warmup_steps": 3,
        "micro_batch": 64,
        "zero_stage": 2,
    }
    return toy.dapo_config(output_uri, **(settings | overrides))


def read_metrics(output: Path) -> list[dict[str, float]]:
    lines = (output / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def read_trajectories(output: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in sorted((output / "trajectories").glob("step-*.parquet")):
        rows += pq.read_table(path).to_pylist()
    return rows


@pytest.mark.slow
def test_dapo_raises_the_training_success_rate(toy_inputs: ToyInputs, tmp_path: Path) -> None:
    config = dapo_config(
        str(toy_inputs.policy_dir), str(toy_inputs.train_data), str(tmp_path), steps=60
    )

    run_dapo_phase(config)

    accuracy = [m["accuracy"] for m in read_metrics(tmp_path)]
    start, end = sum(accuracy[:3]) / 3, sum(accuracy[-5:]) / 5
    assert 0.05 < start < 0.95, "the warm start must leave room to learn"
    # about 0.21 -> 0.40 when measured; with the advantage's sign flipped it falls to 0.01
    assert end > start + 0.1, f"success rate went from {start:.2f} to {end:.2f}: {accuracy}"
    assert store.read_marker(str(tmp_path)) is not None
    assert (tmp_path / "policy" / "model.safetensors").exists()


def test_a_finished_phase_reports_its_last_steps_score_where_the_operator_reads_it(
    toy_inputs: ToyInputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PATH_ENV, str(tmp_path / "termination"))
    output = tmp_path / "out"
    config = dapo_config(str(toy_inputs.policy_dir), str(toy_inputs.train_data), str(output))

    run_dapo_phase(config)

    last = read_metrics(output)[-1]
    report = json.loads((output / "report.json").read_text())
    assert report == {"rl_step": 4, "score": last["reward"], "accuracy": last["accuracy"]}
    assert json.loads((tmp_path / "termination").read_text()) == report


def test_every_rollout_is_cached_before_dynamic_sampling_drops_groups(
    toy_inputs: ToyInputs, tmp_path: Path
) -> None:
    config = dapo_config(
        str(toy_inputs.policy_dir), str(toy_inputs.train_data), str(tmp_path), steps=2
    )

    run_dapo_phase(config)

    metrics = read_metrics(tmp_path)
    rows = read_trajectories(tmp_path)
    generated = sum(int(m["generated_groups"]) for m in metrics) * config.group_size
    assert len(rows) == generated
    groups: dict[tuple[int, int, str], list[bool]] = {}
    for row in rows:
        key = (row["step"], row["generation_round"], row["prompt_id"])
        groups.setdefault(key, []).append(row["correct"])
    assert any(len(set(c)) == 1 for c in groups.values()), "all-equal groups must be cached"
    assert all(len(c) == config.group_size for c in groups.values())
    assert [m["step"] for m in metrics] == [1, 2]
    assert all(m["kept_groups"] <= config.prompts_per_step for m in metrics)
    assert {r["policy_version"] for r in rows if r["step"] == 2} == {1}
    # The warm-up counts RL steps (its 3 capped to the phase's 2), however many updates each
    # step takes.
    assert [m["lr"] for m in metrics] == pytest.approx([5e-4 / 2, 5e-4])


def test_a_step_short_of_groups_takes_fewer_whole_updates(
    toy_inputs: ToyInputs, tmp_path: Path
) -> None:
    config = dapo_config(
        str(toy_inputs.policy_dir),
        str(toy_inputs.train_data),
        str(tmp_path),
        steps=3,
        group_size=2,  # one kept group is 2 sequences, fewer than 4 updates
        prompts_per_step=4,
        updates_per_step=4,
        max_generation_rounds=1,
    )

    run_dapo_phase(config)

    metrics = read_metrics(tmp_path)
    assert [m["updates"] for m in metrics] == [m["kept_groups"] for m in metrics]
    assert any(0 < m["kept_groups"] < 4 for m in metrics), "the seed must give a shortfall"
    assert [m["skipped_step"] for m in metrics] == [float(m["kept_groups"] == 0) for m in metrics]


def test_a_step_without_a_whole_update_of_informative_groups_is_skipped_and_counted(
    toy_inputs: ToyInputs, tmp_path: Path
) -> None:
    untrained = toy.build_policy(tmp_path / "untrained", warm_start_steps=0)  # almost never right
    output = str(tmp_path / "out")
    config = dapo_config(
        str(untrained), str(toy_inputs.train_data), output, steps=2, max_generation_rounds=2
    )

    run_dapo_phase(config)

    metrics = read_metrics(tmp_path / "out")
    assert [(m["skipped_step"], m["updates"]) for m in metrics] == [(1.0, 0.0)] * 2
    assert all(m["kept_groups"] < config.groups_per_update for m in metrics)
    assert [m["generation_rounds"] for m in metrics] == [2, 2]  # every round was cached
    assert len(read_trajectories(tmp_path / "out")) == 2 * 2 * 32 * config.group_size
    start = load_file(untrained / "model.safetensors")
    end = load_file(tmp_path / "out" / "policy" / "model.safetensors")
    assert all(torch.equal(end[name], weight) for name, weight in start.items())


def test_a_finished_phase_run_again_changes_nothing(toy_inputs: ToyInputs, tmp_path: Path) -> None:
    config = dapo_config(
        str(toy_inputs.policy_dir), str(toy_inputs.train_data), str(tmp_path), steps=1
    )
    run_dapo_phase(config)
    written = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}

    run_dapo_phase(config)

    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == written


def _fresh_process_env() -> dict[str, str]:
    """This process's environment minus the rendezvous an in-process phase left behind."""
    rendezvous = {"MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK"}
    return {k: v for k, v in os.environ.items() if k not in rendezvous} | {"OMP_NUM_THREADS": "1"}


def _run_cli(config: DapoPhaseConfig, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "rloop_trainer.cli", "dapo"]
    with log.open("ab") as sink:
        return subprocess.Popen(
            [*command, "--config-json", config.model_dump_json()],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=_fresh_process_env(),
        )


def two_rank_command(config: DapoPhaseConfig) -> list[str]:
    """The phase under torchrun with two ranks on this machine."""
    torchrun = Path(sys.executable).parent / "torchrun"
    command = [str(torchrun), "--nproc_per_node=2", "--master_addr=127.0.0.1"]
    command += [f"--master_port={free_port()}", "-m", "rloop_trainer.cli", "dapo"]
    return [*command, "--config-json", config.model_dump_json()]


def _wait_for(path: Path, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert process.poll() is None, f"phase exited early with {process.returncode}"
        assert time.monotonic() < deadline, f"{path} did not appear in {timeout_s}s"
        time.sleep(0.1)


@pytest.mark.slow
def test_a_killed_phase_resumes_from_its_checkpoint_without_duplicate_rows(
    toy_inputs: ToyInputs, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    config = dapo_config(
        str(toy_inputs.policy_dir),
        str(toy_inputs.train_data),
        str(output),
        steps=6,
        checkpoint_every=2,
    )
    first = _run_cli(config, tmp_path / "phase.log")
    _wait_for(output / "trajectories" / "step-000003.parquet", first, timeout_s=300)
    first.kill()
    first.wait()
    killed_step_3 = pq.read_table(output / "trajectories" / "step-000003.parquet").to_pylist()

    second = _run_cli(config, tmp_path / "phase.log")
    assert second.wait(timeout=300) == 0, (tmp_path / "phase.log").read_text()[-3000:]

    marker = store.read_marker(str(output))
    assert marker is not None and marker["resumed_from_step"] == 2
    assert [m["step"] for m in read_metrics(output)] == [1, 2, 3, 4, 5, 6]
    rows = read_trajectories(output)
    keys = [(r["step"], r["generation_round"], r["prompt_id"], r["sample_index"]) for r in rows]
    assert len(keys) == len(set(keys))
    assert {r["step"] for r in rows} == {1, 2, 3, 4, 5, 6}
    resumed_step_3 = [r for r in rows if r["step"] == 3]
    assert [r["prompt_id"] for r in resumed_step_3] == [r["prompt_id"] for r in killed_step_3]
    assert [r["response"] for r in resumed_step_3] == [r["response"] for r in killed_step_3]


# Wall-clock measurements: they differ between any two runs, windows or not.


def _wall_clock(key: str) -> bool:
    """A metric that measures wall-clock time (a duration or a throughput): it differs between
    two runs of the same steps."""
    return key.startswith("time_") or key.endswith(("_per_s", "_per_rank_s"))


def _window(first_step: int, run_steps: int, previous_uri: str | None) -> dict[str, Any]:
    return {"first_step": first_step, "run_steps": run_steps, "previous_uri": previous_uri}


def _run_phases(configs: list[DapoPhaseConfig], log: Path) -> None:
    for config in configs:
        process = _run_cli(config, log)
        assert process.wait(timeout=300) == 0, log.read_text()[-3000:]


@pytest.mark.slow
def test_windows_of_a_vanilla_run_take_the_same_steps_as_one_uninterrupted_phase(
    toy_inputs: ToyInputs, tmp_path: Path
) -> None:
    inputs = (str(toy_inputs.policy_dir), str(toy_inputs.train_data))
    whole = dapo_config(*inputs, str(tmp_path / "whole"), steps=6)
    windows = [
        dapo_config(
            str(toy_inputs.policy_dir) if k == 0 else str(tmp_path / f"w{k - 1}" / "policy"),
            inputs[1],
            str(tmp_path / f"w{k}"),
            steps=2,
            window=_window(2 * k, 6, str(tmp_path / f"w{k - 1}") if k else None),
        )
        for k in range(3)
    ]

    _run_phases([whole, *windows], tmp_path / "phases.log")

    expected = read_metrics(tmp_path / "whole")
    got = [m for k in range(3) for m in read_metrics(tmp_path / f"w{k}")]
    # Every metric but the timings, exactly: the windows restore the exact fp32 weights,
    # Adam moments, RNG and data position, so the same operations run on the same numbers.
    assert [{k: v for k, v in m.items() if not _wall_clock(k)} for m in got] == [
        {k: v for k, v in m.items() if not _wall_clock(k)} for m in expected
    ]
    assert {m["lr"] for m in expected} != {expected[0]["lr"]}, "the warm-up must span windows"
    assert len({m["accuracy"] for m in expected}) > 1, "the steps must differ from each other"
    final = load_file(tmp_path / "whole" / "policy" / "model.safetensors")
    windowed = load_file(tmp_path / "w2" / "policy" / "model.safetensors")
    assert all(torch.equal(windowed[name], weight) for name, weight in final.items())


def test_a_window_whose_previous_window_left_no_state_fails_naming_it(
    toy_inputs: ToyInputs, tmp_path: Path
) -> None:
    (tmp_path / "w0").mkdir()
    config = dapo_config(
        str(toy_inputs.policy_dir),
        str(toy_inputs.train_data),
        str(tmp_path / "w1"),
        steps=2,
        window={"first_step": 2, "run_steps": 4, "previous_uri": str(tmp_path / "w0")},
    )

    with pytest.raises(PhaseError, match=r"w0 holds no checkpoint of step 2 to resume"):
        run_dapo_phase(config)


def test_a_malformed_prompts_file_fails_before_any_training(
    toy_inputs: ToyInputs, tmp_path: Path
) -> None:
    (tmp_path / "train.parquet").write_bytes(b"PAR1 but not really")
    config = dapo_config(
        str(toy_inputs.policy_dir), str(tmp_path / "train.parquet"), str(tmp_path / "out")
    )

    with pytest.raises(PhaseError, match=r"train\.parquet is not a readable parquet file"):
        run_dapo_phase(config)
    assert not (tmp_path / "out").exists()


def test_a_prompt_without_ground_truth_is_named(toy_inputs: ToyInputs, tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text('{"id": "a", "problem": "1+1=", "answer": ""}\n')
    config = dapo_config(
        str(toy_inputs.policy_dir), str(tmp_path / "train.jsonl"), str(tmp_path / "out")
    )

    with pytest.raises(PhaseError, match=r"train\.jsonl row 0: missing ground truth in 'answer'"):
        run_dapo_phase(config)


def test_a_policy_directory_without_a_model_is_named(toy_inputs: ToyInputs, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    config = dapo_config(str(tmp_path / "empty"), str(toy_inputs.train_data), str(tmp_path / "o"))

    with pytest.raises(PhaseError, match=r"empty has no config\.json"):
        run_dapo_phase(config)


def test_an_unreachable_store_is_a_clear_error(
    toy_inputs: ToyInputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    s3.configure(s3.StoreSettings(retry_seconds=0))
    config = dapo_config(str(toy_inputs.policy_dir), str(toy_inputs.train_data), "s3://b/out")
    try:
        with pytest.raises(PhaseError, match=r"cannot reach the object store for s3://b/out"):
            run_dapo_phase(config)
    finally:
        s3.configure()


def test_the_cli_reports_a_missing_input_as_a_permanent_failure(tmp_path: Path) -> None:
    config = {
        "policy_uri": str(tmp_path / "policy"),
        "train_data_uri": str(tmp_path / "missing.parquet"),
        "trajectories_uri": str(tmp_path / "out" / "trajectories"),
        "rl_policy_uri": str(tmp_path / "out" / "policy"),
        "output_uri": str(tmp_path / "out"),
        "max_response_tokens": 8,
        "overlong_buffer": 2,
    }

    termination = tmp_path / "termination-log"

    done = subprocess.run(
        [sys.executable, "-m", "rloop_trainer.cli", "dapo", "--config-json", json.dumps(config)],
        capture_output=True,
        text=True,
        env=_fresh_process_env() | {"RLOOP_TERMINATION_MESSAGE_PATH": str(termination)},
        timeout=120,
    )

    assert done.returncode == EXIT_PERMANENT
    line = f"rloop-trainer dapo: {tmp_path}/missing.parquet does not exist"
    assert line in done.stderr
    failure = json.loads(termination.read_text())
    assert failure["error"].startswith(line)
    assert (failure["reason"], failure["permanent"]) == ("InvalidInput", True)


@pytest.mark.slow
def test_two_ranks_under_torchrun_with_zero3_write_one_consistent_output(
    toy_inputs: ToyInputs, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    config = dapo_config(
        str(toy_inputs.policy_dir),
        str(toy_inputs.train_data),
        str(output),
        steps=3,
        prompts_per_step=8,
        updates_per_step=2,
        lr=5e-4,
        micro_batch=3,
        zero_stage=3,
    )
    done = subprocess.run(
        two_rank_command(config),
        capture_output=True,
        text=True,
        timeout=400,
        env=_fresh_process_env(),
    )

    assert done.returncode == 0, done.stderr[-3000:]
    metrics = read_metrics(output)
    assert [m["step"] for m in metrics] == [1, 2, 3]
    rows = read_trajectories(output)
    assert len(rows) == sum(int(m["generated_groups"]) for m in metrics) * config.group_size
    model, _ = load_policy(str(output / "policy"), torch.float32, torch.device("cpu"))
    assert model.model.embed_tokens.weight.shape[1] == 64  # gathered, not a ZeRO-3 shard


@pytest.mark.slow
def test_two_ranks_take_the_same_update_as_one_on_the_same_data(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    torchrun = [str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node=2"]
    torchrun += ["--master_addr=127.0.0.1", f"--master_port={free_port()}"]
    worlds = {"one": [sys.executable], "two": torchrun}
    for name, launcher in worlds.items():
        done = subprocess.run(
            [*launcher, "-m", "tests.integration.dapo_update_ranks", str(tmp_path / name)],
            capture_output=True,
            text=True,
            timeout=400,
            cwd=root,
            env=_fresh_process_env() | {"PYTHONPATH": str(root)},
        )
        assert done.returncode == 0, done.stderr[-3000:]

    one, two = (torch.load(tmp_path / name, weights_only=False) for name in worlds)

    assert two["stats"]["updates"] == one["stats"]["updates"] == 2
    assert two["stats"]["grad_norm"] == pytest.approx(one["stats"]["grad_norm"], rel=1e-4)
    # The ranks sum their shares in another order; Adam magnifies that rounding where a
    # gradient is about 0, by at most about its learning rate (1e-3).
    for name, weight in one["weights"].items():
        torch.testing.assert_close(two["weights"][name], weight, rtol=1e-4, atol=2e-5, msg=name)
