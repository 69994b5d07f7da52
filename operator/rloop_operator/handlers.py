"""kopf wiring, thin: every event of a run or of one of its children reconciles the run.

Started as `kopf run --standalone -m rloop_operator.handlers --all-namespaces`
(or `--namespace=NS` per watched namespace, with RLOOP_WATCH_NAMESPACES=NS,...). kopf
watches the runs with `on.event` handlers only: they need no finalizers and store
nothing on the objects, so the state is the run's status and its children alone, and a
restart changes nothing. The children and their pods are watched by child_watch.py,
outside kopf, with a server-side label selector. Reconciles of one run are serialised by a
lock; different runs proceed concurrently.

With RLOOP_LEASE_NAME set (the chart sets it), replicas elect a leader on a Lease and
only the leader reconciles; a replica that takes the lead reconciles every run it knows.
`/healthz` fails while a reconcile has been running for longer than
RLOOP_STUCK_RECONCILE_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import kopf
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from rloop_operator import prometheus
from rloop_operator.api import GROUP, PLURAL, VERSION
from rloop_operator.api_outage import outage, quiet_retries_during_outages
from rloop_operator.child_watch import PODS, ChildWatch, RunKey
from rloop_operator.disrupted_pods import DisruptedPods
from rloop_operator.kube import Kube, refusal_of
from rloop_operator.launchers import LAUNCHERS
from rloop_operator.leader import LeaderElector
from rloop_operator.liveness import stuck_reconciles
from rloop_operator.reconcile import Reconciler
from rloop_operator.settings import OperatorSettings

log = logging.getLogger("rloop_operator")

# API calls run in threads; enough of them that many runs reconcile side by side.
API_THREADS = 32
CONNECT_TIMEOUT_SECONDS = 10.0
_state: dict[str, Any] = {}
_locks: dict[RunKey, asyncio.Lock] = {}
_queued: set[RunKey] = set()
_wakeups: dict[RunKey, asyncio.TimerHandle] = {}
_known: set[RunKey] = set()  # every run kopf has shown us, leader or not
_in_flight: dict[RunKey, float] = {}  # time.monotonic() when its reconcile began
_tasks: set[asyncio.Task[None]] = set()
T = TypeVar("T")


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, **_: Any) -> None:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(API_THREADS))
    operator = OperatorSettings.from_env()
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    _bound_kopf_requests(settings, operator.api_timeout_seconds)
    quiet_retries_during_outages()
    api = client.ApiClient()
    kube = Kube(api, operator.api_timeout_seconds, operator.identity)
    disrupted = DisruptedPods()
    _state.update(
        reconciler=Reconciler(kube, operator, disrupted=disrupted), settings=operator, loop=loop
    )
    if operator.lease is not None:
        elector = LeaderElector(
            client.CoordinationV1Api(api),
            operator.lease,
            operator.identity,
            operator.api_timeout_seconds,
            lambda leading: _call_in_loop(loop, _look_at_every_run, leading),
        )
        _state["elector"] = elector
        elector.start()
    _state["watches"] = [
        ChildWatch(
            api,
            resource,
            namespace,
            _child_changed,
            lambda: _call_in_loop(loop, _look_at_every_run, True),
            operator.api_timeout_seconds,
            disrupted.remember if resource == PODS else None,
        )
        for resource in (*(launcher.resource for launcher in LAUNCHERS), PODS)
        for namespace in operator.watch_namespaces or (None,)
    ]
    for watch in _state["watches"]:
        watch.start()
    prometheus.serve(operator.metrics_port)
    log.info("rloop-operator %s started; metrics on :%d", operator.identity, operator.metrics_port)


def _bound_kopf_requests(settings: kopf.OperatorSettings, timeout: float) -> None:
    """kopf's own calls (watching runs, posting its events) get timeouts too."""
    settings.posting.level = logging.WARNING
    settings.networking.request_timeout = timeout
    settings.networking.connect_timeout = CONNECT_TIMEOUT_SECONDS
    settings.watching.connect_timeout = CONNECT_TIMEOUT_SECONDS
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 300 + timeout


@kopf.on.cleanup()
async def stop(**_: Any) -> None:
    for watch in _state.get("watches", []):
        watch.stopped.set()
    elector: LeaderElector | None = _state.get("elector")
    if elector is not None:
        elector.stopped.set()
        # It releases the Lease on its way out, so a successor takes over at once.
        await asyncio.to_thread(elector.join, 10.0)


@kopf.on.probe(id="reconciles")
def reconciles_are_not_stuck(**_: Any) -> str:
    settings: OperatorSettings = _state["settings"]
    stuck = stuck_reconciles(_in_flight, time.monotonic(), settings.stuck_reconcile_seconds)
    if stuck:
        # Permanent: kopf retries a failing probe until it passes, and /healthz would hang.
        raise kopf.PermanentError("; ".join(stuck))
    return f"{len(_in_flight)} in flight"


@kopf.on.event(GROUP, VERSION, PLURAL)
async def run_changed(event: kopf.RawEvent, name: str, namespace: str | None, **_: Any) -> None:
    assert namespace is not None  # RLoopRun is namespaced
    key = (namespace, name)
    if event["type"] == "DELETED":
        _known.discard(key)
        prometheus.observe_phase(namespace, name, None)
        _cancel_wakeup(key)
        return
    _known.add(key)
    await reconcile(key)


def _call_in_loop(loop: asyncio.AbstractEventLoop, call: Callable[[T], None], arg: T) -> None:
    """From another thread (a watch, the leader election): run `call(arg)` in the loop."""
    loop.call_soon_threadsafe(call, arg)


def _child_changed(run: RunKey) -> None:
    """From a watch thread: reconcile the run in the event loop."""
    loop: asyncio.AbstractEventLoop = _state["loop"]
    _call_in_loop(loop, lambda key: _spawn(reconcile(key)), run)


def _spawn(coroutine: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(coroutine)
    _tasks.add(task)  # the loop keeps only weak references to tasks
    task.add_done_callback(_tasks.discard)


def _look_at_every_run(now: bool) -> None:
    """Reconcile every known run: when this replica takes the lead (it skipped their
    events), or when a kind of child is served again (runs Blocked on it go on)."""
    if now:
        for key in list(_known):
            _spawn(reconcile(key))


def _leading() -> bool:
    elector: LeaderElector | None = _state.get("elector")
    return elector is None or elector.leading()


async def reconcile(key: RunKey) -> None:
    # One reconcile waiting behind the running one is enough: it reads the run and its
    # children afresh when it starts, so it sees every event that queued it.
    if key in _queued or not _leading():
        return
    _queued.add(key)
    lock = _locks.setdefault(key, asyncio.Lock())
    async with lock:
        _queued.discard(key)
        if not _leading():
            return
        delay = await _reconcile_once(key)
    if delay is None:
        _cancel_wakeup(key)
    else:
        _schedule_wakeup(key, delay)


async def _reconcile_once(key: RunKey) -> float | None:
    _in_flight[key] = started = time.monotonic()
    try:
        delay: float | None = await asyncio.to_thread(_state["reconciler"].reconcile, *key)
    except ApiException as exc:
        prometheus.RECONCILE_ERRORS.labels(kind=f"api{exc.status}").inc()
        if not outage.failed("reconcile {}/{}".format(*key), exc):
            log.warning("reconcile %s/%s: API error %s %s: %s",
                        *key, exc.status, exc.reason, refusal_of(exc).message)  # fmt: skip
        # 409: someone wrote the run between our read and our patch; read again.
        return 1.0 if exc.status == 409 else 10.0
    except Exception as exc:
        if outage.failed("reconcile {}/{}".format(*key), exc):
            prometheus.RECONCILE_ERRORS.labels(kind="unreachable").inc()
        else:
            prometheus.RECONCILE_ERRORS.labels(kind="exception").inc()
            log.exception("reconcile %s/%s failed", *key)
        return 10.0
    finally:
        del _in_flight[key]
        prometheus.RECONCILE_SECONDS.observe(time.monotonic() - started)
    outage.answered()
    return delay


def _schedule_wakeup(key: RunKey, delay: float) -> None:
    _cancel_wakeup(key)
    loop = asyncio.get_running_loop()
    _wakeups[key] = loop.call_later(max(delay, 0.1), lambda: _spawn(reconcile(key)))


def _cancel_wakeup(key: RunKey) -> None:
    handle = _wakeups.pop(key, None)
    if handle is not None:
        handle.cancel()
