"""`rloop report` on run stores the test builds with the trainer's own writers, on the local
file system and on a real S3 server (SeaweedFS): the printed numbers are the store's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from rloop_operator.cli import main
from rloop_trainer import s3, store
from rloop_trainer.config import RunAnalysisConfig
from rloop_trainer.eval_samples import ProblemSamples, write_samples
from rloop_trainer.run_analysis import refresh_run_analysis

from tests.cluster.s3 import S3Endpoint

# label -> (iteration, RL steps, heldout avg@4, expert samples, verdicts of 4 samples on 3 problems)
RLOOP = {
    "base": (0, 0, 0.25, None, [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]),
    "iter 1": (1, 4, 0.5, 17, [[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 1]]),
    "iter 2": (2, 8, 0.4167, 11, [[0, 0, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]),
}
VANILLA = {"iter 1": (1, 8, 0.1667, None, [[0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]])}


def write_run(prefix: str, policies: dict[str, tuple]) -> None:  # type: ignore[type-arg]
    """Evaluations, expert reports and the analysis, as the phases leave them in the store."""
    evaluations = []
    for label, (iteration, rl_steps, avg, expert, verdicts) in policies.items():
        eval_uri = store.join(
            prefix, "base-eval" if iteration == 0 else f"iter-{iteration - 1:03d}/eval"
        )
        write_samples(
            eval_uri,
            [
                ProblemSamples(
                    "heldout", f"p{i}", "7", [[1, 2]] * 4, ["r"] * 4, [bool(v) for v in row]
                )
                for i, row in enumerate(verdicts)
            ],
        )
        report = {"sets": {"heldout": {"avg@n": avg, "pass@k": {"4": avg + 0.25}, "samples": 4}}}
        store.write_bytes(store.join(eval_uri, "report.json"), json.dumps(report).encode())
        if expert is not None:
            filter_report = {"rollouts": 64, "hard_prompts": 5, "kept_samples": expert}
            expert_uri = store.join(prefix, f"iter-{iteration - 1:03d}/expert/report.json")
            store.write_bytes(expert_uri, json.dumps(filter_report).encode())
        evaluations.append(
            {"label": label, "iteration": iteration, "rl_steps": rl_steps, "eval_uri": eval_uri}
        )
    refresh_run_analysis(
        RunAnalysisConfig(output_uri=store.join(prefix, "analysis"), evaluations=evaluations)
    )


def report(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, list[str]]:
    code = main(["report", *arguments])
    return code, capsys.readouterr().out.splitlines()


def table_rows(lines: list[str]) -> list[list[str]]:
    """The cells of every printed table row."""
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines if "│" in line]


def row_of(lines: list[str], first_cell: str) -> list[str]:
    """The cells of the first table row whose first cell is `first_cell`."""
    found = [row for row in table_rows(lines) if row[0] == first_cell]
    assert found, f"no row {first_cell!r} in:\n" + "\n".join(lines)
    return found[0]


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "240")


def test_the_table_of_a_local_run_comes_from_its_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"file://{tmp_path}/store/ns/tiny/uid-1"
    write_run(prefix, RLOOP)

    code, lines = report(capsys, prefix, "--out", str(tmp_path / "pictures"))

    assert code == 0
    assert row_of(lines, "base") == ["base", "0", "0", "-", "0.250", "0.500"]
    assert row_of(lines, "iter 1") == ["iter 1", "1", "4", "17", "0.500", "0.750"]
    assert row_of(lines, "iter 2") == ["iter 2", "2", "8", "11", "0.417", "0.667"]
    assert "best policy by heldout/avg@4: iter 1 (iteration 1, 4 RL steps) with 0.500" in lines
    pictures = sorted(p.name for p in (tmp_path / "pictures" / "tiny").iterdir())
    assert pictures == [
        "learning-forgetting-heldout.png",
        "similarity-heldout.png",
        "validation.png",
    ]


def test_a_run_is_found_from_the_yaml_that_rloop_run_ran(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_run(f"file://{tmp_path}/store/local/tiny/local", RLOOP)
    run_file = tmp_path / "tiny.yaml"
    document = {
        "apiVersion": "rloop.io/v1alpha1",
        "kind": "RLoopRun",
        "metadata": {"name": "tiny"},
        "spec": {
            "model": {"base": "file:///m"},
            "data": {"train": "file:///t.parquet"},
            "storage": {"uri": f"file://{tmp_path}/store"},
        },
    }
    run_file.write_text(yaml.safe_dump(document))

    code, lines = report(capsys, str(run_file), "--metric", "heldout/pass@4")

    assert code == 0
    assert "best policy by heldout/pass@4: iter 1 (iteration 1, 4 RL steps) with 0.750" in lines


def test_two_runs_are_compared_at_equal_rl_steps_with_their_forgetting_rates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_run(f"file://{tmp_path}/ns/rloop/u1", RLOOP)
    write_run(f"file://{tmp_path}/ns/vanilla/u2", VANILLA)

    code, lines = report(
        capsys, f"{tmp_path}/ns/rloop/u1", "--compare", f"{tmp_path}/ns/vanilla/u2",
        "--out", str(tmp_path / "out"),
    )  # fmt: skip

    assert code == 0
    # Table 1 at 8 RL steps: base (rloop's), vanilla, rloop, the difference, its interval
    assert row_of(lines, "avg@4")[:5] == ["avg@4", "0.250", "0.167", "0.417", "+0.250"]
    assert row_of(lines, "pass@4")[:5] == ["pass@4", "0.667", "0.333", "0.667", "+0.333"]
    # rloop: base -> iter 2 and iter 1 -> iter 2 each lose p0, base -> iter 1 loses nothing
    assert row_of(lines, "heldout") == ["heldout", "0.222", "-", "-"]
    assert lines[-1].startswith("No difference detected at this power between rloop and vanilla")
    pictures = tmp_path / "out" / "rloop-vs-vanilla"
    assert sorted(p.name for p in pictures.iterdir()) == [
        "accuracy.png", "diversity.png", "entropy-gradnorm.png", "forgetting-difference.png",
    ]  # fmt: skip


def test_arms_of_unequal_size_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_run(f"file://{tmp_path}/ns/rloop/u1", RLOOP)

    code, lines = report(
        capsys, f"{tmp_path}/ns/rloop/u1", f"{tmp_path}/ns/rloop/u1", "--compare",
        f"{tmp_path}/ns/rloop/u1",
    )  # fmt: skip

    assert code == 1
    assert "got 2 RUN and 1 OTHER" in " ".join(lines)


def test_a_prefix_without_analysis_is_refused_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = report(capsys, f"file://{tmp_path}/ns/none/u")

    assert code == 1
    assert f"{tmp_path}/ns/none/u/analysis/analysis.json" in " ".join(lines)


@pytest.fixture
def s3_bucket(s3_server: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The environment of both the trainer and `rloop report` pointed at the test bucket."""
    for name, value in s3_server.client_env().items():
        monkeypatch.setenv(name, value)
    s3.configure()
    yield f"s3://{s3_server.bucket}"
    s3.configure()


@pytest.mark.s3
def test_the_table_of_a_run_on_s3_comes_from_its_reports(
    s3_bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"{s3_bucket}/rloop/ns/tiny/uid-2"
    write_run(prefix, RLOOP)

    code, lines = report(capsys, prefix, "--out", str(tmp_path / "pictures"))

    assert code == 0
    assert row_of(lines, "iter 2") == ["iter 2", "2", "8", "11", "0.417", "0.667"]
    picture = tmp_path / "pictures" / "tiny" / "validation.png"
    assert picture.read_bytes().startswith(b"\x89PNG")
