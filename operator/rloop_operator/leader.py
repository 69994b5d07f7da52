"""Leader election on a coordination.k8s.io Lease: of several operator replicas, one acts.

Why a Lease and not kopf's peering: peering needs two CRDs installed (KopfPeering,
ClusterKopfPeering), pauses every operator whose priority equals another's (replicas of
one Deployment all have the same), and takes a minute to notice a dead peer. A Lease is
built into Kubernetes, needs `get/create/update` on one object in the release's
namespace, and hands over within its duration. Why not kubernetes.leaderelection: its
API calls have no timeouts (a hung renew would keep a stale leader believing it leads)
and its loop cannot be stopped.

The rules are client-go's: a candidate takes the Lease when it is free or when its
record has not changed for the record's leaseDurationSeconds, measured on the
candidate's own clock from when it saw the change (no clock skew between replicas). A
leader counts itself leader only until `renew_deadline` after its last successful renew
began, which is shorter than the lease duration: it stops acting before anyone else can
start. On shutdown it releases the Lease so a successor takes over at its next try.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from rloop_operator.api_outage import outage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str
    name: str
    duration_seconds: int = 15
    renew_deadline_seconds: float = 10.0
    retry_seconds: float = 2.0


@dataclass(frozen=True)
class Holding:
    """What a Lease says about who holds it (the parts the election compares)."""

    holder: str
    renew_time: datetime | None
    duration_seconds: int


def may_take(holding: Holding | None, identity: str, unchanged_for: float, leading: bool) -> bool:
    """Whether `identity` may write itself into the Lease: it is free, ours, or its record
    has not changed for longer than its duration (so its holder is presumed dead)."""
    if holding is None or not holding.holder or holding.holder == identity or leading:
        return True
    return unchanged_for > holding.duration_seconds


class LeaderElector(threading.Thread):
    """Keeps trying to hold the Lease; `leading()` says whether this replica may act."""

    def __init__(
        self,
        api: client.CoordinationV1Api,
        settings: LeaseSettings,
        identity: str,
        request_timeout: float,
        on_change: Callable[[bool], None],
    ) -> None:
        super().__init__(name="leader-election", daemon=True)
        self.api = api
        self.settings = settings
        self.identity = identity
        self.timeout = request_timeout
        self.on_change = on_change
        self.stopped = threading.Event()
        self._valid_until = 0.0  # time.monotonic() until which we lead
        self._observed: Holding | None = None
        self._observed_at = 0.0
        self._was_leading = False

    def leading(self) -> bool:
        return time.monotonic() < self._valid_until

    def run(self) -> None:
        while not self.stopped.is_set():
            started = time.monotonic()
            try:
                if self._try_hold(started):
                    self._valid_until = started + self.settings.renew_deadline_seconds
                outage.answered()
            except Exception as exc:  # an API or network error: try again, never die
                if not outage.failed(f"lease {self.settings.name}", exc):
                    log.warning("lease %s: %s", self.settings.name, exc)
            self._announce()
            self.stopped.wait(self.settings.retry_seconds)
        self._release()

    def _announce(self) -> None:
        leading = self.leading()
        if leading != self._was_leading:
            self._was_leading = leading
            log.info("%s %s the lead", self.identity, "took" if leading else "lost")
            self.on_change(leading)

    def _try_hold(self, started: float) -> bool:
        namespace, name = self.settings.namespace, self.settings.name
        try:
            lease = self.api.read_namespaced_lease(name, namespace, _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.api.create_namespaced_lease(
                namespace, self._lease(None), _request_timeout=self.timeout
            )
            return True
        holding = _holding(lease)
        if holding != self._observed:
            self._observed, self._observed_at = holding, started
        if not may_take(holding, self.identity, started - self._observed_at, self.leading()):
            return False
        lease.spec = self._lease(lease.spec).spec
        try:
            # replace carries the resourceVersion read: a competing write makes it 409.
            self.api.replace_namespaced_lease(name, namespace, lease, _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def _lease(self, current: client.V1LeaseSpec | None) -> client.V1Lease:
        now = datetime.now(UTC)
        mine = current is not None and current.holder_identity == self.identity
        spec = client.V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=self.settings.duration_seconds,
            acquire_time=current.acquire_time if mine and current else now,
            renew_time=now,
            lease_transitions=(current.lease_transitions or 0) + (0 if mine else 1)
            if current
            else 0,
        )
        return client.V1Lease(metadata=client.V1ObjectMeta(name=self.settings.name), spec=spec)

    def _release(self) -> None:
        """Give the Lease up at shutdown, so a successor need not wait for it to expire."""
        if not self.leading():
            return
        self._valid_until = 0.0
        try:
            lease = self.api.read_namespaced_lease(
                self.settings.name, self.settings.namespace, _request_timeout=self.timeout
            )
            if lease.spec and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                lease.spec.lease_duration_seconds = 1
                lease.spec.renew_time = datetime.now(UTC)
                self.api.replace_namespaced_lease(
                    self.settings.name,
                    self.settings.namespace,
                    lease,
                    _request_timeout=self.timeout,
                )
        except Exception as exc:  # shutting down: the Lease expires anyway
            log.warning("lease %s not released: %s", self.settings.name, exc)


def _holding(lease: client.V1Lease) -> Holding | None:
    spec = lease.spec
    if spec is None:
        return None
    return Holding(
        holder=spec.holder_identity or "",
        renew_time=spec.renew_time,
        duration_seconds=int(spec.lease_duration_seconds or 0),
    )
