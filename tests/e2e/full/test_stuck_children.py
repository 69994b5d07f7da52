"""Children whose pods do not run, on the full-mode cluster: the run says why, in the
scheduler's or kubelet's words, and a child Kueue holds is queued, not stuck."""

from __future__ import annotations

import json

import pytest

from tests.cluster.fullcluster import FullCluster
from tests.cluster.kwok import Waiting
from tests.e2e.full.runs import (
    PYTORCHJOBS,
    apply_run,
    names,
    not_progressing,
    run_manifest,
    status,
    wait_for_phase,
)
from tests.e2e.helpers import eventually
from tests.e2e.operator_process import OperatorProcess

pytestmark = [pytest.mark.cluster, pytest.mark.full]
NO_SUCH_GPU = {"nvidia.com/gpu.product": "NVIDIA-B200"}


def printed_reason(full: FullCluster, namespace: str, run: str) -> str:
    return full.kubectl(
        "get", "rlooprun", run, "-n", namespace, "-o", "custom-columns=REASON:.status.reason",
        "--no-headers",
    ).strip()  # fmt: skip


def test_pods_no_node_matches_are_unschedulable_then_fail_at_the_start_timeout(
    full_cluster: FullCluster, full_operator: OperatorProcess, namespace: str
) -> None:
    # Without validation sets the first child is DAPO's (no base-policy evaluation first).
    run = run_manifest(
        "nowhere",
        iterations=1,
        maxRetries=0,
        data={"validation": []},
        resources={"nodeSelector": NO_SUCH_GPU, "startTimeout": "45s"},
    )
    apply_run(full_cluster, namespace, run)

    stuck = not_progressing(full_cluster, namespace, "nowhere", "Unschedulable", timeout_s=60)

    # The master or the worker: whichever the scheduler turned down first.
    assert stuck["message"].startswith("PyTorchJob nowhere-i00-rl: pod nowhere-i00-rl-")
    assert "didn't match Pod's node affinity/selector" in stuck["message"]
    assert status(full_cluster, namespace, "nowhere")["phase"] == "Running"
    assert printed_reason(full_cluster, namespace, "nowhere") == "Unschedulable"

    failed = wait_for_phase(full_cluster, namespace, "nowhere", "Failed", timeout_s=90)
    assert "(StartTimeout)" in failed["message"]
    assert "startTimeout=45s: Unschedulable: pod nowhere-i00-rl-master-0" in failed["message"]
    eventually(
        lambda: names(full_cluster, namespace, PYTORCHJOBS) == [], 60, "the stuck child deleted"
    )


def test_pods_asking_more_gpus_than_any_node_has_are_unschedulable(
    full_cluster: FullCluster, full_operator: OperatorProcess, namespace: str
) -> None:
    # The fake GPU nodes have 8 GPUs each.
    run = run_manifest(
        "toobig", iterations=1, data={"validation": []}, resources={"gpusPerNode": 16}
    )
    apply_run(full_cluster, namespace, run)

    stuck = not_progressing(full_cluster, namespace, "toobig", "Unschedulable", timeout_s=60)

    assert stuck["message"].startswith("PyTorchJob toobig-i00-rl: pod toobig-i00-rl-")
    assert "Insufficient nvidia.com/gpu" in stuck["message"]
    assert printed_reason(full_cluster, namespace, "toobig") == "Unschedulable"


def test_a_missing_s3_secret_shows_as_the_kubelets_create_container_config_error(
    full_cluster: FullCluster, full_operator: OperatorProcess, namespace: str
) -> None:
    # kwok runs no kubelet: it says what the kubelet says when a secretKeyRef is missing.
    kubelet_says = 'secret "s3-creds" not found'
    full_cluster.script_pods(namespace, Waiting("CreateContainerConfigError", kubelet_says))
    run = run_manifest(
        "nosecret",
        iterations=1,
        data={"validation": []},  # DAPO's child first, not the base evaluation's
        storage={"credentialsSecret": "s3-creds"},
    )
    apply_run(full_cluster, namespace, run)

    stuck = not_progressing(full_cluster, namespace, "nosecret", "CreateContainerConfigError")

    assert stuck["message"].endswith(f": {kubelet_says}")
    (master,) = full_cluster.pods(namespace, "training.kubeflow.org/replica-type=master")
    env = master["spec"]["containers"][0]["env"]
    assert any(
        (e.get("valueFrom") or {}).get("secretKeyRef", {}).get("name") == "s3-creds" for e in env
    )


def test_a_run_on_a_queue_without_gpu_quota_is_queued_then_runs_once_quota_is_added(
    full_cluster: FullCluster, full_operator: OperatorProcess, namespace: str
) -> None:
    full_cluster.kueue_queue(namespace, "gpus", gpu_quota=0)
    run = run_manifest("queued", iterations=1, resources={"queueName": "gpus"})
    run["spec"]["data"].pop("validation")
    apply_run(full_cluster, namespace, run)

    queued = not_progressing(full_cluster, namespace, "queued", "Queued")

    assert "queued-i00-rl is queued: Kueue admits it once its queue has quota" in queued["message"]
    assert full_cluster.pods(namespace) == []
    full_cluster.set_gpu_quota(namespace, "gpus", 16)
    done = wait_for_phase(full_cluster, namespace, "queued", "Succeeded")
    assert done["iterations"][0]["failedJobs"] == []
    rl = json.loads(
        full_cluster.kubectl(
            "get", PYTORCHJOBS, "queued-i00-rl", "-n", namespace, "-o", "json",
            "--show-managed-fields",
        )
    )  # fmt: skip
    assert rl["spec"]["runPolicy"]["suspend"] is False
    writers = suspend_writers(rl)
    assert writers and all("kueue" in manager for manager in writers), writers


def suspend_writers(obj: dict[str, object]) -> list[str]:
    """Managers whose managedFields entry owns spec.runPolicy.suspend."""
    entries = obj["metadata"]["managedFields"]  # type: ignore[index]
    return [
        entry["manager"]
        for entry in entries
        if '"f:suspend"' in json.dumps(entry.get("fieldsV1", {}).get("f:spec", {}))
    ]
