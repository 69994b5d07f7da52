"""A phase that hung, on the full-mode cluster: the trainer's probe ended it (reason
Stalled in its termination message), and the operator resumes the stage under the same
child name without consuming a retry."""

from __future__ import annotations

import pytest
from rloop_trainer.termination import failure_message

from tests.cluster.fullcluster import FullCluster
from tests.cluster.kwok import Fail, KeepRunning, SlowDeletion
from tests.e2e.full.runs import (
    PYTORCHJOBS,
    apply_run,
    condition,
    disruption_recorded,
    names,
    one_iteration,
    wait_for,
    wait_for_phase,
)
from tests.e2e.operator_process import OperatorProcess

pytestmark = [pytest.mark.cluster, pytest.mark.full]
STALLED = (
    "stalled at step 3 since 2026-12-05T00:00:00Z: no progress for 3605 s (progress timeout 3600 s)"
)


def test_a_stalled_phase_resumes_under_its_name_without_consuming_a_retry(
    full_cluster: FullCluster, full_operator: OperatorProcess, namespace: str
) -> None:
    # The liveness probe ended the master with the trainer's line. The worker takes 8 s to
    # stop once its attempt is deleted: long enough to take the scripts off before the same
    # pod names come back, for the resumed attempt to run as any other.
    master, worker = "hang-i00-rl-master-0", "hang-i00-rl-worker-0"
    message = failure_message(STALLED, "Stalled", permanent=False).decode()
    scripts = [
        full_cluster.script_pods(namespace, Fail(137, message), names=[master]),
        full_cluster.script_pods(namespace, KeepRunning(), names=[worker]),
        full_cluster.script_pods(namespace, SlowDeletion(after_s=8), names=[worker]),
    ]
    apply_run(full_cluster, namespace, one_iteration("hang"))

    hang = disruption_recorded("Hang")
    waiting = wait_for(full_cluster, namespace, "hang", "a Hang disruption", hang)
    full_cluster.kubectl("delete", "stages.kwok.x-k8s.io", *scripts)
    done = wait_for_phase(full_cluster, namespace, "hang", "Succeeded")

    [record] = done["iterations"][0]["disruptions"]
    assert (record["child"], record["kind"], record["reason"]) == ("hang-i00-rl", "Hang", "Stalled")
    assert record["message"] == f"PyTorchJob hang-i00-rl hung: {STALLED}"
    assert done["iterations"][0]["failedJobs"] == []
    assert done["disruptions"] == {"Exploring": 1}
    assert names(full_cluster, namespace, PYTORCHJOBS) == ["hang-i00-rft", "hang-i00-rl"]
    progressing = condition(waiting, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "Stalled")
    assert progressing["message"].startswith(f"PyTorchJob hang-i00-rl hung: {STALLED}")
