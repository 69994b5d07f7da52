"""kopf wiring, thin: every event of a run or of one of its children reconciles the run.

Started as `kopf run --standalone -m rloop_operator.handlers --all-namespaces`
(or `--namespace=NS` per watched namespace). Only `on.event` handlers are used:
they need no finalizers and store nothing on the objects, so the state is the
run's status and its children alone, and a restart changes nothing. Reconciles
of one run are serialised by a lock; different runs proceed concurrently.

Children are watched with one handler per registered launcher, filtered by the API
server (label rloop.io/run present), so the operator never receives every Job of the
cluster. A kind whose CRD is not installed (e.g. no PyTorchJob on a Trainer-v2-only
cluster) is not served: kopf logs it as unresolved and starts its watch if the CRD
appears later; runs that need it are Blocked with a condition saying what to install.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from rloop_operator import metrics
from rloop_operator.api import GROUP, KIND, PLURAL, VERSION
from rloop_operator.children import LABEL_RUN
from rloop_operator.kube import Kube, refusal_of
from rloop_operator.launchers import LAUNCHERS
from rloop_operator.reconcile import OperatorSettings, Reconciler

log = logging.getLogger("rloop_operator")

RunKey = tuple[str, str]
# API calls run in threads; enough of them that many runs reconcile side by side.
API_THREADS = 32
_state: dict[str, Reconciler] = {}
_locks: dict[RunKey, asyncio.Lock] = {}
_queued: set[RunKey] = set()
_wakeups: dict[RunKey, asyncio.TimerHandle] = {}


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, **_: Any) -> None:
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(API_THREADS))
    operator_settings = OperatorSettings.from_env()
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    _state["reconciler"] = Reconciler(Kube(client.ApiClient()), operator_settings)
    settings.posting.level = logging.WARNING
    for launcher in LAUNCHERS:
        resource = launcher.resource
        settings.watching.label_selectors[resource.group, resource.version, resource.plural] = (
            LABEL_RUN
        )
    metrics.serve(operator_settings.metrics_port)
    log.info("rloop-operator started; metrics on :%d", operator_settings.metrics_port)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def run_changed(event: kopf.RawEvent, name: str, namespace: str | None, **_: Any) -> None:
    assert namespace is not None  # RLoopRun is namespaced
    if event["type"] == "DELETED":
        metrics.observe_phase(namespace, name, None)
        _cancel_wakeup((namespace, name))
        return
    await reconcile(namespace, name)


async def child_changed(body: kopf.Body, namespace: str | None, **_: Any) -> None:
    assert namespace is not None
    for owner in body.metadata.get("ownerReferences", []):
        if owner.get("kind") == KIND and owner.get("apiVersion", "").startswith(f"{GROUP}/"):
            await reconcile(namespace, owner["name"])


for _launcher in LAUNCHERS:
    kopf.on.event(
        _launcher.resource.group,
        _launcher.resource.version,
        _launcher.resource.plural,
        labels={LABEL_RUN: kopf.PRESENT},
    )(child_changed)


async def reconcile(namespace: str, name: str) -> None:
    key = (namespace, name)
    # One reconcile waiting behind the running one is enough: it reads the run and its
    # children afresh when it starts, so it sees every event that queued it.
    if key in _queued:
        return
    _queued.add(key)
    lock = _locks.setdefault(key, asyncio.Lock())
    async with lock:
        _queued.discard(key)
        try:
            delay = await asyncio.to_thread(_state["reconciler"].reconcile, namespace, name)
        except ApiException as exc:
            # 409: someone wrote the run between our read and our patch; read again.
            delay = 1.0 if exc.status == 409 else 10.0
            metrics.RECONCILE_ERRORS.labels(kind=f"api{exc.status}").inc()
            log.warning(
                "reconcile %s/%s: API error %s %s: %s",
                namespace,
                name,
                exc.status,
                exc.reason,
                refusal_of(exc).message,
            )
        except Exception:
            delay = 10.0
            metrics.RECONCILE_ERRORS.labels(kind="exception").inc()
            log.exception("reconcile %s/%s failed", namespace, name)
    if delay is None:
        _cancel_wakeup(key)
    else:
        _schedule_wakeup(key, delay)


def _schedule_wakeup(key: RunKey, delay: float) -> None:
    _cancel_wakeup(key)
    loop = asyncio.get_running_loop()
    _wakeups[key] = loop.call_later(max(delay, 0.1), lambda: loop.create_task(reconcile(*key)))


def _cancel_wakeup(key: RunKey) -> None:
    handle = _wakeups.pop(key, None)
    if handle is not None:
        handle.cancel()
