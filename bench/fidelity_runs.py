"""One arm of the replication for one seed, run phase after phase in this process.

Each phase gets exactly the config `rloop run` hands its child (the operator's
`trainer_config` of the run's spec) and runs through the trainer's own command line
(`rloop_trainer.cli.main`), in this process instead of a new one: a phase process
spends seconds importing torch, transformers and DeepSpeed, more than a tiny model's
RL step. The departures from the product: an ablation's `rft_from_rl` fine-tunes the RL
end point instead of the iteration's starting policy (the spec has no such field,
deliberately), and the process group outlives each phase (run_phase).

The store layout is the product's (`<storage.uri>/local/<name>/local/...`), so
`rloop report` reads these runs as it reads any other.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest.mock import patch
from urllib.parse import urlparse

from rloop_operator.api import RLoopRunSpec, RLoopRunStatus, parse_spec
from rloop_operator.lifecycle import Stage
from rloop_operator.manifests import trainer_config
from rloop_operator.planning.inputs import RunView
from rloop_operator.stages import iteration_stages, stage_info
from rloop_trainer import cli, dist

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Arm:
    """A way of spending the RL steps: RLoop, vanilla DAPO, or an ablation of either."""

    name: str
    mode: str  # the spec's: "rloop" or "vanilla"
    summary: str  # what it is, for the tables
    hard_threshold: float | None = None  # None: the protocol's
    rft_from_rl: bool = False
    # Vanilla DAPO given RLoop's RFT updates as extra RL steps (see extra_steps_for).
    matches_rloop_updates: bool = False


def run_view(document: Mapping[str, Any]) -> RunView:
    """The run as `rloop run` sees a YAML of this document (namespace and uid `local`)."""
    spec = parse_spec(dict(document["spec"]))
    name = str(document["metadata"]["name"])
    return RunView(name, "local", "local", 1, spec, RLoopRunStatus())


def local_path(uri: str) -> Path:
    return Path(urlparse(uri).path)


def phase_done(run: RunView, iteration: int, stage: Stage) -> bool:
    """Whether the stage's output already has its _SUCCESS (a resumed bench skips it)."""
    config = trainer_config(run, iteration, stage)
    return (local_path(config["output_uri"]) / "_SUCCESS").is_file()


def run_phase(run: RunView, iteration: int, stage: Stage, arm: Arm) -> None:
    """The stage's trainer phase with the operator's config (and the arm's one override)."""
    config = trainer_config(run, iteration, stage)
    if stage is Stage.CONSOLIDATING and arm.rft_from_rl:
        config["policy_uri"] = run.layout.rl_policy(iteration)
    phase = stage_info(stage).phase
    # A phase process ends by tearing down its process group (RFT does); here the next
    # phase runs in the same process, where DeepSpeed keeps the groups it derived from
    # the first one, so the group stays up, as after a DAPO phase.
    with patch.object(dist, "shutdown", lambda: None):
        code = cli.main([phase, "--config-json", json.dumps(config)])
    if code != 0:
        raise RuntimeError(f"{run.name}: {phase} of iteration {iteration} exited with {code}")


def copy_base_evaluation(source: RunView, target: RunView) -> None:
    """The base policy's evaluation is the same for every arm of a seed (same policy,
    same spec seed, so the same sampling seeds): made once, copied into each run."""
    destination = local_path(target.layout.base_eval())
    if not (destination / "_SUCCESS").is_file():
        shutil.copytree(local_path(source.layout.base_eval()), destination, dirs_exist_ok=True)


def evaluation_line(run: RunView, iteration: int, stage: Stage) -> str:
    """`set avg@n pass@n` of the evaluation just made, for the progress output."""
    uri = run.layout.eval_report(iteration)
    if stage is Stage.EVALUATING_BASE:
        uri = run.layout.base_eval_report()
    sets = json.loads(local_path(uri).read_text())["sets"]
    return "; ".join(
        f"{name} avg@{f['samples']} {f['avg@n']:.3f} pass@{f['samples']} "
        f"{f['pass@k'].get(str(f['samples']), float('nan')):.3f}"
        for name, f in sets.items()
    )


def run_arm(run: RunView, arm: Arm, base: RunView | None, progress: Progress) -> None:
    """Every stage of every iteration of the run, skipping those already done; the base
    evaluation is copied from `base` when given, else made here."""
    spec = run.spec
    assert isinstance(spec, RLoopRunSpec)
    for iteration in range(spec.iterations):
        for stage in iteration_stages(spec, iteration):
            if stage is Stage.EVALUATING_BASE and base is not None:
                copy_base_evaluation(base, run)
                continue
            if phase_done(run, iteration, stage):
                continue
            started = time.monotonic()
            run_phase(run, iteration, stage, arm)
            seconds = time.monotonic() - started
            where = f"{run.name} iteration {iteration + 1}/{spec.iterations} {stage.value}"
            if stage in (Stage.EVALUATING, Stage.EVALUATING_BASE):
                progress(f"{where} ({seconds:.0f} s): {evaluation_line(run, iteration, stage)}")
            else:
                progress(f"{where} ({seconds:.0f} s)")


def rl_updates(run: RunView) -> int:
    """Optimizer updates the run's DAPO phases took (their metrics.jsonl `updates`)."""
    assert isinstance(run.spec, RLoopRunSpec)
    total = 0.0
    for iteration in range(run.spec.iterations):
        text = local_path(run.layout.dapo_metrics(iteration)).read_text()
        total += sum(json.loads(line).get("updates", 0.0) for line in text.splitlines())
    return int(total)


def rft_updates(run: RunView) -> int:
    """Optimizer updates the run's RFT phases took (one per line of their metrics)."""
    assert isinstance(run.spec, RLoopRunSpec)
    total = 0
    for iteration in range(run.spec.iterations):
        path = local_path(run.layout.policy(iteration + 1)) / "metrics.jsonl"
        total += len(path.read_text().splitlines()) if path.is_file() else 0
    return total
