"""A phase's report as its container's termination message, for the operator.

Kubernetes copies up to 4,096 bytes that a container writes to its
termination-message file into the pod's status. The operator reads it there with
pod access alone: no store credentials, and it works for a file:// store on a
volume the operator does not mount. The operator's manifests set
RLOOP_TERMINATION_MESSAGE_PATH; elsewhere (local runs, tests) nothing is written.
A report that does not fit, or cannot be written, is left out and the operator reads
the store instead: the phase's output is complete without it.
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
    path = (os.environ if env is None else env).get(PATH_ENV)
    if not path:
        return False
    message = json.dumps(report, separators=(",", ":")).encode()
    if len(message) > MESSAGE_LIMIT_BYTES:
        log.warning(
            "report is %d bytes, over the %d-byte termination message: the operator will "
            "read it from the store",
            len(message),
            MESSAGE_LIMIT_BYTES,
        )
        return False
    try:
        Path(path).write_bytes(message)
    except OSError as exc:
        log.warning("cannot write the termination message to %s: %s", path, exc)
        return False
    return True
