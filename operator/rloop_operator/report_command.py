"""`rloop report RUN [--compare OTHER]`: a run's evaluations and analysis, from its store.

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
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from rich.console import Console

from rloop_operator.api import SpecError
from rloop_operator.layout import RunLayout, run_layout
from rloop_operator.local_executor import load_run
from rloop_operator.report_tables import (
    PolicyRow,
    RunSummary,
    best_row,
    comparison_table,
    comparison_verdict,
    forgetting_table,
    iteration_table,
    metric_names,
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


def load_summary(prefix: str, reader: StoreReader) -> RunSummary:
    layout = RunLayout(root=prefix)
    analysis = reader.read_json(layout.analysis_report())
    if analysis is None:
        raise ReportError(
            f"no {layout.analysis_report()}: the run has no finished evaluation yet (each "
            "evaluation writes it; a run without spec.data.validation has none), or the "
            "prefix is not a run's <storage.uri>/<namespace>/<name>/<uid>"
        )
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
    console.print(iteration_table(summary))
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


def report_command(
    runs: Sequence[str], metric: str | None, out: Path | None, console: Console
) -> int:
    """Print each run's table and best policy, the comparison of two, and their pictures."""
    summaries: list[RunSummary] = []
    for argument in runs:
        prefix, endpoint = resolve_run(argument)
        reader = StoreReader(endpoint)
        summary = load_summary(prefix, reader)
        print_summary(summary, metric, console)
        # Two runs of one name (a run and its re-creation) get a folder each.
        folder = summary.name + ("-2" if summaries and summaries[0].name == summary.name else "")
        pictures = download_pictures(summary, reader, out / folder) if out else summary.pictures
        for picture in pictures:
            # A file:// picture is shown as its path, which an image viewer opens as it is.
            console.print(f"picture: {str(picture).removeprefix('file://')}", soft_wrap=True)
        summaries.append(summary)
    if len(summaries) == 2:
        print_comparison(summaries[0], summaries[1], console)
    return 0


def print_comparison(first: RunSummary, second: RunSummary, console: Console) -> None:
    """Table 1's layout at equal RL steps, the forgetting rates, and what they showed."""
    console.print(comparison_table(first, second))
    console.print(forgetting_table(first, second))
    verdict = comparison_verdict(first, second)
    console.print(verdict or "the runs have no evaluation at equal RL steps to compare")
