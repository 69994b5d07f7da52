"""A phase's trackers: a failing one is one warning and is dropped, never the phase."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest
from rloop_trainer.config import FilterPhaseConfig, PhaseTracking
from rloop_trainer.tracking.base import BACKENDS, TrackedPhase, Tracker
from rloop_trainer.tracking.session import DROPPED, phase_trackers

Calls = list[tuple[str, Any]]


class Recording(Tracker):
    """Records what it gets; fails from its `fail_from`-th call on (0: in the constructor)."""

    fail_from: int | None = None

    def __init__(self, phase: TrackedPhase) -> None:
        self.phase = phase
        self.calls: Calls = []
        self._maybe_fail()
        CREATED.append(self)

    def _maybe_fail(self) -> None:
        if self.fail_from is not None and len(self.calls) >= self.fail_from:
            raise ConnectionError("HTTP 500 from the tracker")

    def log_metrics(self, metrics: Mapping[str, float], rl_step: int) -> None:
        self._maybe_fail()
        self.calls.append(("metrics", (dict(metrics), rl_step)))

    def log_phase_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._maybe_fail()
        self.calls.append(("phase", (dict(metrics), step)))

    def log_files(self, files: Mapping[str, bytes], rl_step: int) -> None:
        self._maybe_fail()
        self.calls.append(("files", (sorted(files), rl_step)))

    def finish(self, succeeded: bool) -> None:
        self.calls.append(("finish", succeeded))


class FailingMidPhase(Recording):
    fail_from = 2


class Unreachable(Recording):
    fail_from = 0


CREATED: list[Recording] = []


def filter_config(**tracking: Any) -> FilterPhaseConfig:
    section = PhaseTracking(
        files_uri="file:///tmp/tracking", run_spec={"mode": "rloop"}, **tracking
    )
    return FilterPhaseConfig(
        trajectories_uri="file:///t",
        expert_uri="file:///e/data.parquet",
        report_uri="file:///e/report.json",
        output_uri="file:///e",
        tracking=section,
        run={"name": "demo", "iteration": 2, "rl_step": 12},
    )


@pytest.fixture
def backends(monkeypatch: pytest.MonkeyPatch) -> None:
    CREATED.clear()
    monkeypatch.setitem(BACKENDS, "tensorboard", Recording)
    monkeypatch.setitem(BACKENDS, "wandb", FailingMidPhase)
    monkeypatch.setitem(BACKENDS, "mlflow", Unreachable)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    dropped = DROPPED.split("%s")[1]
    return [r.getMessage() for r in caplog.records if dropped in r.getMessage()]


@pytest.mark.usefixtures("backends")
def test_a_tracker_failing_at_start_or_mid_phase_is_one_warning_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = filter_config(
        tensorboard=True, wandb={"project": "p"}, mlflow={"tracking_uri": "http://127.0.0.1:9"}
    )
    with caplog.at_level(logging.WARNING), phase_trackers(config, "filter") as trackers:
        for step in range(5):
            trackers.log_metrics({"filter/hard_prompts": float(step)}, 12 + step)

    healthy, failing = CREATED
    assert [call for call, _ in healthy.calls] == ["metrics"] * 5 + ["finish"]
    assert [call for call, _ in failing.calls] == ["metrics"] * 2
    warnings = warnings_of(caplog)
    assert len(warnings) == 2
    assert any(w.startswith("tracker mlflow failed") for w in warnings)
    assert any(w.startswith("tracker wandb failed") for w in warnings)
    assert all("HTTP 500 from the tracker" in w for w in warnings)


@pytest.mark.usefixtures("backends")
def test_the_phase_sees_its_identity_and_parameters() -> None:
    with phase_trackers(filter_config(tensorboard=True), "filter"):
        pass

    [tracker] = CREATED
    assert tracker.phase.label == "iter-002/filter"
    assert tracker.phase.run_key == "default/demo/local"
    assert tracker.phase.run_params == {"mode": "rloop"}
    assert tracker.phase.phase_params["run.rl_step"] == "12"
    assert "tracking.files_uri" not in tracker.phase.phase_params


@pytest.mark.usefixtures("backends")
def test_a_phase_that_raises_closes_its_trackers_as_failed() -> None:
    with pytest.raises(RuntimeError), phase_trackers(filter_config(tensorboard=True), "filter"):
        raise RuntimeError("the phase failed")

    assert CREATED[0].calls == [("finish", False)]


@pytest.mark.usefixtures("backends")
@pytest.mark.parametrize("main_rank", [True, False])
def test_no_tracker_opens_without_tracking_or_off_the_main_rank(main_rank: bool) -> None:
    untracked = filter_config().model_copy(update={"tracking": None})
    with phase_trackers(untracked, "filter", main_rank):
        pass
    with phase_trackers(filter_config(tensorboard=True), "filter", main_rank=False):
        pass
    assert CREATED == []


def test_an_evaluation_is_named_by_the_rl_steps_behind_its_policy() -> None:
    section = filter_config(tensorboard=True).tracking
    assert section is not None
    phase = TrackedPhase(
        filter_config().run.model_copy(update={"rl_step": 8}), "eval", section, {}, {}
    )
    assert phase.label == "eval/rl-step-000008"
