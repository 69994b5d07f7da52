"""Every TrainJob the operator writes is valid under the CRDs of both supported Kubeflow
Trainer versions: the pinned one (hack/cluster/versions.sh TRAINER_VERSION) and the oldest
(TRAINER_OLDEST_VERSION), each checked by a real API server in a strict server-side dry run
(schema, CEL rules, and no field the CRD would prune)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rloop_operator.api import Stage

from tests.cluster.controlplane import ControlPlane, KubectlError
from tests.cluster.trainer_crds import in_oldest_group, oldest_trainer_crds
from tests.unit.operator.test_manifests import manifest, run_of
from tests.unit.operator.test_pod_settings import TEMPLATE

pytestmark = pytest.mark.cluster
VALIDATION = {"train": "s3://b/t", "validation": [{"name": "v", "uri": "s3://b/v"}]}
# Runs whose TrainJobs between them carry every field the launcher can write.
RESOURCES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "multi-node with every pod setting": {
        "nodes": 3,
        "gpusPerNode": 8,
        "podTemplate": TEMPLATE,
        "nodeSelector": {"nvidia.com/gpu.product": "H200"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "serviceAccountName": "trainer",
        "queueName": "team-a",
        "image": "registry.example/rloop-trainer:1",
    },
    "a namespaced runtime, CPU only": {
        "runtimeRef": {"kind": "TrainingRuntime", "name": "torch-cpu"},
        "gpusPerNode": 0,
        "cpu": "4",
        "memory": "16Gi",
    },
}
STORAGE_VOLUME = {
    "uri": "file:///mnt/store/rloop",
    "volume": {"claimName": "rloop-store", "mountPath": "/mnt/store"},
}


@pytest.fixture(scope="module")
def oldest_trainer(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The oldest supported Trainer's CRDs, beside the pinned Trainer's ones."""
    crds = oldest_trainer_crds(control_plane.layout, tmp_path_factory.mktemp("oldest-trainer"))
    control_plane.install_crds(crds)


def trainjobs() -> list[Any]:
    cases = []
    for label, resources in RESOURCES.items():
        for stage in (Stage.EXPLORING, Stage.CONSOLIDATING):
            spec = {"resources": {"launcher": "trainjob", **resources}, "data": VALIDATION}
            if label == "defaults":
                spec["storage"] = STORAGE_VOLUME
            cases.append(pytest.param(manifest(stage, run_of(**spec)), id=f"{label}-{stage}"))
    return cases


def dry_run_create(plane: ControlPlane, obj: dict[str, Any]) -> None:
    placed = {**obj, "metadata": {**obj["metadata"], "namespace": "default"}}
    plane.kubectl(
        "create", "--dry-run=server", "--validate=strict", "-f", "-", stdin=json.dumps(placed)
    )


@pytest.mark.usefixtures("oldest_trainer")
@pytest.mark.parametrize("trainjob", trainjobs())
def test_a_trainjob_of_the_operator_is_valid_for_both_trainer_versions(
    control_plane: ControlPlane, trainjob: dict[str, Any]
) -> None:
    assert trainjob["kind"] == "TrainJob"
    dry_run_create(control_plane, trainjob)
    dry_run_create(control_plane, in_oldest_group(trainjob))


@pytest.mark.usefixtures("oldest_trainer")
def test_the_check_refuses_what_a_trainer_crd_refuses(control_plane: ControlPlane) -> None:
    trainjob = manifest(Stage.EXPLORING, run_of(resources={"launcher": "trainjob"}))
    unknown_field = {**trainjob, "spec": {**trainjob["spec"], "notAField": 1}}
    for version in (unknown_field, in_oldest_group(unknown_field)):
        with pytest.raises(KubectlError, match=r'unknown field "spec\.notAField"'):
            dry_run_create(control_plane, version)


def test_the_two_trainer_versions_have_different_trainjob_crds(control_plane: ControlPlane) -> None:
    pinned, oldest = (
        crds[0].read_text()
        for crds in (control_plane.layout.trainer_crds, control_plane.layout.trainer_oldest_crds)
    )
    assert "trainjobs" in control_plane.layout.trainer_crds[0].name
    assert pinned != oldest
