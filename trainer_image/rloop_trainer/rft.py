"""RFT phase: supervised fine-tuning of theta_i on D_expert_i -> theta_{i+1}.

RLoop (arXiv 2511.04285, section 3.3) consolidates what exploration found by
fine-tuning the iteration's STARTING policy (not the RL end point) on the correct
rollouts of hard prompts, one epoch by default. Loss: token mean of the response
tokens' negative log-likelihood over each global batch (sft_loss.py).

Runs under torchrun with DeepSpeed (training.py). Every rank reads the whole expert
set (token ids only) and walks the same seeded batch order, taking its own slice.
Writes under `checkpoint_uri`: step-NNNNNN/ (DeepSpeed state of every rank, the
metrics so far, `_SUCCESS` last); under `output_uri`: the next policy (HF
safetensors + tokenizer + config), metrics.jsonl, and `_SUCCESS` last.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from transformers import PreTrainedModel
from transformers import PreTrainedTokenizerBase as Tokenizer

from rloop_trainer import dist, progress, rank_watch, store
from rloop_trainer.batches import MicroBatch, accumulate, by_length, collate
from rloop_trainer.checkpoint import Checkpoints
from rloop_trainer.config import RftPhaseConfig
from rloop_trainer.errors import PhaseError
from rloop_trainer.policy import load_policy, save_policy, save_policy_state
from rloop_trainer.schema import EXPERT_SCHEMA, check_schema
from rloop_trainer.sft_loss import response_nll_sum, target_tokens
from rloop_trainer.tracking.phase_reports import track_fine_tuning
from rloop_trainer.tracking.session import phase_trackers
from rloop_trainer.training import TrainEngine, UpdateOutcome, build_trainer

log = logging.getLogger(__name__)

_TOKEN_COLUMNS = ["prompt_token_ids", "response_token_ids"]
EMPTY_EXPERT_SET_WARNING = "empty expert set: the policy carries over unchanged"


@dataclass(frozen=True)
class GlobalBatch:
    epoch: int
    indices: list[int]


def plan_batches(examples: int, epochs: int, batch_size: int, seed: int) -> list[GlobalBatch]:
    """Each epoch a seeded permutation of the examples, cut into global batches in order.

    An epoch's last batch may be short; nothing is dropped or repeated.
    """
    batches = []
    for epoch in range(epochs):
        order = list(range(examples))
        random.Random(f"{seed}/{epoch}").shuffle(order)
        for start in range(0, examples, batch_size):
            batches.append(GlobalBatch(epoch, order[start : start + batch_size]))
    return batches


def rank_share(indices: Sequence[int], rank: int, world_size: int) -> list[int]:
    """This rank's contiguous slice of a global batch; the first ranks take any remainder."""
    per_rank = math.ceil(len(indices) / world_size)
    return list(indices[rank * per_rank : (rank + 1) * per_rank])


class ExpertSet:
    """The expert set's token ids, held as arrow lists (about 4 bytes a token)."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.prompt_lengths = pc.list_value_length(table["prompt_token_ids"]).to_numpy()
        self.response_lengths = pc.list_value_length(table["response_token_ids"]).to_numpy()

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def length(self, index: int) -> int:
        """Prompt plus response tokens of one example."""
        return int(self.prompt_lengths[index] + self.response_lengths[index])

    def micro_batch(
        self, indices: Sequence[int], pad_token_id: int, max_seq_tokens: int
    ) -> MicroBatch:
        rows = self.table.take(pa.array(indices, pa.int64())).to_pylist()
        return collate(
            [r["prompt_token_ids"] for r in rows],
            [r["response_token_ids"] for r in rows],
            pad_token_id,
            max_seq_tokens,
        )

    def target_tokens(self, indices: Sequence[int], max_seq_tokens: int) -> int:
        """Response tokens that carry loss in these examples, after truncation."""
        picked = np.asarray(indices, dtype=np.int64)
        return int(
            target_tokens(
                self.prompt_lengths[picked], self.response_lengths[picked], max_seq_tokens
            ).sum()
        )


def read_expert_set(uri: str) -> ExpertSet:
    """The filter's data.parquet; a wrong schema is a PhaseError naming the column."""
    try:
        parquet = pq.ParquetFile(pa.BufferReader(store.read_bytes(uri)))
    except (pa.ArrowInvalid, OSError) as exc:
        raise PhaseError(f"expert file {uri} is not a readable parquet file: {exc}") from exc
    check_schema(f"expert file {uri}", parquet.schema_arrow, EXPERT_SCHEMA, _TOKEN_COLUMNS)
    return ExpertSet(parquet.read(columns=_TOKEN_COLUMNS))


def train_step(
    trainer: TrainEngine,
    expert: ExpertSet,
    batch: GlobalBatch,
    config: RftPhaseConfig,
    pad_token_id: int,
) -> tuple[float, UpdateOutcome]:
    """One optimizer step on a global batch; its token-mean loss (all ranks) and outcome."""
    layout = dist.layout_from_env()
    # The loss is a token sum over the global count: micro-batch grouping leaves it unchanged.
    share = rank_share(batch.indices, layout.rank, layout.world_size)
    global_tokens = max(expert.target_tokens(batch.indices, config.max_seq_tokens), 1)
    micro_batches = [
        expert.micro_batch(indices, pad_token_id, config.max_seq_tokens)
        for indices in by_length(share, config.micro_batch, expert.length)
    ]
    local_nll = 0.0

    def loss_of(micro: MicroBatch) -> torch.Tensor:
        nonlocal local_nll
        tokens = micro.to(trainer.device)
        log_probs = trainer.next_token_log_probs(
            tokens.input_ids, tokens.attention_mask, temperature=1.0
        )
        nll = response_nll_sum(log_probs, tokens.target_mask)
        local_nll += float(nll.detach())
        return nll / global_tokens  # TrainEngine.backward restores the sum over ranks

    accumulate(trainer, micro_batches, loss_of)
    outcome = trainer.step()
    return dist.all_reduce_float(local_nll) / global_tokens, outcome


def rft_checkpoints(checkpoint_uri: str) -> Checkpoints:
    return Checkpoints(checkpoint_uri, marker_key="steps")


def save_checkpoint(
    trainer: TrainEngine, checkpoint_uri: str, metrics: list[dict[str, float]]
) -> None:
    """Collective: the DeepSpeed state after `len(metrics)` steps, and those metrics."""
    rft_checkpoints(checkpoint_uri).save(trainer, len(metrics), metrics)


def resume(trainer: TrainEngine, checkpoint_uri: str) -> list[dict[str, float]]:
    """Load the newest complete checkpoint; the metrics of the steps it holds."""
    checkpoints = rft_checkpoints(checkpoint_uri)
    restored = checkpoints.load_latest(trainer)
    if restored is None:
        return []
    log.info(
        "resuming RFT after step %d from %s", restored.step, checkpoints.step_uri(restored.step)
    )
    return restored.metrics


def _jsonl(rows: list[dict[str, float]]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def _policy_dtype(config: RftPhaseConfig) -> torch.dtype:
    bf16 = config.bf16
    return (
        torch.bfloat16 if (torch.cuda.is_available() if bf16 is None else bf16) else torch.float32
    )


def _publish(
    config: RftPhaseConfig, metrics: list[dict[str, float]], report: dict[str, object]
) -> None:
    store.write_bytes(store.join(config.output_uri, "metrics.jsonl"), _jsonl(metrics).encode())
    store.write_marker(config.output_uri, report)


def carry_over(
    config: RftPhaseConfig, model: PreTrainedModel, tokenizer: Tokenizer
) -> list[dict[str, float]]:
    """An empty expert set: theta_{i+1} = theta_i, said so in the marker; no step taken."""
    log.warning("%s (%s)", EMPTY_EXPERT_SET_WARNING, config.expert_uri)
    if dist.is_main():
        save_policy(model, tokenizer, config.output_uri)
        report = {"policy_uri": config.policy_uri, "expert_samples": 0, "steps": 0}
        _publish(config, [], {**report, "warning": EMPTY_EXPERT_SET_WARNING})
    dist.barrier()
    return []


def fine_tune(
    config: RftPhaseConfig, expert: ExpertSet, model: PreTrainedModel, tokenizer: Tokenizer
) -> list[dict[str, float]]:
    """Train from the newest checkpoint (if any) to the end; publish the next policy.
    Returns the metrics of every step."""
    batches = plan_batches(len(expert), config.epochs, config.batch_size, config.seed)
    torch.manual_seed(config.seed)
    trainer = build_trainer(model, config, total_steps=len(batches))
    metrics = resume(trainer, config.checkpoint_uri)
    progress.reached(len(metrics))
    for step in range(len(metrics), len(batches)):
        trainer.set_schedule_step(step)
        loss, outcome = train_step(trainer, expert, batches[step], config, tokenizer.pad_token_id)
        metrics.append(
            {
                "step": step + 1,
                "epoch": batches[step].epoch,
                "loss": loss,
                "grad_norm": outcome.grad_norm,
                "skipped_update": float(outcome.skipped),
                "lr": trainer.lr,
                "samples": len(batches[step].indices),
            }
        )
        log.info("rft step %d/%d loss %.4f", step + 1, len(batches), loss)
        if (step + 1) % config.checkpoint_every == 0 and step + 1 < len(batches):
            save_checkpoint(trainer, config.checkpoint_uri, metrics)
        progress.reached(step + 1)
    state = trainer.gathered_state_dict()
    if dist.is_main():
        save_policy_state(trainer.module, tokenizer, config.output_uri, state)
        report = {"policy_uri": config.policy_uri, "expert_samples": len(expert)}
        _publish(
            config, metrics, {**report, "steps": len(batches), "final_loss": metrics[-1]["loss"]}
        )
    dist.barrier()
    return metrics


def run_rft_phase(config: RftPhaseConfig) -> None:
    """`rloop-trainer rft`: policy_uri + expert_uri -> the next policy at output_uri."""
    dist.init_distributed(config.collective_timeout)
    try:
        if store.read_marker(config.output_uri) is not None:
            log.info("RFT output %s is already complete; nothing to do", config.output_uri)
            return
        expert = read_expert_set(config.expert_uri)  # bad input fails before the model loads
        model, tokenizer = load_policy(config.policy_uri, _policy_dtype(config), dist.device())
        with (
            rank_watch.stopped_if_a_peer_is_silent(),
            dist.claimed_output(config.output_uri, config.checkpoint_uri),
            phase_trackers(config, "rft", dist.is_main()) as trackers,
        ):
            if len(expert) == 0:
                metrics = carry_over(config, model, tokenizer)
            else:
                metrics = fine_tune(config, expert, model, tokenizer)
            track_fine_tuning(trackers, config, metrics, len(expert))
    finally:
        dist.shutdown()
