"""`rloop run` and `rloop demo`: the parts that need no trainer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from rloop_operator.api import SpecError, parse_spec
from rloop_operator.demo import MLFLOW_EXPERIMENT, demo_run_document, write_demo_run
from rloop_operator.lifecycle import Phase
from rloop_operator.local_executor import ChildRecord, LocalState, load_run, phase_failure

from tests.unit.operator.world import spec_dict

ROOT = Path(__file__).resolve().parents[3]


def test_the_local_example_is_the_demo_run_with_two_iterations() -> None:
    example = yaml.safe_load((ROOT / "examples" / "local-run.yaml").read_text())
    demo = demo_run_document(Path("/tmp/rloop-demo"), "rloop", iterations=2)
    assert parse_spec(example["spec"]) == parse_spec(demo["spec"])
    assert example["metadata"]["name"] == demo["metadata"]["name"]


def test_both_demo_runs_are_valid_and_differ_only_in_mode_and_name(tmp_path: Path) -> None:
    rloop = demo_run_document(tmp_path, "rloop", iterations=3)
    vanilla = demo_run_document(tmp_path, "vanilla", iterations=3)
    assert parse_spec(vanilla["spec"]).total_iterations == 3
    assert {**rloop["spec"], "mode": "vanilla"} == vanilla["spec"]
    assert rloop["metadata"]["name"] != vanilla["metadata"]["name"]


def test_a_yaml_with_an_unknown_field_names_it(tmp_path: Path) -> None:
    document = demo_run_document(tmp_path, "rloop", iterations=1)
    document["spec"]["dapo"]["lr_schedule"] = "cosine"
    run_file = tmp_path / "run.yaml"
    run_file.write_text(yaml.safe_dump(document))
    with pytest.raises(SpecError, match=r"spec\.dapo\.lr_schedule: unknown field"):
        load_run(run_file)


def test_a_file_that_is_not_an_rlooprun_says_so(tmp_path: Path) -> None:
    run_file = tmp_path / "deployment.yaml"
    run_file.write_text("kind: Deployment\nmetadata: {name: x}\n")
    with pytest.raises(SpecError, match="not an RLoopRun"):
        load_run(run_file)


def test_a_child_left_running_by_an_interrupted_executor_is_run_again(tmp_path: Path) -> None:
    state = LocalState(tmp_path)
    created = "2026-01-01T00:00:00+00:00"
    state.save_child(ChildRecord("tiny-i00-rl", 0, "Exploring", "Succeeded", created, created))
    state.save_child(ChildRecord("tiny-i00-filter", 0, "Filtering", "Running", created))
    children = state.children(parse_spec(spec_dict()))
    assert [(c.name, c.phase) for c in children] == [("tiny-i00-rl", Phase.SUCCEEDED)]
    assert not (tmp_path / "children" / "tiny-i00-filter.json").exists()


@pytest.mark.parametrize(
    ("name", "problem"),
    [("qwen2.5-math", "must be a DNS-1035 label"), ("a" * 34, "must be at most 33 characters")],
)
def test_rloop_run_refuses_a_run_name_the_cluster_would_refuse(
    tmp_path: Path, name: str, problem: str
) -> None:
    document = demo_run_document(tmp_path, "rloop", iterations=1)
    document["metadata"]["name"] = name
    run_file = tmp_path / "run.yaml"
    run_file.write_text(yaml.safe_dump(document))
    with pytest.raises(SpecError, match=problem):
        load_run(run_file)


def test_a_failed_child_that_was_permanent_stays_so_for_the_plan(tmp_path: Path) -> None:
    state = LocalState(tmp_path)
    created = "2026-01-01T00:00:00+00:00"
    line = "rloop-trainer dapo: /data/train.parquet does not exist; check the URI"
    failed = ChildRecord("tiny-i00-rl", 0, "Exploring", "Failed", created, created, line)
    failed.reason, failed.permanent = "InvalidInput", True
    state.save_child(failed)

    (child,) = state.children(parse_spec(spec_dict()))

    assert (child.reason, child.message, child.permanent) == ("InvalidInput", line, True)


def test_a_phase_failure_is_the_trainers_own_line_not_torchruns_traceback(tmp_path: Path) -> None:
    line = "rloop-trainer dapo: /data/train.parquet does not exist; check the URI"
    log = tmp_path / "tiny-i00-rl.log"
    log.write_text(f"{line}\nTraceback (most recent call last):\n  torch.distributed...\n")
    termination = tmp_path / "tiny-i00-rl.termination"
    termination.write_text(json.dumps({"error": line, "reason": "InvalidInput", "permanent": True}))

    failure = phase_failure(1, log, termination)

    assert (failure.message, failure.reason, failure.permanent) == (line, "InvalidInput", True)


def test_a_crash_without_a_message_is_retryable_and_shows_the_log(tmp_path: Path) -> None:
    log = tmp_path / "tiny-i00-rl.log"
    log.write_text("Killed\n")

    failure = phase_failure(137, log, tmp_path / "none.termination")

    assert not failure.permanent and failure.reason == "ProcessFailed"
    assert failure.message.startswith(f"exit code 137; log {log}") and "Killed" in failure.message


def test_the_demo_with_mlflow_logs_both_runs_to_one_experiment(tmp_path: Path) -> None:
    for mode in ("rloop", "vanilla"):
        path = write_demo_run(tmp_path, mode, 3, "http://127.0.0.1:5000")
        tracking = parse_spec(yaml.safe_load(path.read_text())["spec"]).tracking
        assert tracking.mlflow is not None and tracking.backends == ["mlflow"]
        assert tracking.mlflow.tracking_uri == "http://127.0.0.1:5000"
        assert tracking.mlflow.experiment_name == MLFLOW_EXPERIMENT
    plain = write_demo_run(tmp_path, "rloop", 3, None)
    assert "tracking" not in yaml.safe_load(plain.read_text())["spec"]
