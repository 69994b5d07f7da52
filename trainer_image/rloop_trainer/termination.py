"""What a phase container leaves in its termination message, for the operator.

Kubernetes copies up to 4,096 bytes that a container writes to its
termination-message file into the pod's status. The operator reads it there and
nowhere else: it needs pod access alone, no store credentials (it reads no Secrets), and
it works for a file:// store on a volume the operator does not mount. The operator's
manifests and the local executor set RLOOP_TERMINATION_MESSAGE_PATH; elsewhere nothing
is written. Two kinds of message, both compact JSON objects:

    a report    a finished DAPO, filter or eval phase's report.json (written by the phase). One
                that does not fit is cut down to what the run's status shows (the filter's
                counts; avg@n, samples and pass@k of each validation set), then, if it still
                does not fit, whole validation sets are left out from the end and named
                under "omitted". The full report is always in the store.
    a failure   {"error": "<the trainer's one-line message>", "reason": "InvalidInput",
                 "permanent": true}: why the phase stopped, and whether a retry can
                succeed. torchrun turns a worker's exit code into its own, so this is
                what carries the distinction to the executor and the operator
                (rloop_operator.trainer_failures.failure_from_messages reads it).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PATH_ENV = "RLOOP_TERMINATION_MESSAGE_PATH"
MESSAGE_LIMIT_BYTES = 4096
# What rloop_operator.stage_reports reads into the status.
STATUS_KEYS = ("rollouts", "hard_prompts", "kept_samples", "sets", "score")
SET_KEYS = ("avg@n", "samples", "pass@k")


def _encoded(report: Mapping[str, Any]) -> bytes:
    return json.dumps(report, separators=(",", ":")).encode()


def status_form(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report cut to the keys the run's status shows."""
    kept: dict[str, Any] = {key: report[key] for key in STATUS_KEYS if key in report}
    if isinstance(kept.get("sets"), Mapping):
        kept["sets"] = {
            name: {key: figures[key] for key in SET_KEYS if key in figures}
            for name, figures in kept["sets"].items()
        }
    return kept


def fitted(report: Mapping[str, Any], limit: int = MESSAGE_LIMIT_BYTES) -> bytes:
    """The report as compact JSON within `limit` bytes: whole, in its status form, or in
    its status form without the last validation sets (named under "omitted")."""
    whole = _encoded(report)
    if len(whole) <= limit:
        return whole
    compact = status_form(report)
    sets = dict(compact.get("sets") or {})
    omitted: list[str] = []
    while True:
        message = _encoded({**compact, "sets": sets, "omitted": omitted} if omitted else compact)
        if len(message) <= limit or not sets:
            return message
        name = next(reversed(sets))
        del sets[name]
        omitted.insert(0, name)


def write_report(report: Mapping[str, object], env: Mapping[str, str] | None = None) -> bool:
    """Write `report`, fitted to the limit, to the termination-message file; True if written."""
    message = fitted(report)
    if len(message) > MESSAGE_LIMIT_BYTES:
        log.warning("even the status form of the report is over %d bytes", MESSAGE_LIMIT_BYTES)
        return False
    return _write(message, env)


def failure_message(error: str, reason: str, permanent: bool) -> bytes:
    """The failure as compact JSON within the limit; a long `error` is cut, not dropped."""

    def encoded(text: str) -> bytes:
        failure = {"error": text, "reason": reason, "permanent": permanent}
        return json.dumps(failure, separators=(",", ":")).encode()

    if len(encoded(error)) <= MESSAGE_LIMIT_BYTES:
        return encoded(error)
    # The longest start of `error` that fits with an ellipsis (escapes vary in length).
    low, high = 0, len(error)
    while low < high:
        middle = (low + high + 1) // 2
        if len(encoded(error[:middle] + "…")) <= MESSAGE_LIMIT_BYTES:
            low = middle
        else:
            high = middle - 1
    return encoded(error[:low] + "…")


def write_failure(
    error: str, reason: str, permanent: bool, env: Mapping[str, str] | None = None
) -> bool:
    """Leave the trainer's own one-line error as the termination message; True if written."""
    return _write(failure_message(error, reason, permanent), env)


def _write(message: bytes, env: Mapping[str, str] | None) -> bool:
    path = (os.environ if env is None else env).get(PATH_ENV)
    if not path:
        return False
    try:
        Path(path).write_bytes(message)
    except OSError as exc:
        log.warning("cannot write the termination message to %s: %s", path, exc)
        return False
    return True
