"""Children manifests: what lands on the cluster for each stage."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rloop_operator.api import parse_spec, parse_status
from rloop_operator.children import child_name
from rloop_operator.lifecycle import Stage
from rloop_operator.manifests import ManifestSettings, child_manifest, trainer_config
from rloop_operator.planning.actions import CreateChild
from rloop_operator.planning.inputs import RunView

from tests.unit.operator.world import spec_dict

SETTINGS = ManifestSettings(trainer_image="registry.local/rloop-trainer:test")


def run_of(name: str = "demo", **overrides: Any) -> RunView:
    return RunView(name, "team-a", "uid-9", 1, parse_spec(spec_dict(**overrides)), parse_status({}))


def manifest(stage: Stage, run: RunView | None = None, iteration: int = 0) -> dict[str, Any]:
    run = run or run_of()
    name = child_name(run.name, iteration, stage, 0)
    return child_manifest(run, CreateChild(name, iteration, stage), SETTINGS)


def master_pod(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]


def trainjob_pod_patch(job: dict[str, Any]) -> dict[str, Any]:
    """The pod template of our runtimePatches entry (replicated Job `node`)."""
    [patch] = job["spec"]["runtimePatches"]
    [node] = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert node["name"] == "node"
    pod: dict[str, Any] = node["template"]["spec"]["template"]
    return pod


def test_dapo_runs_as_a_pytorchjob_with_one_gpu_process_per_gpu() -> None:
    job = manifest(Stage.EXPLORING, run_of(resources={"nodes": 3, "gpusPerNode": 8}))
    assert job["apiVersion"] == "kubeflow.org/v1" and job["kind"] == "PyTorchJob"
    assert job["spec"]["nprocPerNode"] == "8"
    assert job["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 2
    container = master_pod(job)["spec"]["containers"][0]
    assert container["name"] == "pytorch"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 8
    assert container["image"] == SETTINGS.trainer_image
    assert container["command"][:5] == [
        "torchrun",
        "--no-python",
        "rloop-trainer",
        "dapo",
        "--config-json",
    ]


def test_single_node_jobs_have_no_workers() -> None:
    job = manifest(Stage.CONSOLIDATING)
    assert set(job["spec"]["pytorchReplicaSpecs"]) == {"Master"}


def test_the_operator_never_sets_run_policy_suspend() -> None:
    job = manifest(Stage.EXPLORING, run_of(resources={"queueName": "gpu-queue"}))
    assert "suspend" not in job["spec"]["runPolicy"]
    assert job["spec"]["runPolicy"]["backoffLimit"] == 0


def test_a_finished_pytorchjob_deletes_its_running_pods_and_keeps_the_failed_ones() -> None:
    # None would leave the workers of a failed attempt holding their GPUs during the retry.
    job = manifest(Stage.CONSOLIDATING, run_of(resources={"nodes": 2}))
    assert job["spec"]["runPolicy"]["cleanPodPolicy"] == "Running"


def test_training_pods_get_an_in_memory_dev_shm() -> None:
    pod = master_pod(manifest(Stage.EXPLORING, run_of(resources={"shmSize": "32Gi"})))["spec"]
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "32Gi"}
    mounts = pod["containers"][0]["volumeMounts"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in mounts


def test_s3_credentials_come_from_the_named_secret() -> None:
    run = run_of(
        storage={
            "uri": "s3://b/p",
            "endpoint": "http://minio:9000",
            "credentialsSecret": "creds",
            "region": "eu-west-1",
        }
    )
    env = master_pod(manifest(Stage.EXPLORING, run))["spec"]["containers"][0]["env"]
    by_name = {e["name"]: e for e in env}
    assert by_name["AWS_ACCESS_KEY_ID"]["valueFrom"] == {
        "secretKeyRef": {"name": "creds", "key": "AWS_ACCESS_KEY_ID"}
    }
    assert by_name["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "creds"
    assert by_name["AWS_ENDPOINT_URL"]["value"] == "http://minio:9000"
    assert by_name["AWS_DEFAULT_REGION"]["value"] == "eu-west-1"


def _pod_specs(job: dict[str, Any]) -> list[dict[str, Any]]:
    if job["kind"] == "Job":
        return [job["spec"]["template"]["spec"]]
    if job["kind"] == "TrainJob":
        return [trainjob_pod_patch(job)["spec"]]
    return [r["template"]["spec"] for r in job["spec"]["pytorchReplicaSpecs"].values()]


@pytest.mark.parametrize(("launcher", "pods"), [("pytorchjob", 7), ("trainjob", 5)])
def test_a_storage_volume_is_mounted_in_every_pod_of_every_stage(launcher: str, pods: int) -> None:
    run = run_of(
        resources={"nodes": 2, "launcher": launcher},
        data={"train": "s3://b/t", "validation": [{"name": "v", "uri": "s3://b/v"}]},
        storage={
            "uri": "file:///shared/rloop/run-1",
            "volume": {"claimName": "lustre-rw", "mountPath": "/shared"},
        },
    )
    specs = [pod for stage in list(Stage)[1:] for pod in _pod_specs(manifest(stage, run))]

    # PyTorchJob: master and worker templates; TrainJob: one patched template of `node`.
    assert len(specs) == pods
    for pod in specs:
        claim = {"name": "storage", "persistentVolumeClaim": {"claimName": "lustre-rw"}}
        assert claim in pod["volumes"]
        assert {"name": "storage", "mountPath": "/shared"} in pod["containers"][0]["volumeMounts"]


def test_without_a_storage_volume_no_claim_is_mounted() -> None:
    for stage in list(Stage)[1:]:
        for pod in _pod_specs(manifest(stage)):
            assert all("persistentVolumeClaim" not in v for v in pod["volumes"])


def test_scheduling_settings_reach_the_pods() -> None:
    run = run_of(
        resources={
            "nodeSelector": {"gpu": "h100"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
            "priorityClassName": "research",
        }
    )
    pod = master_pod(manifest(Stage.EXPLORING, run))["spec"]
    assert pod["nodeSelector"] == {"gpu": "h100"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    assert pod["priorityClassName"] == "research"


def test_queue_name_labels_every_child_for_kueue() -> None:
    run = run_of(
        resources={"queueName": "team-a-queue"},
        data={"train": "s3://b/t", "validation": [{"name": "v", "uri": "s3://b/v"}]},
    )
    for stage in Stage:
        if stage is Stage.NONE:
            continue
        assert manifest(stage, run)["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == (
            "team-a-queue"
        )


def test_children_are_labelled_and_owned_by_the_run() -> None:
    job = manifest(Stage.FILTERING, iteration=1)
    labels = job["metadata"]["labels"]
    assert labels["rloop.io/run"] == "demo"
    assert labels["rloop.io/iteration"] == "1"
    assert labels["rloop.io/stage"] == "filter"
    owner = job["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "RLoopRun" and owner["uid"] == "uid-9" and owner["controller"] is True
    assert job["metadata"]["name"] == "demo-i01-filter"


def test_filter_is_a_cpu_job_and_eval_a_one_gpu_job() -> None:
    run = run_of(data={"train": "s3://b/t", "validation": [{"name": "v", "uri": "s3://b/v"}]})
    filter_job = manifest(Stage.FILTERING, run)
    assert filter_job["apiVersion"] == "batch/v1"
    filter_container = filter_job["spec"]["template"]["spec"]["containers"][0]
    assert filter_container["command"][:2] == ["rloop-trainer", "filter"]
    assert "nvidia.com/gpu" not in filter_container["resources"]["limits"]
    eval_container = manifest(Stage.EVALUATING, run)["spec"]["template"]["spec"]["containers"][0]
    assert eval_container["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_the_filter_job_requests_the_cpu_and_memory_of_spec_filter() -> None:
    run = run_of(filter={"cpu": "500m", "memory": "3Gi"}, resources={"cpu": "32"})
    container = manifest(Stage.FILTERING, run)["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "3Gi", "ephemeral-storage": "10Gi"},
        "limits": {},
    }


def test_the_filter_job_requests_two_cpus_and_8gi_by_default() -> None:
    container = manifest(Stage.FILTERING)["spec"]["template"]["spec"]["containers"][0]
    requests = container["resources"]["requests"]
    assert (requests["cpu"], requests["memory"]) == ("2", "8Gi")


def test_phase_configs_wire_each_stage_to_the_previous_stage_outputs() -> None:
    run = run_of()
    root = "s3://bucket/rloop/team-a/demo/uid-9"
    dapo = trainer_config(run, 1, Stage.EXPLORING)
    filt = trainer_config(run, 1, Stage.FILTERING)
    rft = trainer_config(run, 1, Stage.CONSOLIDATING)
    assert dapo["policy_uri"] == f"{root}/iter-001/policy"
    assert filt["trajectories_uri"] == f"{dapo['output_uri']}/trajectories"
    assert rft["expert_uri"] == f"{filt['output_uri']}/data.parquet"
    assert rft["policy_uri"] == dapo["policy_uri"]  # RFT starts from theta_i, not the RL end point
    assert rft["output_uri"] == f"{root}/iter-002/policy"


def test_each_vanilla_window_resumes_the_one_before_with_the_runs_seed_and_schedule() -> None:
    run = run_of(mode="vanilla", iterations=3)
    root = "s3://bucket/rloop/team-a/demo/uid-9"
    windows = [trainer_config(run, k, Stage.EXPLORING) for k in range(3)]
    assert [w["steps"] for w in windows] == [10, 10, 10]
    assert [w["window"] for w in windows] == [
        {"first_step": 0, "run_steps": 30, "previous_uri": None},
        {"first_step": 10, "run_steps": 30, "previous_uri": f"{root}/iter-000/rl"},
        {"first_step": 20, "run_steps": 30, "previous_uri": f"{root}/iter-001/rl"},
    ]
    assert [w["policy_uri"] for w in windows[1:]] == [f"{root}/iter-000/rl/policy",
                                                      f"{root}/iter-001/rl/policy"]  # fmt: skip
    assert len({w["seed"] for w in windows}) == 1


def test_an_rloop_exploration_is_no_window() -> None:
    assert trainer_config(run_of(iterations=3), 1, Stage.EXPLORING)["window"] is None


def test_each_evaluation_lists_every_evaluation_so_far_for_the_run_analysis() -> None:
    run = run_of(data={"train": "s3://b/t", "validation": [{"name": "v", "uri": "s3://b/v"}]})
    root = "s3://bucket/rloop/team-a/demo/uid-9"

    config = trainer_config(run, 1, Stage.EVALUATING)

    analysis = config["analysis"]
    assert analysis["output_uri"] == f"{root}/analysis"
    assert analysis["evaluations"] == [
        {"label": "base", "iteration": 0, "rl_steps": 0, "eval_uri": f"{root}/base/eval"},
        {"label": "iter 1", "iteration": 1, "rl_steps": 10, "eval_uri": f"{root}/iter-000/eval"},
        {"label": "iter 2", "iteration": 2, "rl_steps": 20, "eval_uri": config["output_uri"]},
    ]
    assert analysis["dapo_metrics"] == [
        {"metrics_uri": f"{root}/iter-000/rl/metrics.jsonl", "first_step": 0},
        {"metrics_uri": f"{root}/iter-001/rl/metrics.jsonl", "first_step": 10},
    ]


def test_a_vanilla_evaluation_sits_after_its_windows_rl_steps() -> None:
    data = {"train": "s3://b/t", "validation": [{"name": "v", "uri": "s3://b/v"}]}

    config = trainer_config(run_of(mode="vanilla", iterations=3, data=data), 1, Stage.EVALUATING)

    assert [e["rl_steps"] for e in config["analysis"]["evaluations"]] == [0, 10, 20]
    # A window's metrics number the run's steps already.
    assert [s["first_step"] for s in config["analysis"]["dapo_metrics"]] == [0, 0]


def test_the_base_evaluation_evaluates_the_base_model_first_in_the_analysis() -> None:
    data = {"train": "s3://b/t", "validation": [{"name": "v", "uri": "s3://b/v"}]}
    root = "s3://bucket/rloop/team-a/demo/uid-9"

    config = trainer_config(run_of(data=data), 0, Stage.EVALUATING_BASE)

    assert config["policy_uri"] == "s3://bucket/models/base"
    assert (config["output_uri"], config["report_uri"]) == (
        f"{root}/base/eval", f"{root}/base/eval/report.json"
    )  # fmt: skip
    assert config["analysis"]["evaluations"] == [
        {"label": "base", "iteration": 0, "rl_steps": 0, "eval_uri": f"{root}/base/eval"}
    ]
    assert config["analysis"]["dapo_metrics"] == []


def test_the_command_carries_the_phase_config() -> None:
    command = master_pod(manifest(Stage.EXPLORING))["spec"]["containers"][0]["command"]
    assert json.loads(command[-1]) == trainer_config(run_of(), 0, Stage.EXPLORING)


def trainjob_run(**resources: Any) -> RunView:
    return run_of(resources={"launcher": "trainjob", **resources})


def test_dapo_on_trainjob_runs_the_phase_command_on_the_torch_runtime() -> None:
    job = manifest(Stage.EXPLORING, trainjob_run(nodes=2, gpusPerNode=8))
    assert job["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and job["kind"] == "TrainJob"
    assert job["spec"]["runtimeRef"] == {
        "apiGroup": "trainer.kubeflow.org",
        "kind": "ClusterTrainingRuntime",
        "name": "torch-distributed",
    }
    trainer = job["spec"]["trainer"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (2, 8)
    assert trainer["resourcesPerNode"] == {
        "requests": {"cpu": "16", "memory": "128Gi", "ephemeral-storage": "100Gi"},
        "limits": {"cpu": "16", "memory": "128Gi", "nvidia.com/gpu": 8},
    }
    assert trainer["image"] == SETTINGS.trainer_image
    assert trainer["command"][:4] == ["torchrun", "--no-python", "rloop-trainer", "dapo"]
    assert json.loads(trainer["command"][-1]) == trainer_config(trainjob_run(), 0, Stage.EXPLORING)


def test_trainjob_env_carries_the_store_settings_and_no_torchrun_reserved_names() -> None:
    env = manifest(Stage.CONSOLIDATING, trainjob_run())["spec"]["trainer"]["env"]
    by_name = {var["name"]: var for var in env}
    assert by_name["AWS_ACCESS_KEY_ID"]["valueFrom"] == {
        "secretKeyRef": {"name": "s3-creds", "key": "AWS_ACCESS_KEY_ID"}
    }
    assert by_name["TMPDIR"]["value"] == "/scratch"
    # The Trainer's webhook refuses these in trainer.env; its torch plugin sets them.
    assert not [name for name in by_name if name.startswith("PET_")]


def test_a_cpu_trainjob_runs_one_process_per_node() -> None:
    # numProcPerNode left out would be "auto": one process per requested CPU.
    trainer = manifest(Stage.EXPLORING, trainjob_run(gpusPerNode=0, cpu="8"))["spec"]["trainer"]
    assert trainer["numProcPerNode"] == 1
    assert "nvidia.com/gpu" not in trainer["resourcesPerNode"]["limits"]


def test_trainjob_pod_settings_go_through_our_own_runtime_patch() -> None:
    run = trainjob_run(
        shmSize="32Gi",
        nodeSelector={"gpu": "h100"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists"}],
    )
    job = manifest(Stage.EXPLORING, run)
    [patch] = job["spec"]["runtimePatches"]
    assert patch["manager"] == "rloop.io/operator"
    pod = trainjob_pod_patch(job)
    assert pod["metadata"]["labels"]["rloop.io/run"] == "demo"
    assert pod["metadata"]["labels"]["rloop.io/stage"] == "rl"
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"gpu": "h100"}
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    shm = next(v for v in spec["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "32Gi"}
    [container] = spec["containers"]
    assert container["name"] == "node"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert {"name": "scratch", "mountPath": "/scratch"} in container["volumeMounts"]
    # Env goes through trainer.env: the Trainer refuses env in a patch of container `node`.
    assert "env" not in container


def test_trainjob_leaves_suspend_to_kueue_and_carries_its_queue_label() -> None:
    job = manifest(Stage.EXPLORING, trainjob_run(queueName="gpu-queue"))
    assert "suspend" not in job["spec"]
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert "kueue.x-k8s.io/queue-name" not in trainjob_pod_patch(job)["metadata"]["labels"]


def test_a_trainjob_can_name_a_namespaced_runtime() -> None:
    run = trainjob_run(runtimeRef={"name": "rloop-torch", "kind": "TrainingRuntime"})
    ref = manifest(Stage.CONSOLIDATING, run)["spec"]["runtimeRef"]
    assert (ref["kind"], ref["name"]) == ("TrainingRuntime", "rloop-torch")


def test_with_the_trainjob_launcher_filter_and_eval_stay_batch_jobs() -> None:
    run = run_of(
        resources={"launcher": "trainjob"},
        data={"train": "s3://b/t", "validation": [{"name": "v", "uri": "s3://b/v"}]},
    )
    kinds = {stage: manifest(stage, run)["kind"] for stage in list(Stage)[1:]}
    assert kinds == {
        Stage.EVALUATING_BASE: "Job",
        Stage.EXPLORING: "TrainJob",
        Stage.FILTERING: "Job",
        Stage.CONSOLIDATING: "TrainJob",
        Stage.EVALUATING: "Job",
    }


def test_child_pods_carry_the_run_labels_but_not_the_queue_label() -> None:
    # Kueue admits the child object; a queue label on its pods would make Kueue's pod
    # integration (when enabled) queue each pod a second time.
    job = manifest(Stage.FILTERING, run_of(resources={"queueName": "q"}))
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["rloop.io/run"] == "demo" and "kueue.x-k8s.io/queue-name" not in labels


@pytest.mark.parametrize("launcher", ["pytorchjob", "trainjob"])
def test_torchrun_takes_its_rendezvous_from_the_env_both_kubeflow_launchers_set(
    launcher: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torch.distributed.run import get_args_parser

    # What the training operator and Trainer's torch plugin set on every node's pod.
    rendezvous = {
        "PET_NNODES": "2",
        "PET_NPROC_PER_NODE": "8",
        "PET_NODE_RANK": "1",
        "PET_MASTER_ADDR": "demo-i00-rl-node-0-0.demo-i00-rl",
        "PET_MASTER_PORT": "29500",
    }
    for name, value in rendezvous.items():
        monkeypatch.setenv(name, value)
    job = manifest(Stage.EXPLORING, run_of(resources={"launcher": launcher, "nodes": 2}))
    if launcher == "trainjob":
        command = job["spec"]["trainer"]["command"]
    else:
        command = master_pod(job)["spec"]["containers"][0]["command"]
    assert command[0] == "torchrun"
    args = get_args_parser().parse_args(command[1:])
    assert (args.nnodes, args.nproc_per_node, args.node_rank) == ("2", "8", 1)
    assert (args.master_addr, args.master_port) == ("demo-i00-rl-node-0-0.demo-i00-rl", 29500)
    assert (args.no_python, args.training_script) == (True, "rloop-trainer")
