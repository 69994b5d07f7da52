"""Resume state of a training phase: one `step-NNNNNN/` per checkpoint under a root URI.

Every rank saves its DeepSpeed shards (model, optimizer, scheduler) and RNG state to
a local directory and uploads them; after a barrier rank 0 writes the metrics of every
step so far, the phase's small JSON state file if it has one, and the `_SUCCESS` marker.
Only a checkpoint with its marker counts, so a phase killed while saving resumes from
the previous one. The metrics are part of the checkpoint because the store can fail
between a checkpoint and the next write of the phase's metrics.jsonl: a phase resumed
from step N takes its metrics of steps 1..N from the checkpoint, never loses one and
never repeats one. Older checkpoints are removed once a newer one is complete. The
layouts on the store, which resumed runs and the tests rely on:

    DAPO  <output_uri>/checkpoints/step-NNNNNN/  metrics.jsonl (the metrics so far),
                                                 resume.json (step, data position),
                                                 _SUCCESS {"step": N}
    RFT   <checkpoint_uri>/step-NNNNNN/          metrics.jsonl (the metrics so far),
                                                 _SUCCESS {"steps": N}
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from rloop_trainer import dist, store

METRICS_FILE = "metrics.jsonl"
Metrics = dict[str, float]
_STEP_MARKER = re.compile(rf"/step-(\d{{6}})/{re.escape(store.MARKER_NAME)}$")


class Checkpointable(Protocol):
    """What a checkpoint needs of a trainer; training.TrainEngine is one."""

    def save_checkpoint(self, local_dir: Path) -> None: ...

    def load_checkpoint(self, local_dir: Path) -> None: ...


class Restored(NamedTuple):
    step: int
    metrics: list[Metrics]  # one record per step of the phase, up to `step`
    state: Any  # the JSON value the phase saved with this checkpoint; None without a file


@dataclass(frozen=True)
class Checkpoints:
    """The checkpoints of one phase: where they live and what rank 0 adds to each."""

    root_uri: str
    marker_key: str  # the name of the step count in the marker
    state_file: str | None = None  # a JSON document of the phase's own, if it has one

    def step_uri(self, step: int) -> str:
        return store.join(self.root_uri, f"step-{step:06d}")

    def completed_steps(self) -> list[int]:
        """Steps that have a complete checkpoint, ascending."""
        markers = store.list_uris(self.root_uri, suffix=f"/{store.MARKER_NAME}")
        return sorted(int(match.group(1)) for uri in markers if (match := _STEP_MARKER.search(uri)))

    def save(
        self, trainer: Checkpointable, step: int, metrics: Sequence[Metrics], state: Any = None
    ) -> None:
        """Collective: every rank calls it after `step`; rank 0's `metrics` (those of steps
        1..step) and `state` are saved."""
        target = self.step_uri(step)
        with tempfile.TemporaryDirectory(prefix="rloop-ckpt-") as local:
            trainer.save_checkpoint(Path(local))
            store.upload_dir(Path(local), target)
        dist.barrier()
        if dist.is_main():
            lines = "".join(json.dumps(record) + "\n" for record in metrics)
            store.write_bytes(store.join(target, METRICS_FILE), lines.encode())
            if self.state_file is not None:
                store.write_bytes(store.join(target, self.state_file), json.dumps(state).encode())
            store.write_marker(target, {self.marker_key: step})
            for older in self.completed_steps():
                if older < step:
                    store.remove_prefix(self.step_uri(older))
        dist.barrier()

    def load_latest(self, trainer: Checkpointable) -> Restored | None:
        """Restore the newest complete checkpoint into `trainer`; None when there is none."""
        steps = self.completed_steps()
        if not steps:
            return None
        with tempfile.TemporaryDirectory(prefix="rloop-ckpt-") as local:
            saved = store.download_dir(self.step_uri(steps[-1]), Path(local))
            trainer.load_checkpoint(saved)
            lines = (saved / METRICS_FILE).read_text().splitlines()
            state = (
                json.loads((saved / self.state_file).read_text())
                if self.state_file is not None
                else None
            )
        return Restored(steps[-1], [json.loads(line) for line in lines if line.strip()], state)
