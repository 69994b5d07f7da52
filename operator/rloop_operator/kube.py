"""The only module that talks to the Kubernetes API server."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from rloop_operator import prometheus
from rloop_operator.api import GROUP, KIND, PLURAL, VERSION
from rloop_operator.children import LABEL_RUN
from rloop_operator.kueue_workloads import WORKLOADS
from rloop_operator.launchers import LAUNCHERS, ApiResource, launcher_of_kind
from rloop_operator.planning.inputs import Refusal
from rloop_operator.pods import PodState, pod_state
from rloop_operator.pods import termination_messages as pod_messages

log = logging.getLogger(__name__)
T = TypeVar("T")
NOT_FOUND = 404
CONFLICT = 409


def counted(call: str, request: Callable[[], T], unless: int | None = None) -> T | None:
    """Make one request to the API server, counted by `call`; None when the server answers
    with status `unless` (404: the object or its kind is not there; 409: it exists)."""
    prometheus.API_REQUESTS.labels(call=call).inc()
    try:
        return request()
    except ApiException as exc:
        if unless is not None and exc.status == unless:
            return None
        raise


def _coordinates(resource: ApiResource, namespace: str) -> tuple[str, str, str, str]:
    """(group, version, namespace, plural): CustomObjectsApi serves built-in groups too."""
    return resource.group, resource.version, namespace, resource.plural


class ChildRefused(Exception):
    """The API server would not create a child (admission, quota, RBAC, a missing CRD)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(f"{refusal.code} {refusal.reason}: {refusal.message}")
        self.refusal = refusal


def refusal_of(exc: ApiException) -> Refusal:
    """The Status the API server answered with: its reason and message, which name the
    webhook, quota or permission that refused."""
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        body = {}
    status = body if isinstance(body, dict) else {}
    return Refusal(
        code=int(exc.status or 0),
        reason=str(status.get("reason") or exc.reason or ""),
        message=str(status.get("message") or exc.body or ""),
    )


class Kube:
    """Every call gives up after `timeout` seconds (urllib3 raises): a hung call fails
    its reconcile, which is retried, instead of holding the run forever. `identity`
    names this replica in the events it posts."""

    def __init__(
        self, api_client: client.ApiClient, timeout: float = 30.0, identity: str = "rloop-operator"
    ) -> None:
        self.api_client = api_client
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.timeout = timeout
        self.identity = identity

    def get_run(self, namespace: str, name: str) -> dict[str, Any] | None:
        run = counted(
            "get_run",
            lambda: self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=self.timeout
            ),
            unless=NOT_FOUND,
        )
        return cast(dict[str, Any] | None, run)

    def list_children(
        self, namespace: str, run_name: str, run_uid: str
    ) -> tuple[list[dict[str, Any]], frozenset[str]]:
        """Children of every registered kind labelled for the run and owned by this
        incarnation of it, and the kinds the cluster does not serve (no CRD)."""
        children: list[dict[str, Any]] = []
        unserved: set[str] = set()
        for launcher in LAUNCHERS:
            listing = counted(
                "list_children",
                partial(
                    self.custom.list_namespaced_custom_object,
                    *_coordinates(launcher.resource, namespace),
                    label_selector=f"{LABEL_RUN}={run_name}",
                    _request_timeout=self.timeout,
                ),
                unless=NOT_FOUND,
            )
            if listing is None:
                unserved.add(launcher.kind)
                continue
            for item in cast(dict[str, Any], listing)["items"]:
                # Items of built-in lists carry no kind.
                item["kind"] = launcher.kind
                children.append(item)
        owned = [
            obj
            for obj in children
            if any(ref.get("uid") == run_uid for ref in obj["metadata"].get("ownerReferences", []))
        ]
        return owned, frozenset(unserved)

    def create_child(self, manifest: dict[str, Any]) -> bool:
        """Create a child; False when it already exists (a 409 is never a second child).
        Raises ChildRefused with the API's answer to any other error status."""
        launcher = launcher_of_kind(manifest["kind"])
        assert launcher is not None, manifest["kind"]
        namespace = manifest["metadata"]["namespace"]
        try:
            created = counted(
                "create_child",
                lambda: self.custom.create_namespaced_custom_object(
                    *_coordinates(launcher.resource, namespace),
                    manifest,
                    _request_timeout=self.timeout,
                ),
                unless=CONFLICT,
            )
        except ApiException as exc:
            raise ChildRefused(refusal_of(exc)) from exc
        return created is not None

    def delete_child(self, kind: str, namespace: str, name: str) -> None:
        launcher = launcher_of_kind(kind)
        assert launcher is not None, kind
        body = client.V1DeleteOptions(propagation_policy="Background")
        counted(
            "delete_child",
            lambda: self.custom.delete_namespaced_custom_object(
                *_coordinates(launcher.resource, namespace),
                name,
                body=body,
                _request_timeout=self.timeout,
            ),
            unless=NOT_FOUND,
        )

    def object_exists(self, resource: ApiResource, namespace: str, name: str) -> bool:
        """Whether the object exists; a kind the cluster does not serve has none."""

        def get() -> object:
            if resource.namespaced:
                return self.custom.get_namespaced_custom_object(
                    *_coordinates(resource, namespace), name, _request_timeout=self.timeout
                )
            return self.custom.get_cluster_custom_object(
                resource.group, resource.version, resource.plural, name,
                _request_timeout=self.timeout,
            )  # fmt: skip

        return counted("object_exists", get, unless=NOT_FOUND) is not None

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch the status subresource; None values remove fields."""
        counted(
            "patch_status",
            lambda: self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, {"status": status},
                _request_timeout=self.timeout,
            ),
        )  # fmt: skip

    def list_pods(self, namespace: str, pod_selector: str) -> list[PodState]:
        """The pods `pod_selector` selects (a launcher's selector of one child's pods)."""
        answer: Any = counted(
            "list_pods",
            lambda: self.core.list_namespaced_pod(
                namespace,
                label_selector=pod_selector,
                _request_timeout=self.timeout,
                _preload_content=False,  # plain JSON for pods.pod_state, not client models
            ),
        )
        return [pod_state(pod) for pod in json.loads(answer.data)["items"]]

    def list_workloads(self, namespace: str) -> list[dict[str, Any]]:
        """Kueue's Workloads in `namespace`; none when Kueue is not installed."""
        listing = counted(
            "list_workloads",
            partial(
                self.custom.list_namespaced_custom_object,
                *_coordinates(WORKLOADS, namespace),
                _request_timeout=self.timeout,
            ),
            unless=NOT_FOUND,
        )
        return [] if listing is None else list(cast(dict[str, Any], listing)["items"])

    def termination_messages(self, namespace: str, pod_selector: str) -> list[str]:
        """Messages of the containers that exited 0 in the pods `pod_selector` selects."""
        return pod_messages(self.list_pods(namespace, pod_selector), succeeded=True)

    def claim_exists(self, namespace: str, name: str) -> bool:
        claim = counted(
            "claim_exists",
            lambda: self.core.read_namespaced_persistent_volume_claim(
                name, namespace, _request_timeout=self.timeout
            ),
            unless=NOT_FOUND,
        )
        return claim is not None

    def emit_event(self, run: dict[str, Any], type_: str, reason: str, message: str) -> None:
        metadata = run["metadata"]
        now = datetime.now(UTC)
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(
                generate_name=f"{metadata['name']}.", namespace=metadata["namespace"]
            ),
            involved_object=client.V1ObjectReference(
                api_version=f"{GROUP}/{VERSION}",
                kind=KIND,
                name=metadata["name"],
                namespace=metadata["namespace"],
                uid=metadata["uid"],
            ),
            type=type_,
            reason=reason,
            message=message[:1024],
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=client.V1EventSource(component="rloop-operator"),
            reporting_component="rloop-operator",
            reporting_instance=self.identity,
        )
        try:
            counted(
                "emit_event",
                lambda: self.core.create_namespaced_event(
                    metadata["namespace"], event, _request_timeout=self.timeout
                ),
            )
        except ApiException as exc:
            # Events are best-effort: losing one must not stop a transition.
            log.warning("event %s for %s not posted: %s", reason, metadata["name"], exc.reason)
