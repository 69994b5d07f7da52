"""batch/v1 Job: the single-pod filter and evaluation phases.

Conditions follow kube-controller-manager: Complete or Failed True ends the Job;
Suspended True while Kueue holds it; `status.active` counts its live pods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rloop_operator.launchers.base import (
    ApiResource,
    ChildStatus,
    Launcher,
    LaunchRequest,
    status_from_conditions,
)


class BatchJobLauncher(Launcher):
    resource = ApiResource("batch", "v1", "jobs", "Job")
    # The Job controller names its pod <job>-<5 random characters>.
    longest_derived_suffix = "-abcde"
    install_hint = "batch/v1 Jobs are part of every Kubernetes cluster"

    def manifest(self, request: LaunchRequest) -> dict[str, Any]:
        spec = {"backoffLimit": 0, "template": request.pod.template()}
        return self._object(request, spec)

    def status(self, status: Mapping[str, Any]) -> ChildStatus:
        return status_from_conditions(status, "Complete", bool(status.get("active")))

    def pod_selector(self, name: str) -> str:
        return f"batch.kubernetes.io/job-name={name}"
