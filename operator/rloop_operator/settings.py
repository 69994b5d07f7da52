"""The operator's settings, from its environment (the chart sets them)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from rloop_operator.leader import LeaseSettings
from rloop_operator.manifests import ManifestSettings
from rloop_operator.planning.inputs import PlanSettings


def replica_identity(name: str) -> str:
    return f"{name}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class OperatorSettings:
    plan: PlanSettings = field(default_factory=PlanSettings)
    manifests: ManifestSettings = field(default_factory=ManifestSettings)
    metrics_port: int = 9090
    # Every call to the API server gives up after this long: a hung call fails the
    # reconcile (it is retried) instead of holding its run forever.
    api_timeout_seconds: float = 30.0
    # A reconcile running longer than this is stuck: /healthz fails, so the kubelet
    # restarts the operator.
    stuck_reconcile_seconds: float = 300.0
    # Namespaces whose children are watched; None: all (the chart's watchNamespaces).
    watch_namespaces: tuple[str, ...] | None = None
    # None: this replica acts alone (no Lease), as `kopf run` on a workstation does.
    lease: LeaseSettings | None = None
    # Names this replica in the Lease and in the events it posts: the pod's name (or the
    # host's), made unique as client-go does.
    identity: str = field(default_factory=lambda: replica_identity(socket.gethostname()))

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> OperatorSettings:
        defaults = cls()
        namespaces = [n for n in env.get("RLOOP_WATCH_NAMESPACES", "").split(",") if n]
        lease_name = env.get("RLOOP_LEASE_NAME")
        lease = None
        if lease_name:
            lease = LeaseSettings(namespace=env["RLOOP_LEASE_NAMESPACE"], name=lease_name)
        return cls(
            plan=PlanSettings(
                backoff_base_seconds=float(
                    env.get("RLOOP_RETRY_BACKOFF_SECONDS", defaults.plan.backoff_base_seconds)
                ),
            ),
            manifests=ManifestSettings(
                trainer_image=env.get("RLOOP_TRAINER_IMAGE", defaults.manifests.trainer_image)
            ),
            metrics_port=int(env.get("RLOOP_METRICS_PORT", defaults.metrics_port)),
            api_timeout_seconds=float(
                env.get("RLOOP_API_TIMEOUT_SECONDS", defaults.api_timeout_seconds)
            ),
            stuck_reconcile_seconds=float(
                env.get("RLOOP_STUCK_RECONCILE_SECONDS", defaults.stuck_reconcile_seconds)
            ),
            watch_namespaces=tuple(namespaces) or None,
            lease=lease,
            identity=replica_identity(env.get("POD_NAME") or socket.gethostname()),
        )
