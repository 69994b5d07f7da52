"""What a namespace's pods were over a test: snapshots taken while the test waits, to check
afterwards which pods ran side by side and where (pods of a finished child may be gone)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from tests.cluster.fullcluster import FullCluster

SNAPSHOT_S = 0.2


class PodHistory:
    """Snapshots of a namespace's pods, (time.monotonic(), pods), taken every SNAPSHOT_S
    seconds until stopped."""

    def __init__(self, full: FullCluster, namespace: str) -> None:
        self.snapshots: list[tuple[float, list[dict[str, Any]]]] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._take, args=(full, namespace))

    def _take(self, full: FullCluster, namespace: str) -> None:
        while not self._stopped.wait(SNAPSHOT_S):
            self.snapshots.append((time.monotonic(), full.pods(namespace)))

    def __enter__(self) -> PodHistory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        self._thread.join()


def may_write(pod: dict[str, Any]) -> bool:
    return pod["status"].get("phase") not in ("Succeeded", "Failed")


def named(pods: list[dict[str, Any]], predicate: Callable[[dict[str, Any]], bool]) -> list[str]:
    return [pod["metadata"]["name"] for pod in pods if predicate(pod)]
