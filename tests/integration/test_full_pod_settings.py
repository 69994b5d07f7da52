"""The operator's own DAPO children, with a podTemplate, through the real controllers of the
full mode (training operator, Trainer v2 + JobSet, kube-scheduler, kwok's GPU nodes) in a
namespace that enforces the Pod Security "restricted" profile: the pods the controllers
create are admitted, scheduled, run, and carry the overlay and the securityContext."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from rloop_operator.api import parse_spec, parse_status
from rloop_operator.lifecycle import Stage
from rloop_operator.manifests import ManifestSettings, child_manifest
from rloop_operator.planning.actions import CreateChild
from rloop_operator.planning.inputs import RunView

from tests.cluster.fullcluster import FullCluster
from tests.e2e.helpers import RESTRICTED, eventually
from tests.integration.test_full_cluster import WAIT_S, create, env_of, wait_for_condition
from tests.unit.operator.world import spec_dict

pytestmark = [pytest.mark.cluster, pytest.mark.full]

POD_TEMPLATE = {
    "labels": {"team": "reasoning"},
    "annotations": {"k8s.v1.cni.cncf.io/networks": "rdma-net"},
    "env": [{"name": "NCCL_DEBUG", "value": "INFO"}],
    "volumes": [{"name": "nccl-topology", "emptyDir": {}}],
    "volumeMounts": [{"name": "nccl-topology", "mountPath": "/etc/nccl"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "type", "operator": "In", "values": ["kwok"]}]}
                ]
            }
        }
    },
}
# (launcher, nodes, the child's condition when done, label selector of its pods)
LAUNCHERS = [
    ("pytorchjob", 1, "pytorchjob", "Succeeded", "training.kubeflow.org/job-name"),
    ("trainjob", 2, "trainjob", "Complete", "jobset.sigs.k8s.io/jobset-name"),
]
_namespaces = itertools.count(1)


@pytest.fixture
def restricted_namespace(full_cluster: FullCluster) -> Iterator[str]:
    name = f"full-restricted-{next(_namespaces)}"
    full_cluster.kubectl("create", "namespace", name)
    full_cluster.kubectl("label", "namespace", name, RESTRICTED)
    yield name
    full_cluster.kubectl("delete", "namespace", name, "--wait=false")


def dapo_child(namespace: str, launcher: str, nodes: int) -> dict[str, Any]:
    """The operator's DAPO child of iteration 0, without the ownerReference to a run that
    does not exist here (the garbage collector would delete the child)."""
    resources = {"launcher": launcher, "nodes": nodes, "podTemplate": POD_TEMPLATE}
    spec = parse_spec(spec_dict(resources=resources))
    run = RunView("tiny", namespace, "uid-1", 1, spec, parse_status({}))
    request = CreateChild("tiny-i00-rl", 0, Stage.EXPLORING)
    child = child_manifest(run, request, ManifestSettings(trainer_image="trainer"))
    del child["metadata"]["ownerReferences"]
    return child


@pytest.mark.parametrize(
    ("launcher", "nodes", "kind", "done", "pod_label"), LAUNCHERS, ids=[row[0] for row in LAUNCHERS]
)
def test_the_operators_child_runs_with_its_pod_template_in_a_restricted_namespace(
    launcher: str,
    nodes: int,
    kind: str,
    done: str,
    pod_label: str,
    full_cluster: FullCluster,
    restricted_namespace: str,
) -> None:
    create(full_cluster, restricted_namespace, dapo_child(restricted_namespace, launcher, nodes))

    wait_for_condition(full_cluster, restricted_namespace, kind, "tiny-i00-rl", done)

    pods = full_cluster.pods(restricted_namespace, f"{pod_label}=tiny-i00-rl")
    assert len(pods) == nodes
    for pod in pods:
        assert pod["status"]["phase"] == "Succeeded"
        assert pod["metadata"]["labels"]["team"] == "reasoning"
        assert pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] == "rdma-net"
        spec = pod["spec"]
        assert spec["affinity"] == POD_TEMPLATE["affinity"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        [container] = spec["containers"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert env_of(pod)["NCCL_DEBUG"] == "INFO"
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["nccl-topology"] == "/etc/nccl"
        resources = container["resources"]
        assert resources["limits"]["memory"] == resources["requests"]["memory"]
        assert pod["status"]["qosClass"] == "Guaranteed"


def test_the_training_operators_init_container_keeps_workers_out_of_a_restricted_namespace(
    full_cluster: FullCluster, restricted_namespace: str
) -> None:
    # What the README tells PyTorchJob users with nodes > 1 to change in the training operator:
    # v1.9.4 adds init-pytorch to every Worker without a securityContext.
    create(full_cluster, restricted_namespace, dapo_child(restricted_namespace, "pytorchjob", 2))

    def refusal() -> str:
        events = full_cluster.kubectl(
            "get", "events", "-n", restricted_namespace,
            "--field-selector=reason=FailedCreatePod", "-o", "jsonpath={.items[*].message}",
        )  # fmt: skip
        return str(events)

    message = eventually(refusal, WAIT_S, "the training operator's FailedCreatePod event")
    assert 'violates PodSecurity "restricted:latest"' in message
    assert 'container "init-pytorch" must set securityContext.allowPrivilegeEscalation' in message
    pods = full_cluster.pods(restricted_namespace, "training.kubeflow.org/job-name=tiny-i00-rl")
    assert [pod["metadata"]["name"] for pod in pods] == ["tiny-i00-rl-master-0"]
