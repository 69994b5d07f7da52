"""Whole runs on the full-mode cluster: the real training operator, Kubeflow Trainer with
JobSet, the Job controller and Kueue turn the operator's children into pods that
kube-scheduler binds to kwok's GPU nodes. kwok runs no containers: the filter and eval
pods leave the reports the trainer would in their termination messages (scripted), and
every other pod exits 0."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rloop_operator.api import RLoopRunStatus, parse_spec
from rloop_operator.children import MAX_RUN_NAME, RUN_NAME_NOT_DNS_1035, child_name
from rloop_operator.lifecycle import Stage
from rloop_operator.manifests import ManifestSettings, child_manifest
from rloop_operator.planning.actions import CreateChild
from rloop_operator.planning.inputs import RunView

from tests.cluster.controlplane import KubectlError
from tests.cluster.fullcluster import FullCluster
from tests.cluster.kueue import QUEUE_LABEL
from tests.cluster.kwok import Succeed
from tests.e2e.full.runs import (
    PYTORCHJOBS,
    TRAINJOBS,
    apply_run,
    get,
    names,
    run_manifest,
    wait_for_phase,
)
from tests.e2e.helpers import eventually
from tests.e2e.operator_process import OperatorProcess

pytestmark = [pytest.mark.cluster, pytest.mark.full]
FILTER_REPORT = {"rollouts": 64, "hard_prompts": 3, "kept_samples": 7}
EVAL_REPORT = {"sets": {"heldout": {"avg@n": 0.25, "pass@k": {"1": 0.25, "8": 0.5}, "samples": 8}}}


def script_reports(full: FullCluster, namespace: str) -> None:
    for stage, report in (("filter", FILTER_REPORT), ("eval", EVAL_REPORT)):
        outcome = Succeed(after_s=1.0, message=json.dumps(report))
        full.script_pods(namespace, outcome, labels={"rloop.io/stage": stage})


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0].get("env", [])}


def assert_gpu_pods(pods: list[dict[str, Any]], run: str) -> None:
    """Two pods of one node each, on two GPU nodes, with every GPU, /dev/shm and our labels."""
    assert len(pods) == 2
    assert len({pod["spec"]["nodeName"] for pod in pods}) == 2
    for pod in pods:
        [container] = pod["spec"]["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
        assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
        volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
        assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
        labels = pod["metadata"]["labels"]
        assert (labels["rloop.io/run"], labels["rloop.io/iteration"]) == (run, "0")
        assert labels["rloop.io/stage"] == "rl"
        assert env_of(pod)["PET_NNODES"] == "2"
        assert env_of(pod)["PET_NPROC_PER_NODE"] == "8"


def both_pods(full: FullCluster, namespace: str, selector: str) -> list[dict[str, Any]]:
    """The two pods of the first DAPO attempt, once both are bound to nodes: taken while
    they run, since a finished PyTorchJob deletes the pods still running (cleanPodPolicy)."""

    def bound() -> list[dict[str, Any]]:
        pods = full.pods(namespace, selector)
        return pods if len(pods) == 2 and all(p["spec"].get("nodeName") for p in pods) else []

    return eventually(bound, 120, f"two bound pods selected by {selector}")


def assert_two_iterations(done: dict[str, Any]) -> None:
    assert done["progress"] == "2/2"
    assert [r["expertSamples"] for r in done["iterations"]] == [7, 7]
    assert [r["failedJobs"] for r in done["iterations"]] == [[], []]
    assert done["iterations"][1]["metrics"]["heldout/avg@8"] == 0.25


def test_a_pytorchjob_run_goes_through_two_iterations_on_gpu_nodes(
    full_cluster: FullCluster, full_operator: OperatorProcess, namespace: str
) -> None:
    full_cluster.kueue_queue(namespace, "gpus", gpu_quota=16)
    script_reports(full_cluster, namespace)
    apply_run(full_cluster, namespace, run_manifest("happy", resources={"queueName": "gpus"}))
    pods = both_pods(full_cluster, namespace, "training.kubeflow.org/job-name=happy-i00-rl")

    done = wait_for_phase(full_cluster, namespace, "happy", "Succeeded", timeout_s=360)

    assert_two_iterations(done)
    assert names(full_cluster, namespace, PYTORCHJOBS) == sorted(
        f"happy-i0{i}-{slug}" for i in range(2) for slug in ("rl", "rft")
    )
    rl = get(full_cluster, namespace, PYTORCHJOBS, "happy-i00-rl")
    assert rl["metadata"]["labels"][QUEUE_LABEL] == "gpus"
    assert_gpu_pods(pods, "happy")
    by_rank = {env_of(pod)["PET_NODE_RANK"]: pod["metadata"]["name"] for pod in pods}
    assert by_rank == {"0": "happy-i00-rl-master-0", "1": "happy-i00-rl-worker-0"}
    assert {env_of(pod)["MASTER_ADDR"] for pod in pods} == {"happy-i00-rl-master-0"}


def test_a_trainjob_run_goes_through_two_iterations_on_gpu_nodes(
    full_cluster: FullCluster, full_operator: OperatorProcess, namespace: str
) -> None:
    full_cluster.kueue_queue(namespace, "gpus", gpu_quota=16)
    script_reports(full_cluster, namespace)
    run = run_manifest("happy-tj", resources={"queueName": "gpus", "launcher": "trainjob"})
    apply_run(full_cluster, namespace, run)
    pods = both_pods(full_cluster, namespace, "jobset.sigs.k8s.io/jobset-name=happy-tj-i00-rl")

    done = wait_for_phase(full_cluster, namespace, "happy-tj", "Succeeded", timeout_s=360)

    assert_two_iterations(done)
    assert names(full_cluster, namespace, TRAINJOBS) == sorted(
        f"happy-tj-i0{i}-{slug}" for i in range(2) for slug in ("rl", "rft")
    )
    rl = get(full_cluster, namespace, TRAINJOBS, "happy-tj-i00-rl")
    assert rl["metadata"]["labels"][QUEUE_LABEL] == "gpus"
    assert_gpu_pods(pods, "happy-tj")
    ranks = sorted(
        pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for pod in pods
    )
    assert ranks == ["0", "1"]
    master = "happy-tj-i00-rl-node-0-0.happy-tj-i00-rl"
    assert {env_of(pod)["PET_MASTER_ADDR"] for pod in pods} == {master}


def test_a_dotted_run_name_is_refused_at_apply_with_the_crds_message(
    full_cluster: FullCluster, namespace: str
) -> None:
    with pytest.raises(KubectlError) as refused:
        apply_run(full_cluster, namespace, run_manifest("qwen2.5-math"))
    assert RUN_NAME_NOT_DNS_1035 in str(refused.value)


@pytest.mark.parametrize("launcher", ["pytorchjob", "trainjob"])
def test_the_longest_run_name_gives_children_the_kubeflow_webhooks_accept(
    full_cluster: FullCluster, namespace: str, launcher: str
) -> None:
    # The longest children: the last retry of the last iteration; created as the operator
    # would, through the training operator's or Trainer's and JobSet's webhooks.
    name = ("t" if launcher == "trainjob" else "p") * MAX_RUN_NAME
    spec = parse_spec(run_manifest(name, resources={"launcher": launcher})["spec"])
    run = RunView(name, namespace, "uid-1", 1, spec, RLoopRunStatus())
    child = child_name(name, 98, Stage.CONSOLIDATING, 10)
    manifest = child_manifest(run, CreateChild(child, 98, Stage.CONSOLIDATING), ManifestSettings())
    del manifest["metadata"]["ownerReferences"]  # no such run: the garbage collector would act
    full_cluster.kubectl("create", "-n", namespace, "-f", "-", stdin=json.dumps(manifest))

    selector = (
        f"jobset.sigs.k8s.io/jobset-name={child}"
        if launcher == "trainjob"
        else f"training.kubeflow.org/job-name={child}"
    )

    def both_pods() -> list[dict[str, Any]]:
        pods = full_cluster.pods(namespace, selector)
        return pods if len(pods) == 2 else []

    pods = eventually(both_pods, 120, f"the pods of {child}")
    assert max(len(pod["metadata"]["name"]) for pod in pods) <= 63
