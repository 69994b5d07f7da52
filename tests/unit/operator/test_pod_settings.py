"""Pod settings of every phase pod: Pod Security, service account, QoS, scratch and the
spec.resources.podTemplate overlay, for each launcher."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from rloop_operator.api import SpecError, parse_spec
from rloop_operator.lifecycle import Stage

from tests.unit.operator.test_manifests import manifest, run_of, trainjob_pod_patch
from tests.unit.operator.world import spec_dict

ROOT = Path(__file__).resolve().parents[3]
VALIDATION = {"train": "s3://b/t", "validation": [{"name": "v", "uri": "s3://b/v"}]}
STAGES = list(Stage)[1:]
TEMPLATE: dict[str, Any] = {
    "labels": {"team": "reasoning"},
    "annotations": {"k8s.v1.cni.cncf.io/networks": "rdma-net"},
    "affinity": {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 1,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"team": "reasoning"}},
                    },
                }
            ]
        }
    },
    "env": [{"name": "NCCL_IB_HCA", "value": "mlx5"}],
    "volumes": [{"name": "nccl-topology", "configMap": {"name": "nccl-topology"}}],
    "volumeMounts": [{"name": "nccl-topology", "mountPath": "/etc/nccl"}],
    "limits": {"rdma/hca": 1},
}


def pods_of(job: dict[str, Any]) -> list[dict[str, Any]]:
    """Every pod template a child carries: PyTorchJob replicas, the Job's, TrainJob's patch."""
    if job["kind"] == "Job":
        return [job["spec"]["template"]]
    if job["kind"] == "TrainJob":
        return [trainjob_pod_patch(job)]
    return [replica["template"] for replica in job["spec"]["pytorchReplicaSpecs"].values()]


def every_pod(launcher: str, **resources: Any) -> list[dict[str, Any]]:
    run = run_of(resources={"launcher": launcher, "nodes": 2, **resources}, data=VALIDATION)
    return [pod for stage in STAGES for pod in pods_of(manifest(stage, run))]


def dockerfile_user() -> tuple[int, int]:
    match = re.search(r"^USER (\d+):(\d+)$", (ROOT / "trainer_image/Dockerfile").read_text(), re.M)
    assert match, "trainer_image/Dockerfile must end as a numeric USER uid:gid"
    return int(match.group(1)), int(match.group(2))


@pytest.mark.parametrize("launcher", ["pytorchjob", "trainjob"])
def test_every_phase_pod_meets_the_restricted_pod_security_profile(launcher: str) -> None:
    uid, gid = dockerfile_user()
    pods = every_pod(launcher)
    # DAPO and RFT: a Master and a Worker template each under PyTorchJob, one under TrainJob;
    # filter, base evaluation and evaluation: one Job each.
    assert len(pods) == (7 if launcher == "pytorchjob" else 5)
    for pod in pods:
        security = pod["spec"]["securityContext"]
        assert security["runAsNonRoot"] is True
        assert (security["runAsUser"], security["runAsGroup"], security["fsGroup"]) == (
            uid,
            gid,
            gid,
        )
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        # fsGroup without it walks the whole store volume at every pod start.
        assert security["fsGroupChangePolicy"] == "OnRootMismatch"
        [container] = pod["spec"]["containers"]
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        }


@pytest.mark.parametrize("launcher", ["pytorchjob", "trainjob"])
def test_without_a_service_account_no_pod_mounts_an_api_token(launcher: str) -> None:
    run = run_of(resources={"launcher": launcher, "nodes": 2}, data=VALIDATION)
    for stage in STAGES:
        job = manifest(stage, run)
        for pod in pods_of(job):
            assert "serviceAccountName" not in pod["spec"]
            if job["kind"] == "TrainJob":
                # runtimePatches cannot set it: the runtime's pod template decides (README).
                assert "automountServiceAccountToken" not in pod["spec"]
            else:
                assert pod["spec"]["automountServiceAccountToken"] is False


@pytest.mark.parametrize("launcher", ["pytorchjob", "trainjob"])
def test_a_service_account_reaches_every_phase_pod(launcher: str) -> None:
    for pod in every_pod(launcher, serviceAccountName="s3-reader"):
        assert pod["spec"]["serviceAccountName"] == "s3-reader"
        assert "automountServiceAccountToken" not in pod["spec"]


@pytest.mark.parametrize("stage", [Stage.EXPLORING, Stage.CONSOLIDATING, Stage.EVALUATING])
def test_pods_on_the_gpu_nodes_are_guaranteed_and_request_their_scratch(stage: Stage) -> None:
    run = run_of(resources={"cpu": "12", "memory": "96Gi", "scratchSize": "500Gi"}, data=VALIDATION)
    [pod] = pods_of(manifest(stage, run))[:1]
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources["requests"] == {"cpu": "12", "memory": "96Gi", "ephemeral-storage": "500Gi"}
    assert (resources["limits"]["cpu"], resources["limits"]["memory"]) == ("12", "96Gi")
    # A limit would get the pod evicted for staging a checkpoint larger than the request.
    assert "ephemeral-storage" not in resources["limits"]
    scratch = next(v for v in pod["spec"]["volumes"] if v["name"] == "scratch")
    assert scratch == {"name": "scratch", "emptyDir": {}}


def test_the_filter_pod_requests_its_own_scratch_and_is_not_limited() -> None:
    run = run_of(filter={"scratchSize": "30Gi"})
    [pod] = pods_of(manifest(Stage.FILTERING, run))
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources["requests"]["ephemeral-storage"] == "30Gi"
    assert resources["limits"] == {}


def test_the_pod_template_reaches_every_pytorchjob_pod_and_the_eval_job() -> None:
    run = run_of(resources={"nodes": 3, "podTemplate": TEMPLATE}, data=VALIDATION)
    pods = [
        pod
        for stage in (Stage.EXPLORING, Stage.EVALUATING)
        for pod in pods_of(manifest(stage, run))
    ]
    assert len(pods) == 3  # master, workers, eval
    for pod in pods:
        assert pod["metadata"]["labels"]["team"] == "reasoning"
        assert pod["metadata"]["labels"]["rloop.io/run"] == "demo"
        assert pod["metadata"]["annotations"] == TEMPLATE["annotations"]
        spec = pod["spec"]
        assert spec["affinity"] == TEMPLATE["affinity"]
        assert TEMPLATE["volumes"][0] in spec["volumes"]
        [container] = spec["containers"]
        assert {"name": "NCCL_IB_HCA", "value": "mlx5"} in container["env"]
        assert TEMPLATE["volumeMounts"][0] in container["volumeMounts"]
        assert container["resources"]["limits"]["rdma/hca"] == 1
        assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]


def test_the_filter_pod_gets_the_pod_template_but_its_affinity_and_limits() -> None:
    # The filter reads and writes the store: a CA bundle or proxy (env, volume) must reach it;
    # an rdma/hca limit or a GPU-node affinity would leave it unschedulable.
    [pod] = pods_of(manifest(Stage.FILTERING, run_of(resources={"podTemplate": TEMPLATE})))
    assert pod["metadata"]["labels"]["team"] == "reasoning"
    assert pod["metadata"]["annotations"] == TEMPLATE["annotations"]
    assert TEMPLATE["volumes"][0] in pod["spec"]["volumes"]
    [container] = pod["spec"]["containers"]
    assert {"name": "NCCL_IB_HCA", "value": "mlx5"} in container["env"]
    assert TEMPLATE["volumeMounts"][0] in container["volumeMounts"]
    assert "affinity" not in pod["spec"]
    assert "rdma/hca" not in container["resources"]["limits"]


def test_a_trainjob_carries_the_pod_template_through_its_patch_and_trainer_fields() -> None:
    job = manifest(
        Stage.EXPLORING, run_of(resources={"launcher": "trainjob", "podTemplate": TEMPLATE})
    )
    pod = trainjob_pod_patch(job)
    assert pod["metadata"]["labels"]["team"] == "reasoning"
    assert pod["metadata"]["annotations"] == TEMPLATE["annotations"]
    assert pod["spec"]["affinity"] == TEMPLATE["affinity"]
    assert TEMPLATE["volumes"][0] in pod["spec"]["volumes"]
    [node] = pod["spec"]["containers"]
    assert TEMPLATE["volumeMounts"][0] in node["volumeMounts"]
    # The Trainer refuses env in a patch of container `node`; env and resources go in `trainer`.
    assert "env" not in node and "resources" not in node
    trainer = job["spec"]["trainer"]
    assert {"name": "NCCL_IB_HCA", "value": "mlx5"} in trainer["env"]
    assert trainer["resourcesPerNode"]["limits"]["rdma/hca"] == 1


COLLISIONS = [
    ({"env": [{"name": "PET_NNODES", "value": "4"}]}, "choose another name; got PET_NNODES"),
    ({"env": [{"name": "AWS_ACCESS_KEY_ID", "value": "x"}]}, "podTemplate.env: TMPDIR"),
    (
        {"volumes": [{"name": "dshm", "emptyDir": {}}]},
        "the names scratch, dshm, storage and tracking",
    ),
    (
        {"volumes": [{"name": "a", "emptyDir": {}}, {"name": "a", "emptyDir": {}}]},
        "volumes[].name must be unique; name each volume once; got a",
    ),
    (
        {
            "volumes": [{"name": "a", "emptyDir": {}}],
            "volumeMounts": [{"name": "a", "mountPath": "/dev/shm"}],
        },
        "/scratch, /dev/shm, /dev/termination-log and /var/run/secrets/rloop/tracking are",
    ),
    ({"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}, "must name a volume of"),
    ({"labels": {"rloop.io/run": "other", "team": "x"}}, "resources.queueName); got rloop.io/run"),
    ({"labels": {"app.kubernetes.io/managed-by": "me"}}, "app.kubernetes.io/managed-by"),
    ({"limits": {"memory": "1Ti"}}, "set resources.cpu, resources.memory"),
]


@pytest.mark.parametrize(("template", "message"), COLLISIONS, ids=lambda v: str(v)[:40])
def test_a_pod_template_colliding_with_ours_is_refused_naming_the_field(
    template: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_spec(spec_dict(resources={"podTemplate": template}))


def test_a_pod_template_mount_on_the_store_volume_is_refused() -> None:
    storage = {
        "uri": "file:///shared/rloop",
        "volume": {"claimName": "shared-fs", "mountPath": "/shared"},
    }
    template = {
        "volumes": [{"name": "other", "emptyDir": {}}],
        "volumeMounts": [{"name": "other", "mountPath": "/shared"}],
    }
    with pytest.raises(SpecError, match=r"must differ from storage\.volume\.mountPath"):
        parse_spec(spec_dict(storage=storage, resources={"podTemplate": template}))
