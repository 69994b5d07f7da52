"""Resume state of a phase under `<output_uri>/checkpoints/step-NNNNNN/`.

Every rank saves its DeepSpeed shards (model, optimizer, scheduler) and RNG state to
a local directory and uploads them; after a barrier rank 0 writes `resume.json`
(step, data position) and the `_SUCCESS` marker. Only a checkpoint with its marker
counts, so a phase killed while saving resumes from the previous one. Older
checkpoints are removed once a newer one is complete.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from rloop_trainer import dist, store
from rloop_trainer.training import TrainEngine

_STEP_DIR = re.compile(r"/checkpoints/step-(\d{6})/_SUCCESS$")


@dataclass(frozen=True)
class ResumeState:
    step: int
    data_position: int


def checkpoint_uri(output_uri: str, step: int) -> str:
    return store.join(output_uri, "checkpoints", f"step-{step:06d}")


def completed_steps(output_uri: str) -> list[int]:
    """Steps that have a complete checkpoint, ascending."""
    markers = store.list_uris(store.join(output_uri, "checkpoints"), suffix=store.MARKER_NAME)
    return sorted(int(match.group(1)) for uri in markers if (match := _STEP_DIR.search(uri)))


def save_checkpoint(trainer: TrainEngine, output_uri: str, state: ResumeState) -> None:
    target = checkpoint_uri(output_uri, state.step)
    with tempfile.TemporaryDirectory(prefix="rloop-ckpt-") as local:
        trainer.save_checkpoint(Path(local))
        store.upload_dir(Path(local), target)
    dist.barrier()
    if dist.is_main():
        store.write_bytes(store.join(target, "resume.json"), json.dumps(asdict(state)).encode())
        store.write_marker(target, {"step": state.step})
        for older in completed_steps(output_uri):
            if older < state.step:
                store.remove_prefix(checkpoint_uri(output_uri, older))
    dist.barrier()


def load_latest_checkpoint(trainer: TrainEngine, output_uri: str) -> ResumeState | None:
    """Restore the newest complete checkpoint into `trainer`; None when there is none."""
    steps = completed_steps(output_uri)
    if not steps:
        return None
    source = checkpoint_uri(output_uri, steps[-1])
    with tempfile.TemporaryDirectory(prefix="rloop-ckpt-") as local:
        store.download_dir(source, Path(local))
        trainer.load_checkpoint(Path(local))
    raw = json.loads(store.read_bytes(store.join(source, "resume.json")))
    return ResumeState(step=int(raw["step"]), data_position=int(raw["data_position"]))
