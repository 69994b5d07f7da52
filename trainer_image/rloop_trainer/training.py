"""DeepSpeed ZeRO training, the same code path on GPUs and on CPU.

On CPU DeepSpeed 0.19 falls back to its CPU accelerator with gloo; the optimizer
is torch's AdamW (`torch_adam`), so no compiled extension is needed. Gradient
accumulation is unmanaged: the caller runs any number of backward passes (the
same number on every rank, since ZeRO reduces during backward: batches.accumulate)
and then one `step()`; losses are already normalised by the caller, never by DeepSpeed.

Gradients are accumulated and reduced across ranks in fp32 whatever the model's
dtype: DeepSpeed 0.19 otherwise sums bf16 micro-batch gradients in bf16 and
reduce-scatters them in bf16 (verl's FSDP reduces in fp32). An update whose
gradient norm is not finite is skipped by DeepSpeed's ZeRO optimizers (in bf16 only
with `check_grad_overflow`, set here) and counted by `step()`.

The learning rate is set per phase step by the caller (`set_schedule_step`), not per
optimizer update: a DAPO step takes a varying number of updates.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import torch
from transformers import PreTrainedModel

from rloop_trainer import dist, logprobs

log = logging.getLogger(__name__)

_STATE_TAG = "state"


class TrainingSettings(Protocol):
    """What the engine needs of a training phase's config (DAPO's or RFT's)."""

    @property
    def lr(self) -> float: ...
    @property
    def warmup_steps(self) -> int: ...
    @property
    def weight_decay(self) -> float: ...
    @property
    def grad_clip(self) -> float: ...
    @property
    def micro_batch(self) -> int: ...
    @property
    def zero_stage(self) -> int: ...
    @property
    def bf16(self) -> bool | None: ...
    @property
    def gradient_checkpointing(self) -> bool: ...
    @property
    def collective_timeout(self) -> timedelta: ...


def deepspeed_config(config: TrainingSettings, bf16: bool) -> dict[str, Any]:
    return {
        "train_micro_batch_size_per_gpu": config.micro_batch,
        "gradient_accumulation_steps": 1,
        "managed_gradient_accumulation": False,
        "gradient_clipping": config.grad_clip,
        "bf16": {"enabled": bf16, "check_grad_overflow": True},
        "data_types": {"grad_accum_dtype": "fp32"},
        "communication_data_type": "fp32",
        "zero_optimization": {"stage": config.zero_stage},
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": config.lr,
                "weight_decay": config.weight_decay,
                "betas": [0.9, 0.999],
                "torch_adam": True,
            },
        },
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warm-up to the full learning rate over `warmup_steps` steps (0-based), then
    constant."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, (step + 1) / warmup_steps)


@dataclass(frozen=True)
class UpdateOutcome:
    grad_norm: float  # before clipping; inf when DeepSpeed found it not finite
    skipped: bool  # not applied: the gradient norm was not finite


class TrainEngine:
    """A DeepSpeed engine with the few operations the phases use."""

    def __init__(self, engine: Any, lr: float, warmup_steps: int) -> None:
        self.engine = engine
        self.base_lr = lr
        self.warmup_steps = warmup_steps

    @property
    def module(self) -> PreTrainedModel:
        module: PreTrainedModel = self.engine.module
        return module

    @property
    def device(self) -> torch.device:
        return torch.device(self.engine.device)

    @property
    def lr(self) -> float:
        return float(self.engine.get_lr()[0])

    def _final_hidden_states(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """(B, L) -> (B, L, H), through the DeepSpeed engine's forward. An empty
        `logits_to_keep` skips the output layer, which `logprobs` runs a chunk at a time;
        transformers' last `hidden_states` entry is the final-normed one it would feed."""
        output = self.engine(
            input_ids=input_ids,
            attention_mask=attention_mask,
            use_cache=False,
            output_hidden_states=True,
            logits_to_keep=torch.empty(0, dtype=torch.long, device=input_ids.device),
        )
        hidden: torch.Tensor = output.hidden_states[-1]
        return hidden

    def _output_layer(self) -> torch.nn.Module:
        layer = self.module.get_output_embeddings()  # type: ignore[no-untyped-call]
        if not isinstance(layer, torch.nn.Module):
            raise TypeError(f"{type(self.module).__name__} has no output embedding layer")
        return layer

    def next_token_log_probs(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, temperature: float
    ) -> torch.Tensor:
        """fp32 log p(input_ids[:, t + 1] | input_ids[:, : t + 1]) under softmax(logits /
        temperature). (B, L) -> (B, L - 1)."""
        hidden = self._final_hidden_states(input_ids, attention_mask)[:, :-1]
        return logprobs.next_token_log_probs(
            hidden, input_ids[:, 1:], self._output_layer(), temperature
        )

    def next_token_log_probs_and_entropy(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`next_token_log_probs` and each position's entropy (no gradient); both (B, L - 1)."""
        hidden = self._final_hidden_states(input_ids, attention_mask)[:, :-1]
        return logprobs.next_token_log_probs_and_entropy(
            hidden, input_ids[:, 1:], self._output_layer(), temperature
        )

    def backward(self, loss: torch.Tensor) -> None:
        """Backward of a shard's share of a globally normalised loss (e.g. a token sum over
        the GLOBAL token count). DeepSpeed averages gradients over ranks; multiplying by
        the world size turns that average back into the sum the loss was written for, so
        gradients, grad norms and clipping do not depend on the number of ranks."""
        self.engine.backward(loss * dist.layout_from_env().world_size, scale_wrt_gas=False)

    def set_schedule_step(self, step: int) -> None:
        """The learning rate of phase step `step` (0-based) for every update it takes."""
        lr = self.base_lr * warmup_factor(step, self.warmup_steps)
        for group in self.engine.optimizer.param_groups:
            group["lr"] = lr

    def step(self) -> UpdateOutcome:
        """Clip and update; DeepSpeed skips an update whose gradient norm is not finite."""
        skipped_before = self.engine.skipped_steps
        self.engine.step()
        norm = self.engine.get_global_grad_norm()
        outcome = UpdateOutcome(
            float(norm) if norm is not None else float("nan"),
            self.engine.skipped_steps > skipped_before,
        )
        if outcome.skipped:
            log.warning("gradient norm %s is not finite: update skipped", outcome.grad_norm)
        return outcome

    def max_over_ranks(self, count: int) -> int:
        """The largest `count` of any rank."""
        counts = torch.tensor([count], dtype=torch.float64, device=self.device)
        if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            torch.distributed.all_reduce(counts, op=torch.distributed.ReduceOp.MAX)
        return int(counts.item())

    def save_checkpoint(self, local_dir: Path) -> None:
        """Model, optimizer and scheduler (DeepSpeed's layout) plus this rank's RNG state."""
        self.engine.save_checkpoint(str(local_dir), tag=_STATE_TAG, save_latest=False)
        rng = {
            "python": random.getstate(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }
        torch.save(rng, local_dir / f"rng-rank{dist.layout_from_env().rank:05d}.pt")

    def load_checkpoint(self, local_dir: Path) -> None:
        loaded, _ = self.engine.load_checkpoint(
            str(local_dir),
            tag=_STATE_TAG,
            load_optimizer_states=True,
            load_lr_scheduler_states=True,
        )
        if loaded is None:
            raise FileNotFoundError(f"no DeepSpeed checkpoint under {local_dir}")
        rng_file = local_dir / f"rng-rank{dist.layout_from_env().rank:05d}.pt"
        if rng_file.exists():
            rng = torch.load(rng_file, weights_only=False)
            random.setstate(rng["python"])
            torch.set_rng_state(rng["torch"])
            if rng["cuda"]:
                torch.cuda.set_rng_state_all(rng["cuda"])

    def gathered_state_dict(self) -> dict[str, torch.Tensor]:
        """Full HF-named weights on every rank (ZeRO-3 partitions are gathered first)."""
        if self.engine.zero_optimization_stage() == 3:
            import deepspeed

            params = list(self.module.parameters())
            with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
                return {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        return {k: v.detach() for k, v in self.module.state_dict().items()}


def _without_shm_comm_op() -> None:
    """Keep DeepSpeed from building its CPU shared-memory all-reduce op.

    DeepSpeed 0.19's comm backend JIT-builds that op when it starts (deepspeed/comm/torch.py:
    build_shm_op) under a lock file in torch's extensions dir
    (`$TORCH_EXTENSIONS_DIR/deepspeed_shm_comm/lock`). A process killed during the build
    leaves the lock behind, and every later build on the machine waits on it forever in
    torch's FileBaton.wait. The op serves only `inference_all_reduce`, which DeepSpeed's
    tensor-parallel inference layers call (deepspeed/module_inject); ZeRO training reduces
    through torch.distributed. build_shm_op builds nothing for an op marked incompatible,
    and DeepSpeed keeps that table for the process (deepspeed/ops/__init__.py)."""
    import deepspeed
    from deepspeed.ops.op_builder.cpu import ShareMemCommBuilder

    deepspeed.ops.__compatible_ops__[ShareMemCommBuilder.NAME] = False


def build_trainer(
    model: PreTrainedModel, config: TrainingSettings, total_steps: int
) -> TrainEngine:
    """Wrap `model` in DeepSpeed (ZeRO stage, clipping, AdamW) for `total_steps` phase steps
    (the warm-up's bound)."""
    import deepspeed

    dist.init_distributed(config.collective_timeout)
    _without_shm_comm_op()
    bf16 = config.bf16 if config.bf16 is not None else torch.cuda.is_available()
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()  # type: ignore[no-untyped-call]
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        model_parameters=[p for p in model.parameters() if p.requires_grad],
        config=deepspeed_config(config, bf16),
        dist_init_required=False,
    )
    return TrainEngine(engine, config.lr, min(config.warmup_steps, total_steps))
