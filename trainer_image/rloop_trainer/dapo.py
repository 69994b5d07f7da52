"""The exploration phase: DAPO RL from the iteration's starting policy for N steps.

Per step: sample n responses for each of `prompts_per_step` prompts, verify and
shape rewards, cache EVERY rollout (one parquet per step, before dynamic sampling
drops anything: the filter's success rates need the all-right and all-wrong groups
too), keep the informative groups (more rounds if too few), then update the policy
with DAPO's clipped, token-mean loss and push the new weights to the rollout engine.
Checkpoints every `checkpoint_every` steps; a restarted phase resumes from the last
one, draws the same prompts and rewrites (never appends to) a step's file.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import asdict, dataclass

import pyarrow.parquet as pq
import torch

from rloop_trainer import checkpoint, data, dist, policy, reward, store
from rloop_trainer.config import DapoPhaseConfig
from rloop_trainer.dapo_loss import group_advantages, informative_groups, loss_sample_mask
from rloop_trainer.dapo_update import TrainSequence, update_policy
from rloop_trainer.errors import PhaseError
from rloop_trainer.metrics import MetricsLog
from rloop_trainer.rollout import RolloutEngine, SamplingSpec, make_engine
from rloop_trainer.rollout.groups import (
    Group,
    PromptTask,
    RewardShape,
    generate_round,
    trajectory_table,
)
from rloop_trainer.training import TrainEngine, build_trainer

log = logging.getLogger(__name__)


def sampling_seed(seed: int, step: int, generation_round: int, rank: int) -> int:
    """A distinct, reproducible sampling seed for each (step, round, rank)."""
    return ((seed * 1_000_003 + step) * 31 + generation_round) * 4099 + rank


def trajectory_uri(output_uri: str, step: int) -> str:
    return store.join(output_uri, "trajectories", f"step-{step:06d}.parquet")


@dataclass(frozen=True)
class ResumeState:
    """What a DAPO checkpoint holds besides the DeepSpeed state: its resume.json."""

    step: int
    data_position: int


def dapo_checkpoints(output_uri: str) -> checkpoint.Checkpoints:
    return checkpoint.Checkpoints(
        store.join(output_uri, "checkpoints"), marker_key="step", state_file="resume.json"
    )


def training_sequences(groups: list[Group], overlong_filtering: bool) -> list[TrainSequence]:
    """Flatten kept groups into sequences carrying their group-normalised advantage."""
    sequences = []
    for group in groups:
        rewards = torch.tensor([[rollout.reward for rollout in group.rollouts]])
        advantages = group_advantages(rewards)[0].tolist()
        in_loss = loss_sample_mask(
            [rollout.completion.truncated for rollout in group.rollouts], overlong_filtering
        )
        for rollout, advantage, used in zip(group.rollouts, advantages, in_loss, strict=True):
            sequences.append(
                TrainSequence(group.task.token_ids, rollout.completion.token_ids, advantage, used)
            )
    return sequences


@dataclass
class StepRollouts:
    all_groups: list[Group]
    kept_groups: list[Group]
    rounds: int
    data_position: int
    seconds: float


class DapoPhase:
    def __init__(self, config: DapoPhaseConfig) -> None:
        self.config = config
        self.layout = dist.init_distributed()
        self.device = dist.device()
        torch.manual_seed(config.seed + self.layout.rank)
        records = data.load_prompts(config.train_data_uri)  # bad data fails before the model loads
        reward.shared_verifier()  # its workers start while the model loads
        model, self.tokenizer = policy.load_policy(config.policy_uri, torch.float32, self.device)
        self.tasks = self._prompt_tasks(records)
        self.engine: RolloutEngine = make_engine(
            config.engine,
            model,
            self.tokenizer,
            policy_dir=policy.local_policy_dir(config.policy_uri),
            max_model_len=config.max_prompt_tokens + config.max_response_tokens,
            seed=config.seed,
        )
        total_updates = config.steps * config.updates_per_step
        self.trainer: TrainEngine = build_trainer(model, config.training, total_updates)
        self.shape = RewardShape(
            config.max_response_tokens, config.overlong_buffer, config.overlong_penalty
        )

    def _prompt_tasks(self, records: list[data.PromptRecord]) -> list[PromptTask]:
        tasks = []
        for record in records:
            text, token_ids = data.encode_prompt(record, self.tokenizer)
            if len(token_ids) <= self.config.max_prompt_tokens:
                tasks.append(PromptTask(record.prompt_id, text, token_ids, record.ground_truth))
        skipped = len(records) - len(tasks)
        if skipped:
            log.warning(
                "skipped %d of %d prompts longer than max_prompt_tokens=%d",
                skipped,
                len(records),
                self.config.max_prompt_tokens,
            )
        if not tasks:
            raise PhaseError(
                f"no prompt in {self.config.train_data_uri} fits max_prompt_tokens="
                f"{self.config.max_prompt_tokens}; raise it"
            )
        return tasks

    def collect(self, step: int, data_position: int) -> StepRollouts:
        """Generation rounds until enough informative groups (or max_generation_rounds)."""
        config = self.config
        started = time.perf_counter()
        all_groups: list[Group] = []
        kept: list[Group] = []
        rounds = 0
        self.engine.wake()
        while rounds < config.max_generation_rounds:
            rounds += 1
            order = data.prompt_order(
                data_position, config.prompts_per_step, len(self.tasks), config.seed
            )
            data_position += config.prompts_per_step
            sampling = SamplingSpec(
                n=config.group_size,
                temperature=config.temperature,
                top_p=config.top_p,
                max_tokens=config.max_response_tokens,
                seed=sampling_seed(config.seed, step, rounds, self.layout.rank),
            )
            groups = generate_round(
                self.engine,
                [self.tasks[i] for i in order],
                sampling,
                rounds,
                self.shape,
                self.layout.rank,
                self.layout.world_size,
            )
            all_groups += groups
            if not config.dynamic_sampling:
                kept = groups
                break
            kept += [groups[i] for i in informative_groups([g.correct for g in groups])]
            if len(kept) >= config.prompts_per_step:
                break
        if config.dynamic_sampling and len(kept) < config.prompts_per_step:
            log.warning(
                "step %d: dynamic sampling found only %d of %d informative groups after %d "
                "generation rounds (max_generation_rounds); training on those",
                step,
                len(kept),
                config.prompts_per_step,
                rounds,
            )
        return StepRollouts(
            all_groups,
            kept[: config.prompts_per_step],
            rounds,
            data_position,
            time.perf_counter() - started,
        )

    def cache_trajectories(self, rollouts: StepRollouts, step: int) -> None:
        if dist.is_main():
            table = trajectory_table(rollouts.all_groups, step, policy_version=step - 1)
            sink = io.BytesIO()
            pq.write_table(table, sink)
            store.write_bytes(trajectory_uri(self.config.output_uri, step), sink.getvalue())

    def push_weights(self) -> None:
        self.engine.load_weights(self.trainer.gathered_state_dict().items())

    def run(self) -> None:
        config = self.config
        checkpoints = dapo_checkpoints(config.output_uri)
        restored = checkpoints.load_latest(self.trainer)
        start = ResumeState(step=0, data_position=0)
        if restored is not None:
            start = ResumeState(int(restored.state["step"]), int(restored.state["data_position"]))
            log.info("resuming from the checkpoint of step %d", start.step)
            self.push_weights()
        history = restored.metrics if restored is not None else []
        metrics = MetricsLog(config.output_uri, config.steps, history) if dist.is_main() else None
        data_position = start.data_position
        for step in range(start.step + 1, config.steps + 1):
            rollouts = self.collect(step, data_position)
            data_position = rollouts.data_position
            write_started = time.perf_counter()
            self.cache_trajectories(rollouts, step)
            write_seconds = time.perf_counter() - write_started
            self.engine.sleep()
            sequences = training_sequences(rollouts.kept_groups, config.overlong_filtering)
            train_stats = update_policy(self.trainer, sequences, config, self.tokenizer)
            sync_started = time.perf_counter()
            self.push_weights()
            sync_seconds = time.perf_counter() - sync_started
            if metrics is not None:
                metrics.record(
                    step_metrics(step, rollouts, train_stats, write_seconds, sync_seconds)
                )
            if step % config.checkpoint_every == 0 and step < config.steps:
                history = metrics.records if metrics is not None else []
                resume = asdict(ResumeState(step, data_position))
                checkpoints.save(self.trainer, step, history, resume)
        if metrics is not None:
            metrics.close()
        self.finish(start.step)

    def finish(self, resumed_step: int) -> None:
        state_dict = self.trainer.gathered_state_dict()
        dist.barrier()
        if dist.is_main():
            policy_uri = store.join(self.config.output_uri, "policy")
            policy.save_policy_state(self.trainer.module, self.tokenizer, policy_uri, state_dict)
            store.write_marker(
                self.config.output_uri,
                {
                    "steps": self.config.steps,
                    "resumed_from_step": resumed_step,
                    "policy_uri": policy_uri,
                    "trajectories_uri": store.join(self.config.output_uri, "trajectories"),
                    "prompts": len(self.tasks),
                },
            )
        dist.barrier()


def step_metrics(
    step: int,
    rollouts: StepRollouts,
    train_stats: dict[str, float],
    write_seconds: float,
    sync_seconds: float,
) -> dict[str, float]:
    samples = [r for group in rollouts.all_groups for r in group.rollouts]
    generated_tokens = sum(len(r.completion.token_ids) for r in samples)
    return {
        "step": step,
        "reward": sum(r.reward for r in samples) / len(samples),
        "accuracy": sum(r.correct for r in samples) / len(samples),
        "response_length": generated_tokens / len(samples),
        "truncated_fraction": sum(r.completion.truncated for r in samples) / len(samples),
        "generation_rounds": rollouts.rounds,
        "kept_groups": len(rollouts.kept_groups),
        "generated_groups": len(rollouts.all_groups),
        "rollout_tokens_per_s": generated_tokens / max(rollouts.seconds, 1e-9),
        "time_rollout_s": rollouts.seconds,
        "time_write_s": write_seconds,
        "time_sync_s": sync_seconds,
        **train_stats,
    }


def run_dapo_phase(config: DapoPhaseConfig) -> None:
    """`rloop-trainer dapo`: explore from `policy_uri`, write under `output_uri`."""
    if store.read_marker(config.output_uri) is not None:
        log.info("%s already has _SUCCESS; nothing to do", config.output_uri)
        return
    phase = DapoPhase(config)  # bad input fails here, before this attempt claims the output
    with dist.claimed_output(config.output_uri):
        phase.run()
