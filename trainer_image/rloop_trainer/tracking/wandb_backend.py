"""Weights & Biases: one W&B run per RLoopRun, which every phase resumes by its id.

W&B wants its own step to grow with each call, which several processes adding to one run
cannot promise; so every curve is drawn against rl_step (define_metric) and a phase's
own series against <label>/step. The spec is the run's config, each phase config sits
under its label. The analysis files go to the run's files, its pictures also as images.

Offline mode writes the run into a local directory; at the phase's end it is copied to
<files_uri>/wandb/, from where `wandb sync` uploads it later. The API key comes from the
environment (WANDB_API_KEY).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rloop_trainer import store
from rloop_trainer.tracking.base import TrackedPhase, Tracker, register

RUN_AXIS = "rl_step"
INIT_TIMEOUT_S = 60.0


@register("wandb")
class WandbTracker(Tracker):
    def __init__(self, phase: TrackedPhase) -> None:
        import wandb

        settings = phase.tracking.wandb
        assert settings is not None
        self.phase = phase
        self.offline = settings.mode == "offline"
        self.local = Path(tempfile.mkdtemp(prefix="rloop-wandb-"))
        self.run: Any = wandb.init(
            project=settings.project,
            entity=settings.entity,
            mode=settings.mode,
            id=f"rloop-{phase.run_digest}",
            name=phase.run.name,
            dir=str(self.local),
            resume="allow",
            settings=wandb.Settings(
                console="off", silent=True, x_disable_stats=True, init_timeout=INIT_TIMEOUT_S
            ),
        )
        config: Any = self.run.config  # wandb's Config.update has no annotations
        config.update(dict(phase.tracking.run_spec), allow_val_change=True)
        config.update({phase.label: dict(phase.phase_params)}, allow_val_change=True)
        self.axes: dict[str, str] = {}

    def _log_against(self, values: Mapping[str, Any], axis: str, step: int) -> None:
        """Log `values` at `step` of `axis`, each new key drawn against that axis."""
        if axis not in self.axes.values():
            self.run.define_metric(axis)
        for name in values:
            if self.axes.get(name) != axis:
                self.run.define_metric(name, step_metric=axis)
                self.axes[name] = axis
        self.run.log({**values, axis: step})

    def log_metrics(self, metrics: Mapping[str, float], rl_step: int) -> None:
        self._log_against(metrics, RUN_AXIS, rl_step)

    def log_phase_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        named = {f"{self.phase.label}/{key}": value for key, value in metrics.items()}
        self._log_against(named, f"{self.phase.label}/step", step)

    def log_files(self, files: Mapping[str, bytes], rl_step: int) -> None:
        import wandb

        pictures = {}
        for relative, body in files.items():
            path = Path(self.run.dir, relative)  # the run's files: W&B uploads them
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
            if relative.endswith(".png"):
                pictures[relative.removesuffix(".png")] = wandb.Image(str(path))
        if pictures:
            self._log_against(pictures, RUN_AXIS, rl_step)

    def finish(self, succeeded: bool) -> None:
        self.run.finish(exit_code=0 if succeeded else 1)
        if self.offline:
            self._publish_offline_run()
        shutil.rmtree(self.local, ignore_errors=True)

    def _publish_offline_run(self) -> None:
        remote = store.join(self.phase.tracking.files_uri, "wandb")
        root = self.local / "wandb"
        for run_dir in root.glob("offline-run-*"):
            for path in sorted(run_dir.rglob("*")):
                if path.is_file():  # follows links: W&B links the files it was given
                    relative = path.relative_to(root).as_posix()
                    store.write_bytes(store.join(remote, relative), path.read_bytes())
