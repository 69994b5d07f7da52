"""Watches of the runs' children, kept outside kopf so a CRD that goes away stops nothing.

kopf stops the whole operator when the CRD of a kind it watches is deleted while it
watches: its watcher lists again, gets 404 before its CRD observer has cancelled it,
and the watcher's failure ends the orchestrator (kopf says as much in
kopf/_core/reactor/observation.py). A cluster may uninstall or upgrade the training
operator or Kubeflow Trainer at any time, so each launcher's kind is listed and watched
here instead, one thread per kind (and per namespace when the operator watches a list
of them), with the server-side label selector rloop.io/run: the API server sends only
the runs' children, never every Job of the cluster. A 404 means the kind is not served
now; the watch asks again every UNSERVED_RETRY_SECONDS, and the runs that need the kind
are Blocked by their own reconcile (LauncherNotInstalled) until it is back, when the
watch has every run looked at again (`on_served`).

The phase pods are watched the same way (PODS; they carry the rloop.io/run label of their
run, while their ownerReferences name the Job, PyTorchJob or JobSet): a pod that cannot
start, or that the trainer stopped on a permanent error while its controller would replace
it in place, changes nothing on the child itself.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from rloop_operator.api import GROUP, KIND
from rloop_operator.api_outage import outage
from rloop_operator.children import LABEL_RUN
from rloop_operator.launchers import ApiResource

log = logging.getLogger(__name__)

RunKey = tuple[str, str]  # (namespace, name)
# Called from the watch thread for each run whose child changed.
OnChange = Callable[[RunKey], None]
WATCH_SECONDS = 300  # one watch request; then it is renewed from the last resourceVersion
UNSERVED_RETRY_SECONDS = 10.0
ERROR_RETRY_SECONDS = 2.0
GONE = 410
PODS = ApiResource("", "v1", "pods", "Pod")


def owning_runs(obj: Mapping[str, Any]) -> list[RunKey]:
    """The runs this child or phase pod belongs to: its owning runs by ownerReferences,
    else the run its rloop.io/run label names (a pod's owner is its controller's object)."""
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace", "")
    owners = [
        (namespace, ref["name"])
        for ref in metadata.get("ownerReferences") or []
        if ref.get("kind") == KIND and str(ref.get("apiVersion", "")).startswith(f"{GROUP}/")
    ]
    labelled = (metadata.get("labels") or {}).get(LABEL_RUN)
    return owners or ([(namespace, labelled)] if labelled else [])


class ChildWatch(threading.Thread):
    """List, then watch, one kind of child (or the phase pods) in one namespace (None: all
    of them)."""

    def __init__(
        self,
        api: client.ApiClient,
        resource: ApiResource,
        namespace: str | None,
        on_change: OnChange,
        on_served: Callable[[], None],
        request_timeout: float,
        on_object: Callable[[Mapping[str, Any]], None] | None = None,
    ) -> None:
        where = namespace or "all namespaces"
        super().__init__(name=f"watch {resource.plural} in {where}", daemon=True)
        self.api = api
        self.resource = resource
        self.namespace = namespace
        self.on_change = on_change
        self.on_served = on_served
        # Sees every object listed or watched, before its runs are told (DisruptedPods).
        self.on_object = on_object
        self.timeout = request_timeout
        self.stopped = threading.Event()
        self._unserved = False

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self._watch(self._list())
            except ApiException as exc:
                self.stopped.wait(self._after(exc))
            except Exception as exc:  # the connection broke or timed out: start again
                if not outage.failed(self.name, exc):
                    log.debug("%s: %s", self.name, exc)
                self.stopped.wait(ERROR_RETRY_SECONDS)

    def _after(self, exc: ApiException) -> float:
        """Seconds to wait after an API error before listing again."""
        if exc.status == GONE:
            return 0.0
        if exc.status == 404:
            if not self._unserved:
                log.warning("%s: %s is not served (no CRD); asking again every %.0fs",
                            self.name, self.resource.kind, UNSERVED_RETRY_SECONDS)  # fmt: skip
            self._unserved = True
            return UNSERVED_RETRY_SECONDS
        if not outage.failed(self.name, exc):
            log.warning("%s: API error %s %s", self.name, exc.status, exc.reason)
        return ERROR_RETRY_SECONDS

    def _lister(self) -> tuple[Callable[..., Any], tuple[str, ...]]:
        r = self.resource
        if r == PODS:
            core = client.CoreV1Api(self.api)
            if self.namespace is None:
                return core.list_pod_for_all_namespaces, ()
            return core.list_namespaced_pod, (self.namespace,)
        custom = client.CustomObjectsApi(self.api)
        if self.namespace is None:
            return custom.list_cluster_custom_object, (r.group, r.version, r.plural)
        return custom.list_namespaced_custom_object, (
            r.group, r.version, self.namespace, r.plural,
        )  # fmt: skip

    def _list(self) -> str:
        """Every child's runs are told, since events may have been missed; returns the
        list's resourceVersion to watch from."""
        lister, args = self._lister()
        # As JSON, for pods too: the typed client's models cost more than the watch needs.
        response = lister(
            *args, label_selector=LABEL_RUN, _request_timeout=self.timeout, _preload_content=False
        )
        listing = cast(dict[str, Any], json.loads(response.data))
        outage.answered()
        if self._unserved:
            log.info("%s: %s is served again", self.name, self.resource.kind)
            self._unserved = False
            self.on_served()
        for item in listing["items"]:
            self._tell(item)
        return str(listing["metadata"]["resourceVersion"])

    def _watch(self, version: str) -> None:
        """Watch until the server ends a request, the version expires (410) or we stop."""
        lister, args = self._lister()
        while not self.stopped.is_set():
            events: Iterator[dict[str, Any]] = watch.Watch().stream(  # type: ignore[no-untyped-call]
                lister,
                *args,
                label_selector=LABEL_RUN,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=WATCH_SECONDS,
                _request_timeout=(self.timeout, WATCH_SECONDS + self.timeout),
            )
            for event in events:
                obj = event["raw_object"]  # the JSON object, also where a typed one is made
                version = obj["metadata"]["resourceVersion"]
                if event["type"] != "BOOKMARK":
                    self._tell(obj)
                if self.stopped.is_set():
                    return

    def _tell(self, obj: Mapping[str, Any]) -> None:
        if self.on_object is not None:
            self.on_object(obj)
        for run in owning_runs(obj):
            self.on_change(run)
