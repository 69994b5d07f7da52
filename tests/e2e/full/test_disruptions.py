"""Disruptions on the full-mode cluster: an attempt whose capacity Kubernetes or Kueue took
away resumes under its own name and is not a failure (maxRetries 0 proves it), and the run
says what happened: a record in its iteration, a count per stage, Progressing False
Preempted while it waits, a Warning event Preempted and the operator's metric.

The disrupted attempt's pods are kept running by kwok scripts named after them; the
scripts go once the disruption is recorded, while the old pods are still stopping, so the
attempt created again under the same names runs and succeeds like any other."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cluster import kueue
from tests.cluster.fullcluster import FullCluster
from tests.cluster.kwok import KeepRunning, SlowDeletion
from tests.e2e.full.pod_history import PodHistory, may_write, named
from tests.e2e.full.runs import (
    PYTORCHJOBS,
    apply_run,
    disruption_recorded,
    get,
    names,
    not_progressing,
    one_iteration,
    wait_for,
    wait_for_phase,
)
from tests.e2e.helpers import eventually
from tests.e2e.operator_process import OperatorProcess

pytestmark = [pytest.mark.cluster, pytest.mark.full]
POOL_LABEL = "rloop.io/test-pool"
JOB_NAME_LABEL = "training.kubeflow.org/job-name"  # on the pods of a PyTorchJob


def attempt_pods(full: FullCluster, namespace: str, child: str) -> list[dict[str, Any]]:
    return full.pods(namespace, f"{JOB_NAME_LABEL}={child}")


def running(full: FullCluster, namespace: str, child: str) -> dict[str, dict[str, Any]]:
    """{pod name: pod} once both pods of the 2-node `child` run."""

    def both() -> dict[str, dict[str, Any]] | None:
        full.check_alive()
        pods = attempt_pods(full, namespace, child)
        if len(pods) == 2 and all(pod["status"].get("phase") == "Running" for pod in pods):
            return {pod["metadata"]["name"]: pod for pod in pods}
        return None

    pods = eventually(both, 90, f"{namespace}/{child}: both pods Running")
    assert pods is not None
    return pods


def warnings(full: FullCluster, namespace: str, run: str, reason: str) -> list[str]:
    """The messages of the run's Warning events with `reason`, once there is one."""

    def posted() -> list[str]:
        return [
            event["message"]
            for event in full.events(namespace, run)
            if (event["type"], event["reason"]) == ("Warning", reason)
        ]

    return eventually(posted, 30, f"{namespace}/{run}: a Warning event {reason}")


def disruptions_counted(operator: OperatorProcess, kind: str) -> float:
    """The operator's rloop_disruptions_total for `kind` (0 before the first)."""
    for family in text_string_to_metric_families(operator.metrics()):
        for sample in family.samples:
            if sample.name == "rloop_disruptions_total" and sample.labels == {"kind": kind}:
                return float(sample.value)
    return 0.0


def uid(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["uid"])


def resumed_pods(history: PodHistory, first_attempt: dict[str, Any]) -> list[dict[str, Any]]:
    """The pods of the child created again after `first_attempt` (the child object first
    made under that name), as last seen; fails if one of them existed while a pod of the
    first attempt could still write."""
    name, first = first_attempt["metadata"]["name"], uid(first_attempt)
    later: dict[str, dict[str, Any]] = {}
    for _, pods in history.snapshots:
        ours = [p for p in pods if p["metadata"]["labels"].get(JOB_NAME_LABEL) == name]
        old = [p for p in ours if owner_uid(p) == first and may_write(p)]
        new = [p for p in ours if owner_uid(p) != first]
        assert not (old and new), f"{named(old, may_write)} still ran beside the next attempt"
        later.update((uid(p), p) for p in new)
    return list(later.values())


def owner_uid(pod: dict[str, Any]) -> str:
    return str(pod["metadata"]["ownerReferences"][0]["uid"])


def test_an_evicted_phase_pod_resumes_its_attempt_under_its_name_without_consuming_a_retry(
    full_cluster: FullCluster, full_operator: OperatorProcess, namespace: str
) -> None:
    # The evicted worker is gone at once (the training operator even replaces it); the
    # master takes 8 s to stop once its attempt is deleted, long enough to lift the scripts.
    master, worker = "evicted-i00-rl-master-0", "evicted-i00-rl-worker-0"
    scripts = [
        full_cluster.script_pods(namespace, KeepRunning(), names=[master, worker]),
        full_cluster.script_pods(namespace, SlowDeletion(after_s=8), names=[master]),
    ]
    counted = disruptions_counted(full_operator, "Eviction")
    with PodHistory(full_cluster, namespace) as history:
        apply_run(full_cluster, namespace, one_iteration("evicted"))
        evicted = running(full_cluster, namespace, "evicted-i00-rl")[worker]
        first_attempt = get(full_cluster, namespace, PYTORCHJOBS, "evicted-i00-rl")

        full_cluster.evict_pod(namespace, worker)

        waiting = not_progressing(full_cluster, namespace, "evicted", "Preempted")
        full_cluster.kubectl("delete", "stages.kwok.x-k8s.io", *scripts)
        done = wait_for_phase(full_cluster, namespace, "evicted", "Succeeded")

    [record] = done["iterations"][0]["disruptions"]
    assert (record["child"], record["kind"], record["reason"], record["id"]) == (
        "evicted-i00-rl", "Eviction", "EvictionByEvictionAPI", uid(evicted),
    )  # fmt: skip
    assert worker in record["message"] and "Eviction API" in record["message"]
    assert waiting["message"].startswith(record["message"])
    assert done["iterations"][0]["failedJobs"] == []
    assert done["disruptions"] == {"Exploring": 1}
    assert names(full_cluster, namespace, PYTORCHJOBS) == ["evicted-i00-rft", "evicted-i00-rl"]
    resumed = resumed_pods(history, first_attempt)
    assert sorted(pod["metadata"]["name"] for pod in resumed) == [master, worker]
    [event] = warnings(full_cluster, namespace, "evicted", "Preempted")
    assert worker in event
    assert disruptions_counted(full_operator, "Eviction") == counted + 1


@pytest.fixture()
def spot_pool(full_cluster: FullCluster, namespace: str) -> Iterator[list[str]]:
    """Two fake GPU nodes that only the test's run selects (by POOL_LABEL); every node so
    labelled, a replacement too, is deleted at the end."""
    yield full_cluster.add_gpu_nodes(2, labels={POOL_LABEL: namespace})
    full_cluster.kubectl("delete", "nodes", "-l", f"{POOL_LABEL}={namespace}", "--wait=false")


def test_a_node_lost_under_a_running_attempt_ends_all_its_pods_and_resumes_it_elsewhere(
    full_cluster: FullCluster,
    full_operator: OperatorProcess,
    namespace: str,
    spot_pool: list[str],
) -> None:
    # A spot reclaim: the worker's node goes and a new one joins the pool. The pod garbage
    # collector fails and deletes the worker 40-80 s later (its fixed quarantine: that wait
    # dominates this test). The master, on a node that stays, takes 8 s to stop.
    master, worker = "spot-i00-rl-master-0", "spot-i00-rl-worker-0"
    scripts = [
        full_cluster.script_pods(namespace, KeepRunning(), names=[master, worker]),
        full_cluster.script_pods(namespace, SlowDeletion(after_s=8), names=[master]),
    ]
    run = one_iteration("spot", resources={"nodeSelector": {POOL_LABEL: namespace}})
    with PodHistory(full_cluster, namespace) as history:
        apply_run(full_cluster, namespace, run)
        first = running(full_cluster, namespace, "spot-i00-rl")
        first_attempt = get(full_cluster, namespace, PYTORCHJOBS, "spot-i00-rl")
        lost = first[worker]["spec"]["nodeName"]

        full_cluster.kubectl("delete", "node", lost)
        [replacement] = full_cluster.add_gpu_nodes(1, labels={POOL_LABEL: namespace})

        lost_node = disruption_recorded("NodeLost")
        wait_for(full_cluster, namespace, "spot", "a NodeLost disruption", lost_node, 150)
        full_cluster.kubectl("delete", "stages.kwok.x-k8s.io", *scripts)
        done = wait_for_phase(full_cluster, namespace, "spot", "Succeeded")

    [record] = done["iterations"][0]["disruptions"]
    assert (record["child"], record["kind"], record["reason"], record["id"]) == (
        "spot-i00-rl", "NodeLost", "DeletionByPodGC", uid(first[worker]),
    )  # fmt: skip
    assert lost in record["message"]
    assert done["iterations"][0]["failedJobs"] == []
    assert done["disruptions"] == {"Exploring": 1}
    assert names(full_cluster, namespace, PYTORCHJOBS) == ["spot-i00-rft", "spot-i00-rl"]
    resumed = resumed_pods(history, first_attempt)
    assert sorted(pod["metadata"]["name"] for pod in resumed) == [master, worker]
    survivor = first[master]["spec"]["nodeName"]
    assert {pod["spec"]["nodeName"] for pod in resumed} == {survivor, replacement}
    warnings(full_cluster, namespace, "spot", "Preempted")


def test_a_child_kueue_preempts_is_suspended_then_resumes_when_readmitted(
    full_cluster: FullCluster, full_operator: OperatorProcess, namespace: str
) -> None:
    # The run's child takes the queue's 16 GPUs; a Job of higher priority asking for 8
    # makes Kueue evict the child's Workload and suspend the child until the Job is gone.
    master, worker = "bumped-i00-rl-master-0", "bumped-i00-rl-worker-0"
    full_cluster.kueue_queue(namespace, "gpus", gpu_quota=16, preempt_lower_priority=True)
    full_cluster.apply(kueue.workload_priority_class("urgent", 1000))
    scripts = [full_cluster.script_pods(namespace, KeepRunning(), names=[master, worker])]
    full_cluster.script_pods(
        namespace, KeepRunning(), labels={"batch.kubernetes.io/job-name": "urgent"}
    )
    apply_run(full_cluster, namespace, one_iteration("bumped", resources={"queueName": "gpus"}))
    running(full_cluster, namespace, "bumped-i00-rl")
    child = get(full_cluster, namespace, PYTORCHJOBS, "bumped-i00-rl")

    urgent = kueue.queued_gpu_job(namespace, "urgent", "gpus", gpus=8, priority_class="urgent")
    full_cluster.apply(urgent)

    waiting = not_progressing(full_cluster, namespace, "bumped", "Preempted")
    suspended = get(full_cluster, namespace, PYTORCHJOBS, "bumped-i00-rl")
    assert suspended["spec"]["runPolicy"]["suspend"] is True
    [workload] = json.loads(
        full_cluster.kubectl("get", "workloads.kueue.x-k8s.io", "-n", namespace, "-o", "json",
                             "-l", f"kueue.x-k8s.io/job-uid={uid(child)}")
    )["items"]  # fmt: skip
    full_cluster.kubectl("delete", "stages.kwok.x-k8s.io", *scripts)
    full_cluster.kubectl("delete", "job", "urgent", "-n", namespace)
    done = wait_for_phase(full_cluster, namespace, "bumped", "Succeeded")

    [record] = done["iterations"][0]["disruptions"]
    assert (record["child"], record["kind"], record["reason"], record["id"]) == (
        "bumped-i00-rl", "KueuePreemption", "Preempted", f"{uid(workload)}/1",
    )  # fmt: skip
    evicted = next(c for c in workload["status"]["conditions"] if c["type"] == "Evicted")
    assert evicted["message"].startswith("Preempted to accommodate a workload")
    assert evicted["message"] in record["message"]
    assert waiting["message"].startswith(record["message"])
    assert done["iterations"][0]["failedJobs"] == []
    assert done["disruptions"] == {"Exploring": 1}
    assert names(full_cluster, namespace, PYTORCHJOBS) == ["bumped-i00-rft", "bumped-i00-rl"]
    resumed = get(full_cluster, namespace, PYTORCHJOBS, "bumped-i00-rl")
    assert uid(resumed) == uid(child), "Kueue's preemption should suspend the child, not end it"
    warnings(full_cluster, namespace, "bumped", "Preempted")
