"""Reading what finished phases reported: filter and eval reports, and failures.

A phase leaves its report in its pod's termination message (rloop_trainer.termination)
and in the store. The operator reads termination messages only (`report_from_messages`,
pure): it holds no store credentials. `read_report` does the store I/O (boto3 for s3://,
the file system for file://) for `rloop run`, which runs the phases itself. A report that
cannot be read is not fatal: the run goes on and the status lacks those numbers, with a
Warning event saying why. (A phase that fails leaves its failure there instead:
trainer_failures.py reads it.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from rloop_operator.layout import RunLayout
from rloop_operator.spec_sections import StorageSpec


@dataclass(frozen=True)
class StageReport:
    """What a finished filter or eval child reported (its termination message)."""

    trajectories: int | None = None
    hard_prompts: int | None = None
    expert_samples: int | None = None
    train_score: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None
    # What the report leaves out (it is recorded all the same).
    incomplete: str | None = None


def parse_dapo_report(report: Mapping[str, Any]) -> StageReport:
    """The DAPO phase's: the mean score of its last step's rollouts."""
    return StageReport(train_score=float(report["score"]))


def parse_filter_report(report: Mapping[str, Any]) -> StageReport:
    return StageReport(
        trajectories=int(report["rollouts"]),
        hard_prompts=int(report["hard_prompts"]),
        expert_samples=int(report["kept_samples"]),
    )


def parse_eval_report(report: Mapping[str, Any]) -> StageReport:
    """`{"sets": {name: {"avg@n": x, "pass@k": {"8": y}, "samples": n}}}` -> flat metrics
    `name/avg@<n>` and `name/pass@<k>`, the names the paper's tables use. Sets that did
    not fit in the termination message are named under "omitted"."""
    metrics: dict[str, float] = {}
    for name, figures in report["sets"].items():
        metrics[f"{name}/avg@{figures['samples']}"] = float(figures["avg@n"])
        metrics.update({f"{name}/pass@{k}": float(v) for k, v in figures["pass@k"].items()})
    omitted = [str(name) for name in report.get("omitted") or ()]
    incomplete = (
        f"the metrics of {', '.join(omitted)} did not fit in the 4 KiB termination message; "
        "they are in the full report in the store"
        if omitted
        else None
    )
    return StageReport(metrics=metrics, incomplete=incomplete)


ReportParser = Callable[[Mapping[str, Any]], StageReport]


@dataclass(frozen=True)
class ReportKind:
    """The report.json a finished stage leaves (and repeats in its termination message)."""

    name: str
    uri: Callable[[RunLayout, int], str]  # where it lies, by iteration
    parse: ReportParser
    # The base policy's evaluation: its metrics are status.baseMetrics, not an iteration's.
    of_base_policy: bool = False


# DAPO's: its last step's score. The filter's: rollouts, hard prompts, kept expert samples.
DAPO_REPORT = ReportKind("dapo", RunLayout.dapo_report, parse_dapo_report)
EXPERT_REPORT = ReportKind("expert", RunLayout.expert_report, parse_filter_report)
# The evaluation's: avg@n and pass@k per validation set; the same of the base policy.
EVAL_REPORT = ReportKind("eval", RunLayout.eval_report, parse_eval_report)
BASE_EVAL_REPORT = ReportKind(
    "base-eval", lambda layout, _: layout.base_eval_report(), parse_eval_report, True
)


def report_from_messages(messages: Sequence[str], parse: ReportParser) -> StageReport | None:
    """The first termination message that is a complete report; None if none is."""
    for message in messages:
        try:
            return parse(json.loads(message))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # e.g. a crash's traceback tail, or a report cut by the kubelet
    return None


def _read_bytes(uri: str, storage: StorageSpec, credentials: Mapping[str, str]) -> bytes:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(parsed.path).read_bytes()
    import boto3  # only the operator's store reads need it
    from botocore.config import Config

    s3 = boto3.client(
        "s3",
        endpoint_url=storage.endpoint,
        region_name=storage.region,
        aws_access_key_id=credentials.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=credentials.get("AWS_SECRET_ACCESS_KEY"),
        # A reconcile waits on this read: fail fast and let the run go on without it.
        config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2}),
    )
    body: bytes = s3.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"].read()
    return body


def read_report(
    uri: str, parse: ReportParser, storage: StorageSpec, credentials: Mapping[str, str]
) -> StageReport:
    try:
        return parse(json.loads(_read_bytes(uri, storage, credentials)))
    except Exception as exc:  # any store or format problem becomes a warning, not a crash
        return StageReport(error=f"cannot read {uri}: {type(exc).__name__}: {exc}")
