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
from rloop_trainer.cli import EXIT_PERMANENT
from rloop_trainer.eval_samples import read_samples
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


def expected_outcome(
    policy: Path, problems: list[toy.ToyProblem]
) -> tuple[dict[str, Any], list[list[tuple[list[int], str, bool]]]]:
    """Sample and verify by hand, then count pass@k over every k-subset of the samples;
    also each problem's samples as (token ids, text, verdict)."""
    model = AutoModelForCausalLM.from_pretrained(policy)
    tokenizer = AutoTokenizer.from_pretrained(policy)
    spec = SamplingSpec(SAMPLES, 1.0, 1.0, MAX_RESPONSE_TOKENS, SEED)
    completions = HFEngine(model, tokenizer).generate(
        [tokenizer.encode(p.problem) for p in problems], spec
    )
    samples = [
        [
            (c.token_ids, c.text, v.correct)
            for c, v in zip(
                drawn, grade(drawn, [p.answer] * len(drawn), "boxed-or-answer"), strict=True
            )
        ]
        for p, drawn in zip(problems, completions, strict=True)
    ]
    verdicts = [[verdict for _, _, verdict in drawn] for drawn in samples]
    pass_at = {}
    for k in PASS_AT:
        subsets = list(itertools.combinations(range(SAMPLES), k))
        per_problem = [sum(any(v[i] for i in s) for s in subsets) / len(subsets) for v in verdicts]
        pass_at[str(k)] = sum(per_problem) / len(problems)
    summary = {
        "avg@n": sum(sum(v) / SAMPLES for v in verdicts) / len(problems),
        "pass@k": pass_at,
        "problems": len(problems),
        "samples": SAMPLES,
    }
    return summary, samples


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
    recorded = read_samples(str(tmp_path / "eval"))
    for name, problems in (("train", train), ("heldout", heldout)):
        expected, samples = expected_outcome(policy, problems)
        assert report["sets"][name]["pass@k"] == pytest.approx(expected.pop("pass@k"))
        assert {k: report["sets"][name][k] for k in expected} == pytest.approx(expected)
        rows = [row for row in recorded if row.set_name == name]
        assert [(row.prompt_id, row.ground_truth) for row in rows] == [
            (p.id, p.answer) for p in problems
        ]
        assert [list(zip(r.token_ids, r.texts, r.verdicts, strict=True)) for r in rows] == samples
    assert report["sets"]["train"]["avg@n"] > 0  # the warm start makes some answers right
    assert json.loads((tmp_path / "eval/_SUCCESS").read_text()) == report


def test_eval_refreshes_the_run_analysis_with_this_evaluation_last(tmp_path: Path) -> None:
    policy = toy.build_policy(tmp_path / "policy", warm_start_steps=30)
    toy.write_prompts(toy.make_problems("heldout", 6, seed=6), str(tmp_path / "heldout.parquet"))
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "grad_norm": 0.5}\n')
    output_uri = f"file://{tmp_path}/iter-000/eval"
    config = {
        "policy_uri": str(policy),
        "output_uri": output_uri,
        "validation": [
            {"name": "heldout", "uri": str(tmp_path / "heldout.parquet"), "samples": 2,
             "pass_at": [1, 2]}
        ],
        "max_prompt_tokens": 16,
        "max_response_tokens": MAX_RESPONSE_TOKENS,
        "engine": "hf",
        "analysis": {
            "output_uri": f"file://{tmp_path}/analysis",
            "evaluations": [
                {"label": "iter 1", "iteration": 1, "rl_steps": 4, "eval_uri": output_uri}
            ],
            "dapo_metrics": [{"metrics_uri": str(tmp_path / "metrics.jsonl"), "first_step": 0}],
        },
    }  # fmt: skip

    result = run_eval(config, tmp_path)

    assert result.returncode == 0, result.stderr[-4000:]
    analysis = json.loads((tmp_path / "analysis" / "analysis.json").read_text())
    assert [p["eval_uri"] for p in analysis["policies"]] == [output_uri]
    assert analysis["sets"]["heldout"]["problems"] == 6
    assert analysis["training"]["grad_norm"] == [[1, 0.5]]
    for name in analysis["pictures"]:
        assert (tmp_path / "analysis" / name).read_bytes().startswith(b"\x89PNG")


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

    assert result.returncode == EXIT_PERMANENT
    assert f"{tmp_path / 'bad.jsonl'} row 0: missing ground truth in 'answer'" in result.stderr
    assert not (tmp_path / "eval").exists()
