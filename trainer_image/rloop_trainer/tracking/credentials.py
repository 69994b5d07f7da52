"""The trackers' credentials: the Secrets spec.tracking.credentialsSecrets names, mounted in
the phase pod as one directory with a file per key (RLOOP_TRACKING_CREDENTIALS names it).

A mounted Secret, not envFrom: a TrainJob's trainer and its runtime patches take env but no
envFrom (Kubeflow Trainer v2.2 and v2.3), and every launcher carries volumes. Each key
becomes an environment variable unless the pod already sets it (as envFrom would: the
store's AWS_* settings of the operator win).
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from pathlib import Path

from rloop_contract.tracking import CREDENTIALS_DIR_ENV

log = logging.getLogger(__name__)


def load_credentials(environ: MutableMapping[str, str] = os.environ) -> list[str]:
    """Set each key of the mounted Secrets as a variable of `environ`; the names set."""
    directory = environ.get(CREDENTIALS_DIR_ENV)
    if not directory:
        return []
    # The kubelet keeps a projected volume's files behind ..data links: skip dot-names.
    files = sorted(p for p in Path(directory).iterdir() if not p.name.startswith("."))
    kept = [path.name for path in files if path.name in environ]
    if kept:
        log.warning("tracker credentials %s are set by the pod already; its values stay", kept)
    added = [path for path in files if path.name not in environ and path.is_file()]
    for path in added:
        environ[path.name] = path.read_text().strip()
    return [path.name for path in added]
