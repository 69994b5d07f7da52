"""The launcher registry and the stage table: which launcher runs which stage."""

from __future__ import annotations

import pytest
from rloop_operator.api import parse_spec
from rloop_operator.launchers import LAUNCHERS, launcher_of_kind
from rloop_operator.lifecycle import Stage
from rloop_operator.stages import (
    STAGES,
    launcher_for,
    prerequisites,
    stage_info,
    stage_of_slug,
    stages_of,
)

from tests.unit.operator.world import spec_dict

VALIDATION = {"train": "s3://b/t", "validation": [{"name": "v", "uri": "s3://b/v"}]}


@pytest.mark.parametrize(
    ("launcher", "training_kind"), [("pytorchjob", "PyTorchJob"), ("trainjob", "TrainJob")]
)
def test_dapo_and_rft_run_on_the_chosen_launcher_filter_and_eval_on_jobs(
    launcher: str, training_kind: str
) -> None:
    spec = parse_spec(spec_dict(data=VALIDATION, resources={"launcher": launcher}))
    kinds = {stage: launcher_for(spec, stage).kind for stage in stages_of(spec)}
    assert kinds == {
        Stage.EVALUATING_BASE: "Job",
        Stage.EXPLORING: training_kind,
        Stage.FILTERING: "Job",
        Stage.CONSOLIDATING: training_kind,
        Stage.EVALUATING: "Job",
    }


def test_every_launcher_is_found_by_its_kind_and_kinds_are_distinct() -> None:
    assert len({launcher.kind for launcher in LAUNCHERS}) == len(LAUNCHERS)
    for launcher in LAUNCHERS:
        assert launcher_of_kind(launcher.kind) is launcher
    assert launcher_of_kind("MPIJob") is None


def test_each_stage_is_found_by_its_slug() -> None:
    assert [stage_of_slug(info.slug) for info in STAGES] == [info.stage for info in STAGES]
    assert stage_of_slug("grpo") is None
    assert stage_info(Stage.FILTERING).record_field == "filter_job"


def test_a_trainjob_run_needs_its_runtime_once_and_a_pytorchjob_run_nothing() -> None:
    trainjob = parse_spec(spec_dict(resources={"launcher": "trainjob"}))
    [runtime] = prerequisites(trainjob, stages_of(trainjob))
    assert runtime.resource.kind == "ClusterTrainingRuntime" and not runtime.resource.namespaced
    assert runtime.resource.plural == "clustertrainingruntimes"
    assert runtime.name == "torch-distributed"
    pytorchjob = parse_spec(spec_dict())
    assert prerequisites(pytorchjob, stages_of(pytorchjob)) == ()


@pytest.mark.parametrize(
    ("kind", "selector"),
    [
        ("PyTorchJob", "training.kubeflow.org/job-name=demo-i00-rl"),
        ("TrainJob", "jobset.sigs.k8s.io/jobset-name=demo-i00-rl"),
        ("Job", "batch.kubernetes.io/job-name=demo-i00-rl"),
    ],
)
def test_each_launcher_finds_its_pods_by_the_labels_their_controllers_set(
    kind: str, selector: str
) -> None:
    launcher = launcher_of_kind(kind)
    assert launcher is not None
    assert launcher.pod_selector("demo-i00-rl") == selector
    assert f"-l {selector}" in launcher.logs_hint("ns", "demo-i00-rl")
