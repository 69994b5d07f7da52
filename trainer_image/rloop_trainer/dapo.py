"""The exploration phase: DAPO RL from the iteration's starting policy for N steps.

Per step, as verl's DAPO recipe does it: sample n responses for each of `oversample x
prompts_per_step` prompts, grade and shape rewards, keep the groups of mixed
correctness, and sample more rounds (at most `max_generation_rounds`) until
`prompts_per_step` of them are found; take exactly that many. Every rollout of every
round is cached first (one parquet per step: the filter's success rates need the
all-right and all-wrong groups too). The kept groups make fixed mini-batches of
`groups_per_update` groups, one optimizer update each, with DAPO's clipped,
token-mean loss: a step short of groups takes fewer updates, never smaller ones, and
one without a single mini-batch is skipped and counted. The new weights then go to
the rollout engine. Checkpoints every `checkpoint_every` steps; a restarted phase
resumes from the last one, draws the same prompts and rewrites (never appends to) a
step's file.

In vanilla mode the operator cuts one DAPO run into windows, one phase each
(config.DapoWindow): a window starts from the last checkpoint of the one before, which
holds the weights, the optimizer, the RNG and the data position, and numbers, seeds and
schedules its steps as the run's; so the windows make the same run as one phase would.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import pyarrow.parquet as pq
import torch

from rloop_trainer import (
    checkpoint,
    data,
    dist,
    policy,
    progress,
    rank_watch,
    reward,
    store,
    termination,
)
from rloop_trainer.config import DapoPhaseConfig
from rloop_trainer.dapo_loss import group_advantages, informative_groups, loss_sample_mask
from rloop_trainer.dapo_metrics import StepTimings, step_metrics
from rloop_trainer.dapo_update import TrainSequence, update_policy
from rloop_trainer.errors import PhaseError
from rloop_trainer.metrics_log import MetricsLog
from rloop_trainer.rollout import RolloutEngine, SamplingSpec, make_engine
from rloop_trainer.rollout.groups import (
    Group,
    PromptTask,
    RewardShape,
    generate_round,
    trajectory_table,
)
from rloop_trainer.tracking.names import dapo_step_metrics
from rloop_trainer.tracking.session import PhaseTrackers, phase_trackers
from rloop_trainer.training import TrainEngine, build_trainer

log = logging.getLogger(__name__)
# Under output_uri: the last step's score and accuracy (rloop_operator.stage_reports).
REPORT_FILE = "report.json"


def sampling_seed(seed: int, step: int, generation_round: int, rank: int) -> int:
    """A distinct, reproducible sampling seed for each (step, round, rank)."""
    return ((seed * 1_000_003 + step) * 31 + generation_round) * 4099 + rank


def trajectory_uri(trajectories_uri: str, step: int) -> str:
    return store.join(trajectories_uri, f"step-{step:06d}.parquet")


@dataclass(frozen=True)
class ResumeState:
    """What a DAPO checkpoint holds besides the DeepSpeed state: its resume.json. `step`
    counts the run's RL steps (a later window of a vanilla run starts past 0)."""

    step: int
    data_position: int


def dapo_checkpoints(output_uri: str) -> checkpoint.Checkpoints:
    return checkpoint.Checkpoints(
        store.join(output_uri, "checkpoints"), marker_key="step", state_file="resume.json"
    )


def mini_batches(groups: Sequence[Group], groups_per_update: int) -> list[list[Group]]:
    """Consecutive mini-batches of exactly `groups_per_update` groups, one update each; the
    groups of a shortfall that fill no whole mini-batch are left out."""
    updates = len(groups) // groups_per_update
    return [
        list(groups[index * groups_per_update : (index + 1) * groups_per_update])
        for index in range(updates)
    ]


def training_sequences(groups: Sequence[Group], overlong_filtering: bool) -> list[TrainSequence]:
    """The sequences of the loss with their group-normalised advantages; with overlong
    filtering a truncated response counts in its group's advantage but not in the loss."""
    sequences = []
    for group in groups:
        rewards = torch.tensor([[rollout.reward for rollout in group.rollouts]])
        advantages = group_advantages(rewards)[0].tolist()
        in_loss = loss_sample_mask(
            [rollout.completion.truncated for rollout in group.rollouts], overlong_filtering
        )
        for rollout, advantage, used in zip(group.rollouts, advantages, in_loss, strict=True):
            if used:
                sequences.append(
                    TrainSequence(group.task.token_ids, rollout.completion.token_ids, advantage)
                )
    return sequences


@dataclass
class StepRollouts:
    all_groups: list[Group]
    kept_groups: list[Group]
    rounds: int
    data_position: int
    seconds: float


RoundGenerator = Callable[[int, list[int]], list[Group]]  # (round, prompt indices) -> groups


def collect_groups(
    config: DapoPhaseConfig,
    step: int,
    data_position: int,
    num_prompts: int,
    generate: RoundGenerator,
) -> StepRollouts:
    """Generation rounds of `oversample x prompts_per_step` prompts until `prompts_per_step`
    groups of mixed correctness are found (at most `max_generation_rounds`); the first
    that many in generation order are kept. Without dynamic sampling: one round of
    `prompts_per_step` prompts, all kept."""
    started = time.perf_counter()
    all_groups: list[Group] = []
    kept: list[Group] = []
    rounds = 0
    per_round = config.prompts_per_step * (config.oversample if config.dynamic_sampling else 1)
    while rounds < config.max_generation_rounds and len(kept) < config.prompts_per_step:
        rounds += 1
        groups = generate(
            rounds, data.prompt_order(data_position, per_round, num_prompts, config.seed)
        )
        data_position += per_round
        all_groups += groups
        if not config.dynamic_sampling:
            kept = groups
            break
        kept += [groups[i] for i in informative_groups([g.correct for g in groups])]
    if len(kept) < config.prompts_per_step:
        log.warning(
            "step %d: dynamic sampling found %d of %d informative groups in %d generation "
            "rounds (max_generation_rounds); the step takes fewer updates",
            step,
            len(kept),
            config.prompts_per_step,
            rounds,
        )
    seconds = time.perf_counter() - started
    return StepRollouts(all_groups, kept[: config.prompts_per_step], rounds, data_position, seconds)


class DapoPhase:
    def __init__(self, config: DapoPhaseConfig) -> None:
        self.config = config
        self.layout = dist.init_distributed(config.collective_timeout)
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
        self.trainer: TrainEngine = build_trainer(model, config, config.run_steps)
        self.shape = RewardShape(
            config.reward.format,
            config.max_response_tokens,
            config.overlong_buffer,
            config.overlong_penalty,
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
        self.engine.wake()

        def generate(generation_round: int, order: list[int]) -> list[Group]:
            return self.generate(step, generation_round, [self.tasks[i] for i in order])

        return collect_groups(self.config, step, data_position, len(self.tasks), generate)

    def generate(self, step: int, generation_round: int, tasks: list[PromptTask]) -> list[Group]:
        config = self.config
        sampling = SamplingSpec(
            n=config.group_size,
            temperature=config.temperature,
            top_p=config.top_p,
            max_tokens=config.max_response_tokens,
            seed=sampling_seed(config.seed, step, generation_round, self.layout.rank),
        )
        return generate_round(
            self.engine,
            tasks,
            sampling,
            generation_round,
            self.shape,
            self.layout.rank,
            self.layout.world_size,
        )

    def cache_trajectories(self, rollouts: StepRollouts, step: int) -> None:
        if dist.is_main():
            table = trajectory_table(rollouts.all_groups, step, policy_version=step - 1)
            sink = io.BytesIO()
            pq.write_table(table, sink)
            store.write_bytes(trajectory_uri(self.config.trajectories_uri, step), sink.getvalue())

    def push_weights(self) -> None:
        self.engine.load_weights(self.trainer.gathered_state_dict().items())

    def restore(self) -> tuple[ResumeState, list[checkpoint.Metrics]]:
        """Where this phase starts, and the metrics of its steps before that: its own newest
        checkpoint (a restarted phase), else the state the window before handed on (a later
        window of a vanilla run), else the run's first step."""
        config = self.config
        own = dapo_checkpoints(config.output_uri).load_latest(self.trainer)
        if own is not None:
            log.info("resuming from the checkpoint of step %d", own.step)
            self.push_weights()
            return ResumeState(int(own.state["step"]), int(own.state["data_position"])), own.metrics
        if config.window is None or config.window.previous_uri is None:
            return ResumeState(step=0, data_position=0), []
        previous = dapo_checkpoints(config.window.previous_uri).load_latest(self.trainer)
        if previous is None or previous.step != config.first_step:
            found = "none" if previous is None else f"step {previous.step}"
            raise PhaseError(
                f"window.previous_uri {config.window.previous_uri} holds no checkpoint of step "
                f"{config.first_step} to resume (found {found}); the window before must finish "
                "first (its last checkpoint is the state this window starts from)"
            )
        log.info("window resumes the run's state after step %d", previous.step)
        self.push_weights()
        return ResumeState(previous.step, int(previous.state["data_position"])), []

    def run(self) -> None:
        start, history = self.restore()
        with phase_trackers(self.config, "dapo", dist.is_main()) as trackers:
            history = self.take_steps(start, history, trackers)
            self.finish(start.step, history[-1] if history else None)

    def take_steps(
        self, start: ResumeState, history: list[checkpoint.Metrics], trackers: PhaseTrackers
    ) -> list[checkpoint.Metrics]:
        """Every step after `start`; the metrics of every step of the phase (main rank)."""
        config = self.config
        checkpoints = dapo_checkpoints(config.output_uri)
        progress.reached(start.step)
        metrics = MetricsLog(config.output_uri, config.steps, history) if dist.is_main() else None
        data_position = start.data_position
        for step in range(start.step + 1, config.last_step + 1):
            step_started = time.perf_counter()
            rollouts = self.collect(step, data_position)
            data_position = rollouts.data_position
            write_started = time.perf_counter()
            self.cache_trajectories(rollouts, step)
            write_seconds = time.perf_counter() - write_started
            self.engine.sleep()
            train_stats = self.update(step, rollouts.kept_groups)
            sync_started = time.perf_counter()
            self.push_weights()
            sync_seconds = time.perf_counter() - sync_started
            if metrics is not None:
                timings = StepTimings(
                    write_seconds, sync_seconds, time.perf_counter() - step_started
                )
                record = step_metrics(step, rollouts, train_stats, timings, self.layout.world_size)
                metrics.record(record)
                trackers.log_metrics(dapo_step_metrics(record), config.rl_step_of(step))
            if self.checkpoint_due(step):
                history = metrics.records if metrics is not None else []
                resume = asdict(ResumeState(step, data_position))
                checkpoints.save(self.trainer, step, history, resume)
            progress.reached(step)
        if metrics is None:
            return []
        metrics.close()
        return metrics.records

    def checkpoint_due(self, step: int) -> bool:
        """Every `checkpoint_every` steps inside the phase; and at a window's last step, the
        full state the next window resumes (a run that grows gets one more window)."""
        config = self.config
        if step == config.last_step:
            return config.window is not None
        return step % config.checkpoint_every == 0

    def update(self, step: int, kept_groups: list[Group]) -> dict[str, float]:
        config = self.config
        batches = [
            training_sequences(groups, config.overlong_filtering)
            for groups in mini_batches(kept_groups, config.groups_per_update)
        ]
        if not batches:
            log.warning(
                "step %d skipped: %d informative groups, fewer than one update's %d",
                step,
                len(kept_groups),
                config.groups_per_update,
            )
        self.trainer.set_schedule_step(step - 1)
        stats = update_policy(self.trainer, batches, config, int(self.tokenizer.pad_token_id))
        return stats | {"skipped_step": float(not batches), "lr": self.trainer.lr}

    def finish(self, resumed_step: int, last_step: checkpoint.Metrics | None) -> None:
        state_dict = self.trainer.gathered_state_dict()
        dist.barrier()
        if dist.is_main():
            config = self.config
            policy.save_policy_state(
                self.trainer.module, self.tokenizer, config.rl_policy_uri, state_dict
            )
            if last_step is not None:
                self.report(last_step)
            store.write_marker(
                config.output_uri,
                {
                    "steps": config.steps,
                    "resumed_from_step": resumed_step,
                    "policy_uri": config.rl_policy_uri,
                    "trajectories_uri": config.trajectories_uri,
                    "prompts": len(self.tasks),
                },
            )
        dist.barrier()

    def report(self, last_step: checkpoint.Metrics) -> None:
        """The phase's report (report.json, and the termination message the operator reads
        into the run's status): the mean score and accuracy of its last step's rollouts."""
        config = self.config
        report = {
            "rl_step": config.rl_step_of(config.last_step),
            "score": last_step["reward"],
            "accuracy": last_step["accuracy"],
        }
        store.write_bytes(store.join(config.output_uri, REPORT_FILE), json.dumps(report).encode())
        termination.write_report(report)


def run_dapo_phase(config: DapoPhaseConfig) -> None:
    """`rloop-trainer dapo`: explore from `policy_uri`, write under `output_uri`."""
    if store.read_marker(config.output_uri) is not None:
        log.info("%s already has _SUCCESS; nothing to do", config.output_uri)
        return
    with rank_watch.stopped_if_a_peer_is_silent():
        phase = DapoPhase(config)  # bad input fails here, before this attempt claims the output
        with dist.claimed_output(config.output_uri):
            phase.run()
