"""`rloop-trainer rft` on the toy policy: SFT under DeepSpeed on CPU, as a PyTorchJob runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from rloop_trainer import toy
from rloop_trainer.schema import EXPERT_SCHEMA
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from tests.cluster.procs import free_port

BIN = Path(sys.executable).parent
EXPERT_PROBLEMS = 17  # batches of 8, 8, 1: the last leaves one rank of two without data

Example = tuple[list[int], list[int]]


@dataclass(frozen=True)
class Workspace:
    root: Path
    policy: Path
    expert: Path
    examples: list[Example]

    def config(self, name: str, **overrides: Any) -> Path:
        config = {
            "policy_uri": str(self.policy),
            "expert_uri": str(self.expert),
            "output_uri": str(self.root / name / "policy"),
            "checkpoint_uri": str(self.root / name / "checkpoints"),
            "epochs": 2,
            "batch_size": 8,
            "checkpoint_every": 2,
            "lr": 1e-3,
            "micro_batch": 4,
            **overrides,
        }
        path = self.root / f"{name}.json"
        path.write_text(json.dumps(config))
        return path


def run_rft(config: Path, ranks: int = 1) -> str:
    """Run the phase as its launcher would; its stderr."""
    torchrun = [str(BIN / "torchrun"), f"--nproc_per_node={ranks}", f"--master_port={free_port()}"]
    launcher = [*torchrun, "-m", "rloop_trainer.cli"] if ranks > 1 else [str(BIN / "rloop-trainer")]
    with subprocess.Popen(
        [*launcher, "rft", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        start_new_session=True,  # so a hung run's ranks can be stopped with their launcher
    ) as process:
        try:
            _, stderr = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    assert process.returncode == 0, stderr[-4000:]
    return stderr


def response_log_likelihood(
    model: PreTrainedModel, examples: list[tuple[list[int], list[int]]]
) -> float:
    """Sum of log p(response token | prefix) over every example, with plain transformers."""
    total = 0.0
    with torch.no_grad():
        for prompt, response in examples:
            ids = torch.tensor([prompt + response])
            log_probs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].double(), dim=-1)
            targets = ids[0, 1:]
            picked = log_probs[torch.arange(len(targets)), targets]
            total += float(picked[len(prompt) - 1 :].sum())
    return total


def read_metrics(policy_dir: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (policy_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("rft")
    policy = toy.build_policy(root / "theta_0", warm_start_steps=0)
    tokenizer = toy.build_tokenizer()
    examples, rows = [], []
    for problem in toy.make_problems("train", EXPERT_PROBLEMS, seed=1):
        prompt = tokenizer.encode(problem.problem)
        response = [*tokenizer.encode(toy.response_text(problem.answer)), tokenizer.eos_token_id]
        examples.append((prompt, response))
        rows.append(
            {
                "prompt_id": problem.id,
                "prompt": problem.problem,
                "response": toy.response_text(problem.answer),
                "prompt_token_ids": prompt,
                "response_token_ids": response,
                "prompt_success_rate": 0.05,
                "step": 1,
                "sample_index": 0,
            }
        )
    expert = root / "expert" / "data.parquet"
    expert.parent.mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=EXPERT_SCHEMA), expert)
    workspace = Workspace(root, policy, expert, examples)
    run_rft(workspace.config("one-rank"))
    return workspace


def test_rft_raises_the_likelihood_of_expert_responses(workspace: Workspace) -> None:
    before = AutoModelForCausalLM.from_pretrained(workspace.policy)
    after = AutoModelForCausalLM.from_pretrained(workspace.root / "one-rank/policy")

    assert response_log_likelihood(after, workspace.examples) > response_log_likelihood(
        before, workspace.examples
    ) + 0.1 * sum(len(response) for _, response in workspace.examples)


def test_rft_output_is_a_complete_hf_policy_with_metrics_and_marker(workspace: Workspace) -> None:
    output = workspace.root / "one-rank/policy"
    tokenizer = AutoTokenizer.from_pretrained(output)
    assert tokenizer.eos_token == toy.EOS
    assert (output / "model.safetensors").exists()
    metrics = read_metrics(output)
    assert [m["step"] for m in metrics] == [1, 2, 3, 4, 5, 6]
    assert [m["samples"] for m in metrics] == [8, 8, 1, 8, 8, 1]
    marker = json.loads((output / "_SUCCESS").read_text())
    assert marker["expert_samples"] == EXPERT_PROBLEMS
    assert marker["steps"] == 6


def test_a_rerun_resumes_from_the_last_checkpoint_to_the_same_policy(workspace: Workspace) -> None:
    first = workspace.root / "one-rank/policy"
    weights = load_file(first / "model.safetensors")
    first.rename(workspace.root / "one-rank/first-policy")

    log = run_rft(workspace.config("one-rank"))

    assert "resuming RFT after step 4" in log
    checkpoints = workspace.root / "one-rank/checkpoints"
    assert [p.name for p in checkpoints.iterdir()] == ["step-000004"]  # older ones removed
    resumed = load_file(first / "model.safetensors")
    for name, tensor in weights.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=0)


def test_two_ranks_take_the_same_steps_as_one(workspace: Workspace) -> None:
    run_rft(workspace.config("two-ranks"), ranks=2)

    one = workspace.root / "one-rank/first-policy"
    two = workspace.root / "two-ranks/policy"
    # Equal gradient norms: the loss is the global token mean, not a per-rank average.
    for one_step, two_step in zip(read_metrics(one), read_metrics(two), strict=True):
        assert two_step["loss"] == pytest.approx(one_step["loss"], rel=1e-5)
        assert two_step["grad_norm"] == pytest.approx(one_step["grad_norm"], rel=1e-4)
    one_weights = load_file(one / "model.safetensors")
    two_weights = load_file(two / "model.safetensors")
    # Each rank orders its share by length, so the micro-batches (and the float sums) differ
    # from one rank's; Adam's normalisation magnifies that rounding where gradients are ~0.
    for name, tensor in one_weights.items():
        torch.testing.assert_close(two_weights[name], tensor, rtol=1e-4, atol=1e-5)


def test_an_empty_expert_set_carries_the_policy_over_with_a_warning(workspace: Workspace) -> None:
    empty = workspace.root / "empty" / "data.parquet"
    empty.parent.mkdir()
    pq.write_table(EXPERT_SCHEMA.empty_table(), empty)

    run_rft(workspace.config("carry-over", expert_uri=str(empty)))

    output = workspace.root / "carry-over/policy"
    carried = load_file(output / "model.safetensors")
    for name, tensor in load_file(workspace.policy / "model.safetensors").items():
        torch.testing.assert_close(carried[name], tensor, rtol=0, atol=0)
    marker = json.loads((output / "_SUCCESS").read_text())
    assert marker["expert_samples"] == 0
    assert "carries over unchanged" in str(marker["warning"])
