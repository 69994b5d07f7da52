"""What the RFT and eval phases hand their trackers when they are done.

RFT: the loss of each epoch as the phase's own series (rft/epoch_loss at epoch 1, 2,
...), and at the run's RL step the last epoch's loss and the expert set's size. Eval:
avg@n and pass@k per validation set at the RL steps behind the evaluated policy, the
best evaluation so far by the selection metric, and the refreshed analysis (analysis.json
and its pictures) as files.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from rloop_trainer import store
from rloop_trainer.config import EvalPhaseConfig, RftPhaseConfig
from rloop_trainer.errors import PhaseError
from rloop_trainer.tracking.names import best_evaluation, epoch_losses, validation_metrics
from rloop_trainer.tracking.session import PhaseTrackers

log = logging.getLogger(__name__)

ANALYSIS_FILE = "analysis.json"  # run_analysis.ANALYSIS_FILE, which imports numpy and plots


def track_fine_tuning(
    trackers: PhaseTrackers,
    config: RftPhaseConfig,
    records: Sequence[Mapping[str, float]],
    expert_samples: int,
) -> None:
    losses = epoch_losses(records)
    for epoch, loss in losses.items():
        trackers.log_phase_metrics({"rft/epoch_loss": loss}, epoch)
    at_the_end = {"rft/expert_samples": float(expert_samples)}
    if losses:
        at_the_end["rft/loss"] = losses[max(losses)]
    trackers.log_metrics(at_the_end, config.run.rl_step)


def analysis_files(output_uri: str, document: Mapping[str, Any]) -> dict[str, bytes]:
    """analysis.json and the pictures it lists, by path under analysis/; none when the
    store cannot give them back (the evaluation stands all the same)."""
    names = [ANALYSIS_FILE, *document.get("pictures", [])]
    try:
        return {f"analysis/{n}": store.read_bytes(store.join(output_uri, n)) for n in names}
    except PhaseError as exc:
        log.warning("the trackers get no analysis files: %s", exc)
        return {}


def track_evaluation(
    trackers: PhaseTrackers,
    config: EvalPhaseConfig,
    sets: Mapping[str, Any],
    analysis: Mapping[str, Any] | None,
) -> None:
    if not trackers.trackers:
        return
    metrics = validation_metrics(sets)
    selection = config.tracking.selection_metric if config.tracking else None
    if analysis is not None and selection is not None:
        metrics |= best_evaluation(analysis["validation"], analysis["policies"], selection)
    trackers.log_metrics(metrics, config.run.rl_step)
    if analysis is not None and config.analysis is not None:
        trackers.log_files(analysis_files(config.analysis.output_uri, analysis), config.run.rl_step)
