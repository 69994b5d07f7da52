"""Checkpoints of both training phases: their layout on the store, markers, resume."""

from __future__ import annotations

import json
from pathlib import Path

from rloop_trainer import store
from rloop_trainer.checkpoint import Checkpoints
from rloop_trainer.dapo import ResumeState, dapo_checkpoints
from rloop_trainer.rft import rft_checkpoints


class FakeTrainer:
    """A trainer whose whole state (DeepSpeed's, in TrainEngine) is one file with a label."""

    def __init__(self, label: str = "") -> None:
        self.label = label

    def save_checkpoint(self, local_dir: Path) -> None:
        (local_dir / "shard.bin").write_text(self.label)

    def load_checkpoint(self, local_dir: Path) -> None:
        self.label = (local_dir / "shard.bin").read_text()


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_only_checkpoints_with_a_marker_count(tmp_path: Path) -> None:
    checkpoints = Checkpoints(str(tmp_path), marker_key="step")
    for step in (2, 4, 6):
        store.write_bytes(store.join(checkpoints.step_uri(step), "w.bin"), b"")
    for step in (2, 4):
        store.write_marker(checkpoints.step_uri(step), {"step": step})

    assert checkpoints.completed_steps() == [2, 4]


def test_a_dapo_checkpoint_holds_resume_json_and_the_metrics_so_far(tmp_path: Path) -> None:
    checkpoints = dapo_checkpoints(str(tmp_path / "rl"))
    metrics = [{"step": float(step), "reward": step / 10} for step in range(1, 5)]
    for step, position in ((2, 8), (4, 16)):
        checkpoints.save(
            FakeTrainer(f"step {step}"),
            step,
            metrics[:step],
            {"step": step, "data_position": position},
        )

    assert files_under(tmp_path) == [
        "rl/checkpoints/step-000004/_SUCCESS",
        "rl/checkpoints/step-000004/metrics.jsonl",
        "rl/checkpoints/step-000004/resume.json",
        "rl/checkpoints/step-000004/shard.bin",
    ]
    step_dir = tmp_path / "rl/checkpoints/step-000004"
    assert json.loads((step_dir / "resume.json").read_text()) == {"step": 4, "data_position": 16}
    assert json.loads((step_dir / "_SUCCESS").read_text()) == {"step": 4}
    trainer = FakeTrainer()
    restored = checkpoints.load_latest(trainer)
    assert restored is not None and ResumeState(**restored.state) == ResumeState(4, 16)
    assert restored.metrics == metrics
    assert trainer.label == "step 4"


def test_an_rft_checkpoint_lies_under_checkpoint_uri_with_the_metrics_so_far(
    tmp_path: Path,
) -> None:
    checkpoints = rft_checkpoints(str(tmp_path / "rft/checkpoints"))
    metrics = [{"step": 1.0, "loss": 2.5}, {"step": 2.0, "loss": 1.5}, {"step": 3.0, "loss": 1.0}]
    checkpoints.save(FakeTrainer("after 2"), 2, metrics[:2])
    checkpoints.save(FakeTrainer("after 3"), 3, metrics)

    assert files_under(tmp_path) == [
        "rft/checkpoints/step-000003/_SUCCESS",
        "rft/checkpoints/step-000003/metrics.jsonl",
        "rft/checkpoints/step-000003/shard.bin",
    ]
    step_dir = tmp_path / "rft/checkpoints/step-000003"
    lines = (step_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == metrics
    assert json.loads((step_dir / "_SUCCESS").read_text()) == {"steps": 3}
    trainer = FakeTrainer()
    assert checkpoints.load_latest(trainer) == (3, metrics, None)
    assert trainer.label == "after 3"


def test_a_checkpoint_killed_before_its_marker_is_passed_over(tmp_path: Path) -> None:
    checkpoints = rft_checkpoints(str(tmp_path))
    checkpoints.save(FakeTrainer("complete"), 2, [{"step": 1.0}, {"step": 2.0}])
    store.write_bytes(store.join(checkpoints.step_uri(3), "shard.bin"), b"half written")

    trainer = FakeTrainer()
    restored = checkpoints.load_latest(trainer)

    assert restored is not None and restored.step == 2
    assert trainer.label == "complete"


def test_without_a_checkpoint_a_phase_starts_from_scratch(tmp_path: Path) -> None:
    assert dapo_checkpoints(str(tmp_path)).load_latest(FakeTrainer()) is None
    assert rft_checkpoints(str(tmp_path / "missing")).load_latest(FakeTrainer()) is None
