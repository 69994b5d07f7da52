"""What a phase container leaves in its termination message, for the operator.

Kubernetes copies up to 4,096 bytes that a container writes to its
termination-message file into the pod's status. The operator reads it there with
pod access alone: no store credentials, and it works for a file:// store on a
volume the operator does not mount. The operator's manifests and the local executor
set RLOOP_TERMINATION_MESSAGE_PATH; elsewhere nothing is written. Two kinds of
message, both compact JSON objects:

    a report    a finished filter or eval phase's report.json (written by the phase);
                one that does not fit, or cannot be written, is left out and the
                operator reads the store instead: the output is complete without it.
    a failure   {"error": "<the trainer's one-line message>", "reason": "InvalidInput",
                 "permanent": true}: why the phase stopped, and whether a retry can
                succeed. torchrun turns a worker's exit code into its own, so this is
                what carries the distinction to the executor and the operator
                (rloop_operator.reports.failure_from_messages reads it).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

PATH_ENV = "RLOOP_TERMINATION_MESSAGE_PATH"
MESSAGE_LIMIT_BYTES = 4096


def write_report(report: Mapping[str, object], env: Mapping[str, str] | None = None) -> bool:
    """Write `report` as compact JSON to the termination-message file; True if written."""
    message = json.dumps(report, separators=(",", ":")).encode()
    if len(message) > MESSAGE_LIMIT_BYTES:
        log.warning(
            "report is %d bytes, over the %d-byte termination message: the operator will "
            "read it from the store",
            len(message),
            MESSAGE_LIMIT_BYTES,
        )
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
