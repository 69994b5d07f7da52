"""The operator's clock, a seam of its own.

Kept apart from `reconcile.py` so that `local_executor.py` (`rloop run`) can share it
without importing the Kubernetes client.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
