"""MLflow: one run per RLoopRun (named after it, the spec as its parameters) and a nested
run per phase (the phase config as its parameters).

Each phase is a process of its own, so it finds the run's MLflow runs by their tags
before it creates them; a retried phase reopens its nested run. The run's curves go to
the RLoopRun's run at the run's RL step, and to the phase's run too. Both runs show the
state of the latest phase: RUNNING while one runs, then FINISHED or FAILED.

MLflow's client retries a request up to 7 times with growing waits (minutes in all);
here at most twice, 30 s each, unless the environment says otherwise, so that an
unreachable server costs the phase seconds before it is dropped. Credentials come from
the environment (MLFLOW_TRACKING_TOKEN, MLFLOW_TRACKING_USERNAME/PASSWORD).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rloop_trainer.tracking.base import TrackedPhase, Tracker, register
from rloop_trainer.tracking.names import at_spelled_out

HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
# MLflow's limits on one log_batch request.
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 1000
RUN_TAG = "rloop.run"  # namespace/name/uid, on the RLoopRun's run and on its phases' runs
LEVEL_TAG = "rloop.level"  # "run" or "phase"
PHASE_TAG = "rloop.phase"


def _tag_filter(tags: Mapping[str, str]) -> str:
    return " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


@register("mlflow")
class MlflowTracker(Tracker):
    def __init__(self, phase: TrackedPhase) -> None:
        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        from mlflow import MlflowClient

        settings = phase.tracking.mlflow
        assert settings is not None
        self.client = MlflowClient(tracking_uri=settings.tracking_uri)
        experiment = self._experiment_id(settings.experiment_name)
        run_tags = {RUN_TAG: phase.run_key, LEVEL_TAG: "run"}
        self.run_id = self._open(experiment, phase.run.name, run_tags, phase.run_params)
        phase_tags = {RUN_TAG: phase.run_key, LEVEL_TAG: "phase", PHASE_TAG: phase.label}
        phase_tags["mlflow.parentRunId"] = self.run_id
        self.phase_run_id = self._open(experiment, phase.label, phase_tags, phase.phase_params)
        self.client.update_run(self.run_id, status="RUNNING")

    def _experiment_id(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        try:
            return str(self.client.create_experiment(name))
        except MlflowException:  # another run's phase created it first
            again = self.client.get_experiment_by_name(name)
            if again is None:
                raise
            return str(again.experiment_id)

    def _open(
        self, experiment: str, name: str, tags: Mapping[str, str], params: Mapping[str, str]
    ) -> str:
        """The run with these tags: found, or created with `params` (a found run keeps the
        ones it has: MLflow refuses to change a parameter)."""
        found = self.client.search_runs([experiment], _tag_filter(tags), max_results=1)
        if found:
            run_id = str(found[0].info.run_id)
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        from mlflow.entities import Param

        run_id = str(self.client.create_run(experiment, tags=dict(tags), run_name=name).info.run_id)
        pairs = [Param(key, value) for key, value in params.items()]
        for chunk in _chunks(pairs, PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=chunk)
        return run_id

    def _log(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [Metric(at_spelled_out(k), v, now, step) for k, v in metrics.items()]
        for chunk in _chunks(entries, METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=chunk)

    def log_metrics(self, metrics: Mapping[str, float], rl_step: int) -> None:
        self._log(self.run_id, metrics, rl_step)
        self._log(self.phase_run_id, metrics, rl_step)

    def log_phase_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._log(self.phase_run_id, metrics, step)

    def log_files(self, files: Mapping[str, bytes], rl_step: int) -> None:
        with tempfile.TemporaryDirectory(prefix="rloop-mlflow-") as staging:
            for relative, body in files.items():
                path = Path(staging, relative)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(body)
            self.client.log_artifacts(self.run_id, staging)

    def finish(self, succeeded: bool) -> None:
        status = "FINISHED" if succeeded else "FAILED"
        self.client.set_terminated(self.phase_run_id, status)
        self.client.set_terminated(self.run_id, status)
