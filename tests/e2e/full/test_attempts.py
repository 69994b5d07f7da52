"""Failed attempts on the full-mode cluster: one writer per stage, and failures the trainer
calls permanent, told by the pods' termination messages."""

from __future__ import annotations

from typing import Any

import pytest
from rloop_trainer.cli import EXIT_PERMANENT
from rloop_trainer.termination import failure_message

from tests.cluster.fullcluster import FullCluster
from tests.cluster.kwok import Fail, KeepRunning, SlowDeletion
from tests.e2e.full.pod_history import PodHistory, may_write, named
from tests.e2e.full.runs import (
    PYTORCHJOBS,
    TRAINJOBS,
    apply_run,
    names,
    run_manifest,
    wait_for_phase,
)
from tests.e2e.helpers import eventually
from tests.e2e.operator_process import OperatorProcess

pytestmark = [pytest.mark.cluster, pytest.mark.full]


def test_a_retry_starts_only_once_the_failed_attempts_pods_have_stopped(
    full_cluster: FullCluster, full_operator: OperatorProcess, namespace: str
) -> None:
    # The master fails; the training operator deletes the worker (cleanPodPolicy Running),
    # which takes 8 s to stop: the retry (1 s backoff here) must wait for it.
    old_master, old_worker = "retry-i00-rl-master-0", "retry-i00-rl-worker-0"
    full_cluster.script_pods(namespace, Fail(1, "CUDA error: out of memory"), names=[old_master])
    full_cluster.script_pods(namespace, KeepRunning(), names=[old_worker])
    full_cluster.script_pods(namespace, SlowDeletion(after_s=8), names=[old_worker])
    run = run_manifest("retry", iterations=1)
    run["spec"]["data"].pop("validation")

    with PodHistory(full_cluster, namespace) as history:
        apply_run(full_cluster, namespace, run)
        done = wait_for_phase(full_cluster, namespace, "retry", "Succeeded")

    assert done["iterations"][0]["failedJobs"] == ["retry-i00-rl"]
    assert names(full_cluster, namespace, PYTORCHJOBS) == sorted(
        ["retry-i00-rl", "retry-i00-rl-r1", "retry-i00-rft"]
    )
    old_pods = (old_master, old_worker)
    stopping = [at for at, pods in history.snapshots if old_worker in named(pods, is_stopping)]
    assert stopping and stopping[-1] - stopping[0] > 4, "the old worker never stopped slowly"
    assert any(named(pods, is_retry) for _, pods in history.snapshots), "no retry pods seen"
    for _, pods in history.snapshots:
        old = [name for name in named(pods, may_write) if name in old_pods]
        assert not (old and named(pods, is_retry)), f"{old} still ran beside the retry's pods"


def is_stopping(pod: dict[str, Any]) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp")) and may_write(pod)


def is_retry(pod: dict[str, Any]) -> bool:
    return "-rl-r1-" in pod["metadata"]["name"]


def test_a_failure_the_trainer_calls_permanent_fails_the_run_at_once_in_its_words(
    full_cluster: FullCluster, full_operator: OperatorProcess, namespace: str
) -> None:
    line = "rloop-trainer dapo: s3://rloop/data/train.parquet does not exist; check data.train"
    message = failure_message(line, "InvalidInput", permanent=True).decode()
    full_cluster.script_pods(
        namespace, Fail(EXIT_PERMANENT, message), names=["badinput-i00-rl-master-0"]
    )
    apply_run(full_cluster, namespace, run_manifest("badinput", maxRetries=3))

    failed = wait_for_phase(full_cluster, namespace, "badinput", "Failed")

    assert (failed["reason"], failed["message"]) == ("InvalidInput", line)
    assert failed["iterations"][0]["failedJobs"] == ["badinput-i00-rl"]
    assert names(full_cluster, namespace, PYTORCHJOBS) == ["badinput-i00-rl"]


def test_a_trainjob_pod_the_trainer_stopped_for_good_is_not_retried_in_place(
    full_cluster: FullCluster, full_operator: OperatorProcess, namespace: str
) -> None:
    # The TrainJob's Job (backoffLimit 6, which a TrainJob cannot change) would replace the
    # failed pods after 10 s, then 20 s, ...: the operator ends the TrainJob at the first.
    line = "rloop-trainer dapo: s3://rloop/data/train.parquet does not exist; check data.train"
    message = failure_message(line, "InvalidInput", permanent=True).decode()
    jobset = {"jobset.sigs.k8s.io/jobset-name": "badtj-i00-rl"}
    full_cluster.script_pods(namespace, Fail(EXIT_PERMANENT, message), labels=jobset)

    with PodHistory(full_cluster, namespace) as history:
        apply_run(
            full_cluster, namespace, run_manifest("badtj", resources={"launcher": "trainjob"})
        )
        failed = wait_for_phase(full_cluster, namespace, "badtj", "Failed")
        # Deleted, so no GPU stays held; by then a replacement would have been seen.
        eventually(lambda: not names(full_cluster, namespace, TRAINJOBS), 60, "no TrainJob")

    assert (failed["reason"], failed["message"]) == ("InvalidInput", line)
    assert failed["iterations"][0]["failedJobs"] == ["badtj-i00-rl"]
    seen = {name for _, pods in history.snapshots for name in named(pods, is_trainjob_pod)}
    assert len(seen) == 2, f"the failed pods were replaced in place: {sorted(seen)}"


def is_trainjob_pod(pod: dict[str, Any]) -> bool:
    return pod["metadata"]["name"].startswith("badtj-i00-rl-node-")
