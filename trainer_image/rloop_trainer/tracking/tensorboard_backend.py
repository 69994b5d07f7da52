"""TensorBoard: event files under the run's store prefix, <files_uri>/tensorboard/.

That directory is one TensorBoard run per RLoopRun: every phase adds an event file of its
own there (the name carries the phase's label and pid), with the run's curves at the
run's RL step, the parameters as text and the analysis pictures as images. A phase's own
series go to the subdirectory <label>/, a run of its own. Object stores have no append:
the writer writes to a local directory and each file is copied whole to the store after
each write (event files are small: about 50 bytes a scalar).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rloop_trainer import store
from rloop_trainer.tracking.base import TrackedPhase, Tracker, register
from rloop_trainer.tracking.names import at_spelled_out


def parameters_table(params: Mapping[str, str]) -> str:
    """Markdown, as TensorBoard's text tab shows it."""
    rows = [f"| {key} | {value} |" for key, value in sorted(params.items())]
    return "\n".join(["| parameter | value |", "| --- | --- |", *rows])


def _decode_png(body: bytes) -> Any:
    """(H, W, channels) floats in [0, 1]."""
    from matplotlib import image

    return image.imread(io.BytesIO(body), format="png")


@register("tensorboard")
class TensorBoardTracker(Tracker):
    def __init__(self, phase: TrackedPhase) -> None:
        self.phase = phase
        self.local = Path(tempfile.mkdtemp(prefix="rloop-tensorboard-"))
        self.remote = store.join(phase.tracking.files_uri, "tensorboard")
        self.suffix = f".{phase.label.replace('/', '-')}.{os.getpid()}"
        self.run_writer = self._writer(self.local)
        self.phase_writer: Any = None  # made by the first phase series: no empty runs
        step = phase.run.rl_step
        self.run_writer.add_text("parameters/run", parameters_table(phase.run_params), step)
        self.run_writer.add_text(
            f"parameters/{phase.label}", parameters_table(phase.phase_params), step
        )
        self._publish(self.run_writer)

    def _writer(self, directory: Path) -> Any:
        from tensorboardX import SummaryWriter

        return SummaryWriter(logdir=str(directory), filename_suffix=self.suffix)

    def _publish(self, writer: Any) -> None:
        writer.flush()
        for path in Path(writer.logdir).glob("events.out.tfevents.*"):
            relative = path.relative_to(self.local).as_posix()
            store.write_bytes(store.join(self.remote, relative), path.read_bytes())

    def log_metrics(self, metrics: Mapping[str, float], rl_step: int) -> None:
        for name, value in metrics.items():
            self.run_writer.add_scalar(at_spelled_out(name), value, rl_step)
        self._publish(self.run_writer)

    def log_phase_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        if self.phase_writer is None:
            self.phase_writer = self._writer(self.local / self.phase.label)
        for name, value in metrics.items():
            self.phase_writer.add_scalar(at_spelled_out(name), value, step)
        self._publish(self.phase_writer)

    def log_files(self, files: Mapping[str, bytes], rl_step: int) -> None:
        for relative, body in files.items():
            if relative.endswith(".png"):
                picture = _decode_png(body)
                self.run_writer.add_image(relative, picture, rl_step, dataformats="HWC")
            elif relative.endswith(".json"):
                text = json.dumps(json.loads(body), indent=1)
                self.run_writer.add_text(relative, f"```\n{text}\n```", rl_step)
        self._publish(self.run_writer)

    def finish(self, succeeded: bool) -> None:
        for writer in (self.run_writer, self.phase_writer):
            if writer is not None:
                self._publish(writer)
                writer.close()
        shutil.rmtree(self.local, ignore_errors=True)
