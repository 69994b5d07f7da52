"""`rloop report RUN... [--compare OTHER...]`: runs' evaluations and analysis, from their
stores, and with --compare the paper's comparison of two arms over paired seeds (the
i-th RUN and the i-th OTHER ran with the same seed): Table 1 with intervals, Fig. 4,
5a-c and 6 (comparison_tables.py, comparison_plots.py), and one sentence.

RUN is the store URI of the run's prefix (`<storage.uri>/<namespace>/<name>/<uid>`,
`file://` or `s3://`; a local directory path works too), or the RLoopRun YAML that
`rloop run` ran, whose prefix is found as the operator finds it. S3 endpoint and
credentials come from the usual environment (`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`,
`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`); a YAML's `spec.storage.endpoint` wins.

The index is the run's `analysis/analysis.json` (written by every evaluation: the
evaluated policies, their iteration and RL steps); the numbers are read from each
evaluation's report.json and each iteration's expert report.json.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from rich.console import Console
from rich.table import Table

from rloop_operator.api import SpecError
from rloop_operator.comparison_plots import write_pictures
from rloop_operator.comparison_tables import (
    along_steps_table,
    diversity_table,
    forgetting_difference_table,
)
from rloop_operator.comparison_tables import table_one as table_one_table
from rloop_operator.layout import RunLayout, run_layout
from rloop_operator.local_executor import load_run
from rloop_operator.report_tables import (
    PolicyRow,
    RunSummary,
    best_row,
    forgetting_table,
    iteration_tables,
    metric_names,
)
from rloop_operator.run_comparison import (
    Arms,
    FigureComparison,
    RunAnalysis,
    along_steps,
    differential_forgetting,
    equal_steps,
    headline_figures,
    parse_analysis,
    shared_sets,
    table_figures,
    table_one,
    verdict,
)
from rloop_operator.stage_reports import parse_eval_report, parse_filter_report


class ReportError(Exception):
    """A run that cannot be reported; the message names the URI and what to do."""


class StoreReader:
    """Reads `file://` and `s3://` objects; boto3 only when an S3 object is asked for."""

    def __init__(self, endpoint: str | None = None) -> None:
        self.endpoint = (
            endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        )

    @cached_property
    def _s3(self) -> Any:
        import boto3

        return boto3.session.Session().client("s3", endpoint_url=self.endpoint)

    def read_bytes(self, uri: str) -> bytes | None:
        """The object's bytes, or None if there is no such object."""
        parsed = urlparse(uri)
        if parsed.scheme != "s3":
            path = Path(parsed.path)
            return path.read_bytes() if path.is_file() else None
        from botocore.exceptions import ClientError

        try:
            response = self._s3.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise ReportError(f"cannot read {uri}: {exc}; check the credentials") from exc
        body: bytes = response["Body"].read()
        return body

    def read_json(self, uri: str) -> Any:
        body = self.read_bytes(uri)
        return None if body is None else json.loads(body)


def resolve_run(argument: str) -> tuple[str, str | None]:
    """(store prefix of the run, S3 endpoint its YAML names) for a URI, directory or YAML."""
    if argument.startswith(("s3://", "file://")):
        return argument.rstrip("/"), None
    path = Path(argument)
    if path.is_dir():
        return f"file://{path.resolve()}", None
    if path.is_file():
        try:
            metadata, spec = load_run(path)
        except SpecError as exc:
            raise ReportError(str(exc)) from exc
        namespace, uid = str(metadata.get("namespace", "local")), str(metadata.get("uid", "local"))
        layout = run_layout(spec.storage.uri, namespace, str(metadata["name"]), uid)
        return layout.root, spec.storage.endpoint
    raise ReportError(
        f"{argument!r} is neither a store URI (s3://..., file://...), a directory nor an "
        "RLoopRun YAML file; pass the run's prefix <storage.uri>/<namespace>/<name>/<uid>"
    )


def _run_name(prefix: str) -> str:
    """`<name>` of a `.../<namespace>/<name>/<uid>` prefix."""
    parts = prefix.rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 else prefix


def _expert_samples(reader: StoreReader, layout: RunLayout, iteration: int) -> int | None:
    report = reader.read_json(layout.expert_report(iteration - 1)) if iteration > 0 else None
    return None if report is None else parse_filter_report(report).expert_samples


def read_analysis(prefix: str, reader: StoreReader) -> dict[str, Any]:
    layout = RunLayout(root=prefix)
    analysis: dict[str, Any] | None = reader.read_json(layout.analysis_report())
    if analysis is None:
        raise ReportError(
            f"no {layout.analysis_report()}: the run has no finished evaluation yet (each "
            "evaluation writes it; a run without spec.data.validation has none), or the "
            "prefix is not a run's <storage.uri>/<namespace>/<name>/<uid>"
        )
    return analysis


def load_summary(prefix: str, reader: StoreReader) -> RunSummary:
    layout = RunLayout(root=prefix)
    analysis = read_analysis(prefix, reader)
    rows = []
    for policy in analysis["policies"]:
        report = reader.read_json(f"{policy['eval_uri']}/report.json")
        metrics = {} if report is None else dict(parse_eval_report(report).metrics)
        expert = _expert_samples(reader, layout, policy["iteration"])
        rows.append(
            PolicyRow(policy["label"], policy["iteration"], policy["rl_steps"], expert, metrics)
        )
    rates = {name: figures["forgetting_rate"] for name, figures in analysis["sets"].items()}
    pictures = tuple(f"{layout.analysis()}/{name}" for name in analysis.get("pictures", ()))
    return RunSummary(_run_name(prefix), prefix, tuple(rows), rates, pictures)


def download_pictures(summary: RunSummary, reader: StoreReader, target: Path) -> list[Path]:
    """Copy the run's PNGs into `target`; returns the local paths."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for uri in summary.pictures:
        body = reader.read_bytes(uri)
        if body is not None:
            path = target / uri.rsplit("/", 1)[-1]
            path.write_bytes(body)
            written.append(path)
    return written


def print_summary(summary: RunSummary, metric: str | None, console: Console) -> None:
    for table in iteration_tables(summary):
        console.print(table)
    names = metric_names(summary.rows)
    chosen = metric or (names[0] if names else None)
    best = None if chosen is None else best_row(summary.rows, chosen)
    if chosen is None or best is None:
        console.print(f"best policy: none has metric {chosen!r}; metrics here: {names}")
        return
    console.print(
        f"best policy by {chosen}: {best.label} (iteration {best.iteration}, "
        f"{best.rl_steps} RL steps) with {best.metrics[chosen]:.3f}"
    )


@dataclass(frozen=True)
class LoadedRun:
    summary: RunSummary
    analysis: RunAnalysis
    reader: StoreReader


def load_run_report(argument: str) -> LoadedRun:
    prefix, endpoint = resolve_run(argument)
    reader = StoreReader(endpoint)
    summary = load_summary(prefix, reader)
    return LoadedRun(summary, parse_analysis(summary.name, read_analysis(prefix, reader)), reader)


def arm_name(runs: Sequence[LoadedRun]) -> str:
    """The runs' common name: `rloop-s0`, `rloop-s1` -> `rloop`; one run: its name."""
    names = [run.summary.name for run in runs]
    common = names[0]
    for name in names[1:]:
        while not name.startswith(common):
            common = common[:-1]
    if len(names) > 1:
        common = re.sub(r"[-_.]s?$", "", common)
    return common or names[0]


def report_command(
    runs: Sequence[str],
    others: Sequence[str],
    metric: str | None,
    out: Path | None,
    console: Console,
) -> int:
    """Print each run's tables and best policy and its pictures; with `others`, the
    comparison of the two arms and its pictures (under `out`, else ./rloop-compare)."""
    if others and len(others) != len(runs):
        raise ReportError(
            f"--compare pairs runs by seed: got {len(runs)} RUN and {len(others)} OTHER; "
            "give as many of each, in the same seed order"
        )
    loaded: list[LoadedRun] = []
    for argument in (*runs, *others):
        run = load_run_report(argument)
        print_summary(run.summary, metric, console)
        # Two runs of one name (a run and its re-creation) get a folder each.
        taken = sum(r.summary.name == run.summary.name for r in loaded)
        folder = run.summary.name + (f"-{taken + 1}" if taken else "")
        pictures = (
            download_pictures(run.summary, run.reader, out / folder)
            if out
            else run.summary.pictures
        )
        for picture in pictures:
            # A file:// picture is shown as its path, which an image viewer opens as it is.
            console.print(f"picture: {str(picture).removeprefix('file://')}", soft_wrap=True)
        loaded.append(run)
    if others:
        ours, theirs = loaded[: len(runs)], loaded[len(runs) :]
        names = (arm_name(ours), arm_name(theirs))
        compare_arms(
            ours, theirs, names, (out or Path("rloop-compare")) / "-vs-".join(names), console
        )
    return 0


def compare_arms(
    ours: Sequence[LoadedRun],
    theirs: Sequence[LoadedRun],
    names: tuple[str, str],
    pictures: Path,
    console: Console,
) -> None:
    """The comparison of two arms, the i-th run of each from the same seed (print_comparison)."""
    arms = Arms(*names, tuple(r.analysis for r in ours), tuple(r.analysis for r in theirs))
    forgetting = forgetting_table([r.summary for r in ours], [r.summary for r in theirs], names)
    print_comparison(arms, forgetting, pictures, console)


def print_comparison(arms: Arms, forgetting: Table, pictures: Path, console: Console) -> None:
    """Per set: Table 1 at the last equal RL step, the headline figures along the steps,
    the differential forgetting and the own similarity; the forgetting rates; the
    pictures; last, the sentence the intervals support."""
    along: dict[str, list[FigureComparison]] = {}
    forgotten = {}
    headlines: list[FigureComparison] = []
    for set_name in shared_sets(arms.runs):
        if not equal_steps(arms.runs, set_name) or not table_figures(arms.runs, set_name):
            console.print(f"{set_name}: no evaluation at equal RL steps with per-problem figures")
            continue
        first = table_one(arms, set_name)
        along[set_name] = along_steps(arms, set_name)
        forgotten[set_name] = differential_forgetting(arms.ours, arms.theirs, set_name)
        console.print(table_one_table(arms, set_name, first))
        console.print(along_steps_table(arms, set_name, along[set_name]))
        console.print(forgetting_difference_table(arms, set_name, *forgotten[set_name]))
        console.print(diversity_table(arms, set_name))
        wanted = headline_figures([c.figure for c in first])
        headlines += [c for c in first if c.figure in wanted]
    console.print(forgetting)
    if along:
        for path in write_pictures(pictures, arms, along, forgotten):
            console.print(f"picture: {path}", soft_wrap=True)
    console.print(verdict(headlines, arms.ours_name, arms.theirs_name) if headlines else
                  "the arms have no evaluation at equal RL steps to compare")  # fmt: skip
