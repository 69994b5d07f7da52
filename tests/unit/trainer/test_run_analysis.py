"""The run-level analysis: from evaluations and DAPO metrics in a store to analysis.json
and pictures, with the numbers checked against the hand-made inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rloop_trainer.config import RunAnalysisConfig
from rloop_trainer.eval_samples import ProblemSamples, write_samples
from rloop_trainer.run_analysis import refresh_run_analysis

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Per policy: verdicts of 2 samples on problems p0..p3 of set "heldout".
VERDICTS = {
    "base": [[False, False], [True, False], [True, True], [False, False]],
    "iter 1": [[True, False], [False, False], [True, False], [False, False]],
    "iter 2": [[True, True], [True, False], [False, False], [False, True]],
}
RESPONSES = {"base": [[1, 2, 3], [3, 2]], "iter 1": [[1, 2, 3], [2, 1]], "iter 2": [[9, 9], [9]]}


def write_evaluation(root: Path, label: str) -> str:
    uri = f"file://{root}/{label.replace(' ', '-')}/eval"
    problems = [
        ProblemSamples("heldout", f"p{i}", "7", RESPONSES[label], ["a", "b"], verdicts)
        for i, verdicts in enumerate(VERDICTS[label])
    ]
    write_samples(uri, problems)
    avg = sum(map(sum, VERDICTS[label])) / 8
    report = {"sets": {"heldout": {"avg@n": avg, "pass@k": {"2": 0.5}, "samples": 2}}}
    Path(uri.removeprefix("file://"), "report.json").write_text(json.dumps(report))
    return uri


def write_metrics(root: Path, iteration: int, lines: list[dict[str, float]]) -> str:
    path = root / f"iter-{iteration}" / "metrics.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return f"file://{path}"


@pytest.fixture
def config(tmp_path: Path) -> RunAnalysisConfig:
    first = write_metrics(tmp_path, 0, [{"step": 1, "grad_norm": 0.3, "token_entropy": 1.1}])
    second = write_metrics(tmp_path, 1, [{"step": 1, "grad_norm": 0.2, "accuracy": 0.4}])
    return RunAnalysisConfig(
        output_uri=f"file://{tmp_path}/analysis",
        evaluations=[
            {
                "label": x,
                "iteration": i,
                "rl_steps": 4 * i,
                "eval_uri": write_evaluation(tmp_path, x),
            }
            for i, x in enumerate(VERDICTS)
        ],
        dapo_metrics=[
            {"metrics_uri": first, "first_step": 0},
            {"metrics_uri": second, "first_step": 4},
        ],
    )


def test_analysis_json_holds_the_matrices_of_the_hand_made_evaluations(
    config: RunAnalysisConfig, tmp_path: Path
) -> None:
    refresh_run_analysis(config)

    document = json.loads((tmp_path / "analysis" / "analysis.json").read_text())
    assert [p["label"] for p in document["policies"]] == ["base", "iter 1", "iter 2"]
    assert [p["rl_steps"] for p in document["policies"]] == [0, 4, 8]
    heldout = document["sets"]["heldout"]
    # solved: base {p1, p2}; iter 1 {p0, p2}; iter 2 {p0, p1, p3}
    assert heldout["solved"] == [0.5, 0.5, 0.75]
    assert heldout["learning"][0] == [0.0, 0.25, 0.5]  # base -> iter 2 gains p0 and p3
    assert heldout["forgetting"][0] == [0.0, 0.25, 0.25]  # base -> iter 2 loses p2
    assert heldout["forgetting"][1][2] == 0.25  # iter 1 -> iter 2 loses p2
    assert heldout["forgetting_rate"] == pytest.approx(0.25)
    # Appendix A, every problem: base's own two solutions 1 2 3 and 3 2 share no bigram;
    # of the 4 pairs base x iter 1 only (1 2 3, 1 2 3) matches; iter 2 shares nothing
    assert heldout["similarity"][0] == [0.0, 0.25, 0.0]
    assert heldout["problem_ids"] == ["p0", "p1", "p2", "p3"]
    assert heldout["per_problem"]["avg@2"][0] == [0.0, 0.5, 1.0, 0.0]
    assert heldout["per_problem"]["pass@2"][2] == [1.0, 1.0, 0.0, 1.0]
    assert document["training"]["grad_norm"] == [[1, 0.3], [5, 0.2]]
    assert document["training"]["accuracy"] == [[5, 0.4]]
    assert document["validation"]["heldout"]["avg@2"][2] == [8, 4 / 8, "iter 2"]


def test_every_listed_picture_is_a_png_in_the_store(
    config: RunAnalysisConfig, tmp_path: Path
) -> None:
    document = refresh_run_analysis(config)

    assert document["pictures"] == [
        "learning-forgetting-heldout.png",
        "similarity-heldout.png",
        "training.png",
        "validation.png",
    ]
    for name in document["pictures"]:
        assert (tmp_path / "analysis" / name).read_bytes().startswith(PNG_MAGIC)


def test_an_evaluation_without_samples_stays_in_the_index_but_out_of_the_matrices(
    config: RunAnalysisConfig, tmp_path: Path
) -> None:
    (tmp_path / "iter-1" / "eval" / "samples.parquet").unlink()

    document = refresh_run_analysis(config)

    assert [p["label"] for p in document["policies"]] == ["base", "iter 1", "iter 2"]
    assert document["sets"]["heldout"]["policies"] == ["base", "iter 2"]
    assert document["sets"]["heldout"]["forgetting_rate"] == pytest.approx(0.25)
