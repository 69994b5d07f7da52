"""The spec sections the trainer reads, each field declared once.

The operator's API takes them as spec.dapo, spec.rft, spec.filter, spec.eval, spec.reward
and spec.data.validation[] (camelCase); the phase configs (rloop_trainer.config) are these
sections plus the store URIs the operator chooses (snake_case). The CRD's schema for them
is generated from here (hack/generate_api.py).
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

from pydantic import Field

from rloop_contract.schema import Rule, SpecSection, immutable, starts_with

# Which part of a response is graded (reward.gradable_answer): the last \boxed{}, else the
# last "Answer:" line; only one of them; or the whole response (base models).
AnswerFormat = Literal["boxed-or-answer", "boxed", "answer-line", "any"]
EngineName = Literal["auto", "vllm", "hf"]
ZeroStage = Literal[1, 2, 3]
SET_NAME = r"^[a-zA-Z0-9_.-]+$"
TOKENS_LIMIT = 131072
_ZERO_STAGE = (
    "DeepSpeed ZeRO stage. Gradients are accumulated and reduced in fp32 at every stage "
    "(DeepSpeed 0.19 cannot at stage 0, which is therefore not offered). Immutable (the {} "
    "checkpoints are partitioned by it)."
)


class DapoSection(SpecSection):
    """The DAPO exploration phase of every iteration (paper defaults)."""

    # has() guards: the API server checks these rules against the bare default {} too.
    crd_rules = (
        Rule(
            "!has(self.overlongBuffer) || !has(self.maxResponseTokens) || "
            "self.overlongBuffer < self.maxResponseTokens",
            "dapo.overlongBuffer must be smaller than dapo.maxResponseTokens",
            lambda d: d.overlong_buffer < d.max_response_tokens,
        ),
        Rule(
            "!has(self.clipHigh) || !has(self.clipLow) || self.clipHigh >= self.clipLow",
            "dapo.clipHigh must be at least dapo.clipLow (clip-higher)",
            lambda d: d.clip_high >= d.clip_low,
        ),
        Rule(
            "!has(self.updatesPerStep) || !has(self.promptsPerStep) || "
            "self.promptsPerStep % self.updatesPerStep == 0",
            "dapo.promptsPerStep must be a multiple of dapo.updatesPerStep (every update takes "
            "promptsPerStep / updatesPerStep prompt groups)",
            lambda d: d.prompts_per_step % d.updates_per_step == 0,
        ),
    )
    steps: Annotated[int, Field(ge=1, le=100_000, description="RL steps per iteration.")] = 200
    group_size: Annotated[
        int,
        Field(
            ge=2,
            le=1024,
            description=("Rollouts per prompt (the group of the group-normalised advantage)."),
        ),
    ] = 16
    prompts_per_step: Annotated[
        int, Field(ge=1, le=65536, description=("Prompts per RL step after dynamic sampling."))
    ] = 512
    max_prompt_tokens: Annotated[
        int, Field(ge=1, le=TOKENS_LIMIT, description=("Prompts longer than this are left out."))
    ] = 1024
    max_response_tokens: Annotated[
        int, Field(ge=1, le=TOKENS_LIMIT, description=("Maximum generated tokens per rollout."))
    ] = 2048
    temperature: Annotated[
        float,
        Field(
            gt=0,
            le=10,
            description=(
                "Sampling temperature of rollouts; the policy update takes its log-probabilities "
                "at the same temperature (logits / temperature), the distribution the rollouts "
                "were drawn from."
            ),
        ),
    ] = 1.0
    top_p: Annotated[
        float, Field(gt=0, le=1, description=("Nucleus sampling threshold of rollouts."))
    ] = 1.0
    clip_low: Annotated[
        float, Field(ge=0, le=1, description=("Lower clip epsilon of the importance ratio."))
    ] = 0.2
    clip_high: Annotated[
        float, Field(ge=0, le=1, description=("Upper clip epsilon (clip-higher)."))
    ] = 0.28
    dual_clip: Annotated[
        float,
        Field(
            gt=1,
            description=(
                "Dual-clip bound c for negative advantages (Ye et al. 2020; verl's default): a "
                "token's loss is at most -A c however large its importance ratio."
            ),
        ),
    ] = 3.0
    lr: Annotated[float, Field(gt=0, description="Learning rate of the policy update.")] = 1e-6
    warmup_steps: Annotated[
        int,
        Field(
            ge=0,
            description=(
                "Linear learning-rate warm-up, counted in RL steps (not optimizer updates: one RL "
                "step takes up to updatesPerStep updates, all at that step's learning rate), as in "
                "verl's DAPO recipe (10)."
            ),
        ),
    ] = 0
    weight_decay: Annotated[
        float,
        Field(
            ge=0, description=("AdamW weight decay of the policy update (verl's DAPO recipe: 0.1).")
        ),
    ] = 0.1
    grad_clip: Annotated[float, Field(gt=0, description="Gradient-norm clip.")] = 1.0
    micro_batch: Annotated[
        int, Field(ge=1, description=("Sequences per GPU per forward/backward."))
    ] = 4
    zero_stage: Annotated[
        ZeroStage,
        Field(description=_ZERO_STAGE.format("DAPO")),
        immutable(
            "dapo.zeroStage is immutable once the run exists; DAPO checkpoints are partitioned by "
            "it"
        ),
    ] = 2
    dynamic_sampling: Annotated[
        bool,
        Field(
            description=(
                "Keep only groups whose rollouts are neither all right nor all wrong, generating "
                "more rounds until promptsPerStep such groups are found (at most "
                "maxGenerationRounds rounds)."
            )
        ),
    ] = True
    oversample: Annotated[
        int,
        Field(
            ge=1,
            le=16,
            description=(
                "With dynamicSampling, each generation round samples oversample x promptsPerStep "
                "prompts (verl's DAPO recipe: 3, a gen batch of 1536 for 512 prompts). Without it, "
                "a step samples promptsPerStep prompts once."
            ),
        ),
    ] = 3
    max_generation_rounds: Annotated[
        int,
        Field(
            ge=1,
            le=32,
            description=(
                "Bound on the generation rounds of one step under dynamicSampling (verl's "
                "max_num_gen_batches: 10). A step that ends short of promptsPerStep informative "
                "groups takes fewer updates; one without enough for a single update is skipped and "
                "counted in metrics.jsonl."
            ),
        ),
    ] = 10
    updates_per_step: Annotated[
        int,
        Field(
            ge=1,
            le=1024,
            description=(
                "Optimizer updates per RL step. Each update takes a fixed mini-batch of "
                "promptsPerStep / updatesPerStep prompt groups (DAPO: 512 prompts, mini-batches of "
                "32, 16 updates), so a step with fewer groups takes fewer updates, never smaller "
                "ones."
            ),
        ),
    ] = 16
    overlong_buffer: Annotated[
        int,
        Field(
            ge=0,
            description=(
                "Length of the soft overlong punishment zone at the end of maxResponseTokens."
            ),
        ),
    ] = 512
    overlong_penalty: Annotated[
        float, Field(ge=0, description=("Penalty at the very end of the overlong zone."))
    ] = 1.0
    overlong_filtering: Annotated[
        bool, Field(description=("Mask truncated responses out of the loss."))
    ] = False
    checkpoint_every: Annotated[
        int, Field(ge=1, description=("Steps between resumable checkpoints in the store."))
    ] = 50
    engine: Annotated[
        EngineName, Field(description=("Rollout engine; auto picks vLLM on GPUs."))
    ] = "auto"

    @property
    def groups_per_update(self) -> int:
        return self.prompts_per_step // self.updates_per_step


class FilterSection(SpecSection):
    """Selection of expert trajectories after each exploration phase."""

    crd_rules = (
        Rule(
            "!has(self.hardThreshold) || (self.hardThreshold > 0.0 && self.hardThreshold <= 1.0)",
            "filter.hardThreshold must be in (0, 1]; the paper uses 0.1",
            lambda f: 0.0 < f.hard_threshold <= 1.0,
        ),
    )
    hard_threshold: Annotated[
        float,
        Field(
            description=(
                "A prompt is hard when its success rate over all its rollouts of the phase is "
                "below this."
            )
        ),
    ] = 0.1
    max_per_prompt: Annotated[
        int, Field(ge=0, description=("Correct rollouts kept per hard prompt; 0 keeps all."))
    ] = 0
    dedupe: Annotated[bool, Field(description=("Drop exact duplicate responses of a prompt."))] = (
        True
    )


class RftSection(SpecSection):
    """Rejection-sampling fine-tuning of the iteration's starting policy on the expert set."""

    epochs: Annotated[int, Field(ge=1, le=100, description="Passes over the expert set.")] = 1
    lr: Annotated[float, Field(gt=0, description="Learning rate.")] = 1e-5
    warmup_steps: Annotated[
        int,
        Field(
            ge=0,
            description=(
                "Linear learning-rate warm-up, counted in optimizer steps (one per batchSize "
                "expert samples)."
            ),
        ),
    ] = 0
    weight_decay: Annotated[
        float, Field(ge=0, description=("AdamW weight decay (verl's SFT trainer: 0.01)."))
    ] = 0.01
    micro_batch: Annotated[
        int, Field(ge=1, description=("Sequences per GPU per forward/backward."))
    ] = 4
    batch_size: Annotated[
        int, Field(ge=1, description=("Expert samples per optimizer step across all GPUs."))
    ] = 64
    max_seq_tokens: Annotated[
        int,
        Field(
            ge=2,
            le=262144,
            description=("Prompt plus response tokens per sample; longer samples are truncated."),
        ),
    ] = 4096
    zero_stage: Annotated[
        ZeroStage,
        Field(description=_ZERO_STAGE.format("RFT")),
        immutable(
            "rft.zeroStage is immutable once the run exists; RFT checkpoints are partitioned by it"
        ),
    ] = 2


class RewardSection(SpecSection):
    """How rollouts (in DAPO) and samples (in the evaluation) are graded against the ground
    truth."""

    format: Annotated[
        AnswerFormat,
        Field(
            description=(
                "Which part of a response is graded with math-verify. boxed-or-answer: the last "
                '\\boxed{...}, or else the last "Answer:" line (DAPO-17k prompts ask for '
                '"Answer: $Answer", Qwen2.5-Math boxes its answers); boxed or answer-line: only '
                "that form; any: the whole response, whose last number counts (base models that "
                "follow no format; easy to game). A number anywhere else is never graded, and a "
                "response cut at maxResponseTokens never counts as a success."
            )
        ),
    ] = "boxed-or-answer"


class EvalSection(SpecSection):
    """Sampling settings of the evaluation after each iteration (only with data.validation)."""

    max_response_tokens: Annotated[
        int, Field(ge=1, le=TOKENS_LIMIT, description=("Maximum generated tokens per sample."))
    ] = 2048
    temperature: Annotated[float, Field(gt=0, le=10, description="Sampling temperature.")] = 1.0
    top_p: Annotated[float, Field(gt=0, le=1, description="Nucleus sampling threshold.")] = 1.0


class ValidationSet(SpecSection):
    """A validation set: problems with answers, evaluated as avg@n and pass@k."""

    crd_rules = (
        Rule(
            "self.passAt.all(k, k <= self.samples)",
            "every data.validation[].passAt value must be at most samples; raise samples or "
            "drop that k",
            lambda v: all(k <= v.samples for k in v.pass_at),
        ),
    )

    name: Annotated[
        str,
        Field(
            max_length=63,
            pattern=SET_NAME,
            description=("Short name used in metrics keys, e.g. aime24."),
        ),
    ]
    uri: Annotated[
        str,
        Field(
            max_length=1024,
            description=("Problems with answers, same shapes as data.train (s3:// or file://)."),
        ),
        starts_with("data.validation[].uri", ("s3://", "file://")),
    ]
    samples: Annotated[
        int, Field(ge=1, le=1024, description="Samples per problem (n of avg@n).")
    ] = 32
    pass_at: Annotated[
        list[Annotated[int, Field(ge=1)]],
        Field(max_length=16, description=("The k values of the unbiased pass@k estimator.")),
    ] = Field(default_factory=lambda: [1, 8, 16, 32])


def field_of(section: type[SpecSection], name: str) -> Any:
    """A section's declaration of a field (type bounds, default, description), for a phase
    config that takes the same setting from another section."""
    return copy.deepcopy(section.model_fields[name])
