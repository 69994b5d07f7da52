"""`rloop-trainer eval` on the toy policy, end to end on CPU."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from rloop_trainer import toy
from rloop_trainer.reward import grade
from rloop_trainer.rollout.base import SamplingSpec
from rloop_trainer.rollout.hf import HFEngine
from transformers import AutoModelForCausalLM, AutoTokenizer

TRAINER = str(Path(sys.executable).parent / "rloop-trainer")
SAMPLES = 4
PASS_AT = [1, 2, 4]
MAX_RESPONSE_TOKENS = 8
SEED = 3


def run_eval(config: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "eval.json"
    # The report goes where the operator names it (rloop_operator.layout.eval_report).
    path.write_text(json.dumps({"report_uri": f"{config['output_uri']}/report.json"} | config))
    return subprocess.run(
        [TRAINER, "eval", "--config", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )


@pytest.fixture
def one_thread() -> Iterator[None]:
    """The phase runs with one thread; sampling here must see the same logits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def expected_summary(policy: Path, problems: list[toy.ToyProblem]) -> dict[str, Any]:
    """Sample and verify by hand, then count pass@k over every k-subset of the samples."""
    model = AutoModelForCausalLM.from_pretrained(policy)
    tokenizer = AutoTokenizer.from_pretrained(policy)
    spec = SamplingSpec(SAMPLES, 1.0, 1.0, MAX_RESPONSE_TOKENS, SEED)
    completions = HFEngine(model, tokenizer).generate(
        [tokenizer.encode(p.problem) for p in problems], spec
    )
    verdicts = [
        [v.correct for v in grade(samples, [p.answer] * len(samples), "boxed-or-answer")]
        for p, samples in zip(problems, completions, strict=True)
    ]
    pass_at = {}
    for k in PASS_AT:
        subsets = list(itertools.combinations(range(SAMPLES), k))
        per_problem = [sum(any(v[i] for i in s) for s in subsets) / len(subsets) for v in verdicts]
        pass_at[str(k)] = sum(per_problem) / len(problems)
    return {
        "avg@n": sum(sum(v) / SAMPLES for v in verdicts) / len(problems),
        "pass@k": pass_at,
        "problems": len(problems),
        "samples": SAMPLES,
    }


def test_eval_reports_avg_and_pass_at_k_of_each_validation_set(
    tmp_path: Path, one_thread: None
) -> None:
    policy = toy.build_policy(tmp_path / "policy", warm_start_steps=30)
    train = toy.make_problems("train", 12, seed=5)
    heldout = toy.make_problems("heldout", 8, seed=6)
    toy.write_prompts(train, str(tmp_path / "train.parquet"))
    (tmp_path / "heldout.jsonl").write_text(
        "".join(
            json.dumps({"id": p.id, "problem": p.problem, "answer": p.answer}) + "\n"
            for p in heldout
        )
    )
    validation = [
        {"name": "train", "uri": str(tmp_path / "train.parquet")},
        {"name": "heldout", "uri": f"file://{tmp_path}/heldout.jsonl"},
    ]
    config = {
        "policy_uri": str(policy),
        "output_uri": str(tmp_path / "eval"),
        "validation": [{**v, "samples": SAMPLES, "pass_at": PASS_AT} for v in validation],
        "max_prompt_tokens": 16,
        "max_response_tokens": MAX_RESPONSE_TOKENS,
        "engine": "hf",
        "seed": SEED,
    }

    result = run_eval(config, tmp_path)

    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads((tmp_path / "eval/report.json").read_text())
    for name, problems in (("train", train), ("heldout", heldout)):
        expected = expected_summary(policy, problems)
        assert report["sets"][name]["pass@k"] == pytest.approx(expected.pop("pass@k"))
        assert {k: report["sets"][name][k] for k in expected} == pytest.approx(expected)
    assert report["sets"]["train"]["avg@n"] > 0  # the warm start makes some answers right
    assert json.loads((tmp_path / "eval/_SUCCESS").read_text()) == report


def test_a_validation_set_without_answers_fails_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text(json.dumps({"id": "a", "problem": "1+1="}) + "\n")
    config = {
        "policy_uri": str(tmp_path / "no-policy-needed"),
        "output_uri": str(tmp_path / "eval"),
        "validation": [
            {"name": "bad", "uri": str(tmp_path / "bad.jsonl"), "samples": 1, "pass_at": [1]}
        ],
    }

    result = run_eval(config, tmp_path)

    assert result.returncode == 1
    assert f"{tmp_path / 'bad.jsonl'} row 0: missing ground truth in 'answer'" in result.stderr
    assert not (tmp_path / "eval").exists()
