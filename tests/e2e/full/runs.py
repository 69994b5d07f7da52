"""Runs on the full-mode cluster: their manifests, and reading them back."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.cluster.fullcluster import FullCluster
from tests.e2e.helpers import eventually

RL_MASTER = "training.kubeflow.org/replica-type=master"
PYTORCHJOBS = "pytorchjobs.kubeflow.org"
TRAINJOBS = "trainjobs.trainer.kubeflow.org"


def run_manifest(name: str, **overrides: Any) -> dict[str, Any]:
    """A run of 2 iterations whose DAPO and RFT phases span 2 nodes of 8 GPUs; the store
    is never reached (kwok runs no containers)."""
    spec: dict[str, Any] = {
        "model": {"base": "s3://rloop/models/base"},
        "data": {
            "train": "s3://rloop/data/train.parquet",
            "validation": [
                {
                    "name": "heldout",
                    "uri": "s3://rloop/data/heldout.parquet",
                    "samples": 8,
                    "passAt": [1, 8],
                }
            ],
        },
        "iterations": 2,
        "dapo": {"steps": 4},
        "storage": {"uri": "s3://rloop/runs", "endpoint": "http://seaweedfs.storage:8333"},
        "resources": {"nodes": 2, "gpusPerNode": 8},
        "maxRetries": 1,
    }
    for key, value in overrides.items():
        spec[key] = {**spec[key], **value} if isinstance(value, dict) else value
    return {"apiVersion": "rloop.io/v1alpha1", "kind": "RLoopRun",
            "metadata": {"name": name}, "spec": spec}  # fmt: skip


def one_iteration(name: str, **overrides: Any) -> dict[str, Any]:
    """A run of one iteration with no retry and no validation sets: DAPO's 2-node child
    comes first."""
    run = run_manifest(name, iterations=1, maxRetries=0, **overrides)
    run["spec"]["data"].pop("validation")
    return run


def apply_run(full: FullCluster, namespace: str, run: dict[str, Any]) -> None:
    full.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(run))


def get(full: FullCluster, namespace: str, resource: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(
        full.kubectl("get", resource, name, "-n", namespace, "-o", "json")
    )
    return obj


def names(full: FullCluster, namespace: str, resource: str) -> list[str]:
    listed = json.loads(full.kubectl("get", resource, "-n", namespace, "-o", "json"))
    return sorted(item["metadata"]["name"] for item in listed["items"])


def status(full: FullCluster, namespace: str, run: str) -> dict[str, Any]:
    found: dict[str, Any] = get(full, namespace, "rlooprun", run).get("status") or {}
    return found


def condition(found: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in found.get("conditions") or [] if c["type"] == kind), {})


def disruption_recorded(kind: str) -> Callable[[dict[str, Any]], bool]:
    """A check of a run's status: a disruption of `kind` is in one of its iterations."""

    def check(found: dict[str, Any]) -> bool:
        return any(
            d["kind"] == kind
            for record in found.get("iterations", [])
            for d in record.get("disruptions", [])
        )

    return check


def wait_for(
    full: FullCluster, namespace: str, run: str, what: str, check: Any, timeout_s: float = 120
) -> dict[str, Any]:
    """The run's status once `check(status)` holds."""

    def reached() -> dict[str, Any] | None:
        full.check_alive()
        found = status(full, namespace, run)
        return found if check(found) else None

    found = eventually(reached, timeout_s, f"{namespace}/{run}: {what}")
    assert found is not None
    return found


def wait_for_phase(
    full: FullCluster, namespace: str, run: str, phase: str, timeout_s: float = 240
) -> dict[str, Any]:
    return wait_for(
        full, namespace, run, f"phase {phase}", lambda s: s.get("phase") == phase, timeout_s
    )


def not_progressing(
    full: FullCluster, namespace: str, run: str, reason: str, timeout_s: float = 60
) -> dict[str, Any]:
    """The Progressing condition once it is False with `reason`."""

    def stalled(found: dict[str, Any]) -> bool:
        progressing = condition(found, "Progressing")
        return (progressing.get("status"), progressing.get("reason")) == ("False", reason)

    found = wait_for(full, namespace, run, f"Progressing False {reason}", stalled, timeout_s)
    return condition(found, "Progressing")
