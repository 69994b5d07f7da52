"""plan(): every decision of the operator, without a cluster."""

from __future__ import annotations

from dataclasses import replace

import pytest
from rloop_operator.api import SpecError, parse_spec
from rloop_operator.lifecycle import Phase, Stage
from rloop_operator.planning.actions import CreateChild, DeleteChild, EmitEvent
from rloop_operator.planning.inputs import Observed, RunView
from rloop_operator.planning.plan import plan
from rloop_operator.stage_reports import StageReport
from rloop_operator.stages import prerequisites

from tests.unit.operator.world import FILTER_REPORT, World

pytestmark = pytest.mark.filterwarnings("error")


def test_a_new_run_starts_exploring_from_the_base_model() -> None:
    world = World()
    result = world.step()
    assert result.actions[0] == CreateChild("demo-i00-rl", 0, Stage.EXPLORING)
    assert world.status.phase is Phase.RUNNING
    assert world.status.stage is Stage.EXPLORING
    assert world.status.progress == "0/2"
    assert world.status.policy == "s3://bucket/models/base"
    assert world.status.iterations[0].rl_job == "demo-i00-rl"


def test_each_iteration_explores_filters_then_consolidates() -> None:
    children = World().run_to_end()
    assert children == [
        "demo-i00-rl",
        "demo-i00-filter",
        "demo-i00-rft",
        "demo-i01-rl",
        "demo-i01-filter",
        "demo-i01-rft",
    ]


def test_iteration_counter_advances_after_consolidation_and_never_goes_back() -> None:
    world = World()
    world.step()
    seen = []
    while not world.status.phase.is_terminal:
        seen.append((world.status.iteration, world.status.stage))
        world.finish(world.active())
        world.step()
    assert seen == [
        (0, Stage.EXPLORING),
        (0, Stage.FILTERING),
        (0, Stage.CONSOLIDATING),
        (1, Stage.EXPLORING),
        (1, Stage.FILTERING),
        (1, Stage.CONSOLIDATING),
    ]
    assert world.status.phase is Phase.SUCCEEDED
    assert world.status.progress == "2/2"


def test_next_policy_is_the_rft_output_and_rft_starts_from_the_iteration_start() -> None:
    world = World()
    world.run_to_end()
    root = "s3://bucket/rloop/ns/demo/uid-1"
    assert [r.policy for r in world.status.iterations] == [
        f"{root}/iter-001/policy",
        f"{root}/iter-002/policy",
    ]
    assert world.status.policy == f"{root}/iter-002/policy"


def test_filter_report_lands_in_the_iteration_record_and_the_expert_column() -> None:
    world = World()
    world.reports["demo-i00-filter"] = replace(FILTER_REPORT, expert_samples=7)
    world.run_to_end()
    assert world.status.iterations[0].expert_samples == 7
    assert world.status.iterations[0].hard_prompts == 12
    assert world.status.iterations[0].trajectories == 640


def test_an_unreadable_report_warns_and_the_run_goes_on() -> None:
    world = World()
    world.reports["demo-i00-filter"] = StageReport(error="cannot read s3://x: NoSuchKey")
    world.run_to_end()
    assert world.status.phase is Phase.SUCCEEDED
    assert world.status.iterations[0].expert_samples is None
    assert any(e.reason == "ReportUnavailable" and "NoSuchKey" in e.message for e in world.events)


def test_an_incomplete_report_is_recorded_and_says_what_it_lacks() -> None:
    world = World()
    world.reports["demo-i00-filter"] = replace(FILTER_REPORT, incomplete="the metrics of x")
    world.run_to_end()
    assert world.status.iterations[0].expert_samples == FILTER_REPORT.expert_samples
    [event] = [e for e in world.events if e.reason == "ReportIncomplete"]
    assert event.type == "Warning" and event.message == "demo-i00-filter: the metrics of x"


HELDOUT_DATA = {
    "train": "s3://bucket/data/train.parquet",
    "validation": [{"name": "heldout", "uri": "s3://bucket/data/heldout.parquet"}],
}


def test_validation_sets_add_an_evaluation_stage_whose_metrics_are_recorded() -> None:
    world = World(data=HELDOUT_DATA)
    children = world.run_to_end()
    assert children[:5] == [
        "demo-i00-base", "demo-i00-rl", "demo-i00-filter", "demo-i00-rft", "demo-i00-eval"
    ]  # fmt: skip
    assert children[5] == "demo-i01-rl", "only iteration 0 evaluates the base policy"
    assert world.status.iterations[1].metrics == {"heldout/avg@8": 0.25, "heldout/pass@8": 0.5}
    assert world.status.base_metrics == {"heldout/avg@8": 0.25, "heldout/pass@8": 0.5}
    assert world.status.iterations[0].base_eval_job == "demo-i00-base"


def test_the_last_dapo_phases_score_is_recorded_for_its_iteration_and_the_run() -> None:
    world = World()
    world.reports["demo-i01-rl"] = StageReport(train_score=0.5)
    world.run_to_end()
    assert [record.train_score for record in world.status.iterations] == [0.375, 0.5]
    assert world.status.train_score == 0.5


def test_vanilla_mode_is_one_window_of_one_dapo_run_per_iteration() -> None:
    world = World(mode="vanilla", iterations=3)
    children = world.run_to_end()
    assert children == ["demo-i00-rl", "demo-i01-rl", "demo-i02-rl"]
    assert world.status.phase is Phase.SUCCEEDED
    assert world.status.progress == "3/3"
    assert world.status.policy == "s3://bucket/rloop/ns/demo/uid-1/iter-002/rl/policy"


def test_vanilla_windows_are_each_evaluated_after_the_base_policy() -> None:
    world = World(mode="vanilla", iterations=2, data=HELDOUT_DATA)
    children = world.run_to_end()
    assert children == ["demo-i00-base", "demo-i00-rl", "demo-i00-eval", "demo-i01-rl",
                        "demo-i01-eval"]  # fmt: skip


def test_same_inputs_give_the_same_plan() -> None:
    world = World()
    world.step()
    world.finish("demo-i00-rl")
    assert world.plan_once() == world.plan_once()


def test_restart_at_every_stage_never_creates_a_second_child() -> None:
    """An operator that crashed after creating a child but before writing the status
    sees the child and adopts it; one that crashed before creating it creates the
    same name again (a 409 if the create had gone through)."""
    world = World()
    world.step()
    while not world.status.phase.is_terminal:
        active = world.active()
        before = world.status
        # Crash before the status patch: the old status, the child already there.
        world.status = before.model_copy(update={"active_child": None})
        replay = world.plan_once()
        assert not [a for a in replay.actions if isinstance(a, CreateChild) and a.name != active]
        # Crash before the create: the child is not there yet.
        hidden = world.children.pop(active)
        again = [a.name for a in world.plan_once().actions if isinstance(a, CreateChild)]
        assert again == [active]
        world.children[active] = hidden
        world.status = before
        world.finish(active)
        world.step()
    assert len(world.children) == 6


def test_a_failed_child_is_retried_after_a_backoff_under_a_new_name() -> None:
    world = World()
    world.step()
    world.finish("demo-i00-rl", ok=False, message="OOMKilled")
    result = world.step()
    assert not [a for a in result.actions if isinstance(a, CreateChild)]
    assert any(e.reason == "Retrying" and "OOMKilled" in e.message for e in world.events)
    assert result.requeue_after == pytest.approx(10)
    world.advance_clock(5)
    assert not [a for a in world.step().actions if isinstance(a, CreateChild)]
    world.advance_clock(5)
    created = [a.name for a in world.step().actions if isinstance(a, CreateChild)]
    assert created == ["demo-i00-rl-r1"]
    assert world.status.iterations[0].failed_jobs == ("demo-i00-rl",)


def test_backoff_doubles_with_each_failure_up_to_the_cap() -> None:
    world = World(maxRetries=5)
    world.step()
    waits = []
    for _ in range(4):
        world.finish(world.active(), ok=False)
        waits.append(world.step().requeue_after)
        world.advance_clock(1000)
        world.step()
    assert waits == [10, 20, 40, 60]


def test_a_stage_that_keeps_failing_fails_the_run_naming_the_child_and_cause() -> None:
    world = World(maxRetries=1)
    world.step()
    world.finish("demo-i00-rl", ok=False, message="CUDA error: out of memory")
    world.step()
    world.advance_clock(60)
    world.step()
    world.finish("demo-i00-rl-r1", ok=False, message="CUDA error: out of memory")
    world.step()
    assert world.status.phase is Phase.FAILED
    assert world.status.reason == "StageFailed"
    assert "demo-i00-rl-r1" in (world.status.message or "")
    assert "CUDA error: out of memory" in (world.status.message or "")
    assert "kubectl logs" in (world.status.message or "")
    failed = next(c for c in world.status.conditions if c.type == "Failed")
    assert failed.status == "True"
    assert world.plan_once().actions == ()


def test_a_permanent_failure_fails_the_run_at_once_with_the_trainers_own_line() -> None:
    world = World(maxRetries=3)
    world.step()
    line = "rloop-trainer dapo: s3://bucket/data/train.parquet does not exist; check the URI"
    world.children["demo-i00-rl"] = replace(
        world.children["demo-i00-rl"],
        phase=Phase.FAILED,
        finished_at=world.now,
        reason="InvalidInput",
        message=line,
        permanent=True,
    )

    result = world.step()

    assert world.status.phase is Phase.FAILED
    assert (world.status.reason, world.status.message) == ("InvalidInput", line)
    assert not [a for a in result.actions if isinstance(a, CreateChild)]
    assert world.status.iterations[0].failed_jobs == ("demo-i00-rl",)
    world.advance_clock(3600)
    assert not [a for a in world.step().actions if isinstance(a, CreateChild)]


def test_suspend_deletes_the_running_child_and_keeps_the_stage() -> None:
    world = World()
    world.step()
    world.finish("demo-i00-rl")
    world.step()
    world.spec["suspend"] = True
    result = world.step()
    assert DeleteChild("demo-i00-filter", world.children["demo-i00-filter"].kind) in result.actions
    assert world.status.phase is Phase.SUSPENDED
    assert world.status.stage is Stage.FILTERING
    del world.children["demo-i00-filter"]  # the API server finished deleting it
    assert not [a for a in world.step().actions if isinstance(a, CreateChild)]


def test_resume_recreates_the_same_stage() -> None:
    world = World(suspend=True)
    world.step()
    assert world.status.phase is Phase.SUSPENDED
    assert world.children == {}
    world.spec["suspend"] = False
    created = [a for a in world.step().actions if isinstance(a, CreateChild)]
    assert created == [CreateChild("demo-i00-rl", 0, Stage.EXPLORING)]
    assert world.status.phase is Phase.RUNNING
    assert any(e.message.startswith("resumed") for e in world.events)


def test_a_child_still_being_deleted_is_waited_for() -> None:
    world = World()
    world.step()
    world.children["demo-i00-rl"] = replace(world.children["demo-i00-rl"], deleting=True)
    result = world.step()
    assert result.requeue_after == 2.0
    assert not [a for a in result.actions if isinstance(a, CreateChild)]


def test_a_missing_object_blocks_with_a_condition_then_recovers() -> None:
    world = World()
    world.unserved_kinds = frozenset({"PyTorchJob"})
    result = world.step()
    assert result.actions and all(isinstance(a, EmitEvent) for a in result.actions)
    assert world.status.phase is Phase.PENDING
    blocked = next(c for c in world.status.conditions if c.type == "Blocked")
    assert blocked.status == "True" and "PyTorchJob" in blocked.message
    assert result.requeue_after == 30
    world.unserved_kinds = frozenset()
    assert [a.name for a in world.step().actions if isinstance(a, CreateChild)] == ["demo-i00-rl"]
    blocked = next(c for c in world.status.conditions if c.type == "Blocked")
    assert blocked.status == "False"


def test_a_missing_volume_claim_blocks_until_it_exists_and_says_which_one() -> None:
    volume = {"claimName": "lustre-rw", "mountPath": "/shared"}
    world = World(storage={"uri": "file:///shared/rloop", "volume": volume})
    world.missing_claim = "lustre-rw"

    result = world.step()

    assert world.status.phase is Phase.PENDING
    assert "PersistentVolumeClaim 'lustre-rw'" in (world.status.message or "")
    assert [a.reason for a in result.actions if isinstance(a, EmitEvent)] == [
        "PersistentVolumeClaimNotFound"
    ]
    assert not [a for a in result.actions if isinstance(a, CreateChild)]
    world.missing_claim = None
    assert [a.name for a in world.step().actions if isinstance(a, CreateChild)] == ["demo-i00-rl"]


def test_a_second_missing_object_gets_its_own_event() -> None:
    world = World(storage={"uri": "file:///shared/rloop", "volume": {
        "claimName": "lustre-rw", "mountPath": "/shared"}})  # fmt: skip
    world.unserved_kinds = frozenset({"PyTorchJob"})
    world.step()
    world.unserved_kinds, world.missing_claim = frozenset(), "lustre-rw"

    events = [a.reason for a in world.step().actions if isinstance(a, EmitEvent)]

    assert events == ["PersistentVolumeClaimNotFound"]


def test_an_invalid_spec_fails_fast_with_the_field_in_the_message() -> None:
    world = World()
    run = RunView("demo", "ns", "uid", 1, SpecError("spec.iterations: must be >= 1"), world.status)
    result = plan(run, Observed(), world.now)
    assert result.status.phase is Phase.FAILED
    assert result.status.reason == "InvalidSpec"
    assert "spec.iterations" in (result.status.message or "")
    assert not [a for a in result.actions if isinstance(a, CreateChild)]


def test_vllm_without_gpus_is_rejected_with_the_fix() -> None:
    world = World(dapo={"engine": "vllm"}, resources={"gpusPerNode": 0})
    world.step()
    assert world.status.phase is Phase.FAILED
    assert "spec.resources.gpusPerNode" in (world.status.message or "")


def test_conditions_keep_their_transition_time_when_nothing_changes() -> None:
    world = World()
    world.step()
    first = world.status.conditions
    world.advance_clock(30)
    world.step()
    assert world.status.conditions == first


def test_a_finished_child_is_recorded_even_when_the_run_is_suspended() -> None:
    world = World()
    world.step()
    world.finish("demo-i00-rl")
    world.spec["suspend"] = True
    world.step()
    assert world.status.stage is Stage.FILTERING
    assert world.status.phase is Phase.SUSPENDED
    assert world.children["demo-i00-rl"].phase is Phase.SUCCEEDED


def test_the_expert_column_shows_the_last_filter_count_after_evaluation() -> None:
    world = World(
        data={
            "train": "s3://bucket/data/train.parquet",
            "validation": [{"name": "heldout", "uri": "s3://bucket/data/heldout.parquet"}],
        }
    )
    world.reports["demo-i01-filter"] = replace(FILTER_REPORT, expert_samples=5)
    world.run_to_end()
    assert world.status.expert_samples == 5
    assert world.status.iterations[1].metrics  # the eval report did not wipe the counts
    assert world.status.iterations[1].expert_samples == 5


def test_a_trainjob_run_waits_for_its_missing_runtime_then_starts() -> None:
    world = World(resources={"launcher": "trainjob", "runtimeRef": {"name": "rloop-torch"}})
    world.missing_prerequisites = prerequisites(parse_spec(world.spec), (Stage.EXPLORING,))
    result = world.step()
    assert not [a for a in result.actions if isinstance(a, CreateChild)]
    assert (world.status.phase, world.status.reason) == (
        Phase.PENDING,
        "ClusterTrainingRuntimeNotFound",
    )
    blocked = next(c for c in world.status.conditions if c.type == "Blocked")
    assert (blocked.status, blocked.reason) == ("True", "ClusterTrainingRuntimeNotFound")
    assert "ClusterTrainingRuntime 'rloop-torch' named by spec.resources.runtimeRef" in (
        blocked.message
    )
    assert [e.reason for e in world.events] == ["ClusterTrainingRuntimeNotFound"]
    world.missing_prerequisites = ()
    created = [a for a in world.step().actions if isinstance(a, CreateChild)]
    assert created == [CreateChild("demo-i00-rl", 0, Stage.EXPLORING)]
    assert any(e.message.startswith("created TrainJob demo-i00-rl") for e in world.events)


def test_a_namespaced_runtime_is_looked_for_in_the_runs_namespace() -> None:
    world = World(
        resources={
            "launcher": "trainjob",
            "runtimeRef": {"name": "mine", "kind": "TrainingRuntime"},
        }
    )
    world.missing_prerequisites = prerequisites(parse_spec(world.spec), (Stage.EXPLORING,))
    world.step()
    named = "TrainingRuntime 'mine' named by spec.resources.runtimeRef"
    assert f"{named} does not exist in namespace ns" in (world.status.message or "")


def test_a_run_whose_launcher_the_cluster_lacks_is_blocked_saying_what_to_install() -> None:
    world = World()
    world.unserved_kinds = frozenset({"PyTorchJob"})
    world.step()
    assert (world.status.phase, world.status.reason) == (Phase.PENDING, "LauncherNotInstalled")
    blocked = next(c for c in world.status.conditions if c.type == "Blocked")
    assert (blocked.status, blocked.reason) == ("True", "LauncherNotInstalled")
    assert "does not serve PyTorchJob (kubeflow.org/v1)" in (world.status.message or "")
    assert "spec.resources.launcher: trainjob" in (world.status.message or "")


def test_a_kind_the_run_does_not_use_may_be_missing() -> None:
    # A cluster with only Kubeflow Trainer v2: no PyTorchJob CRD.
    world = World(resources={"launcher": "trainjob"})
    world.unserved_kinds = frozenset({"PyTorchJob"})
    assert [a.name for a in world.step().actions if isinstance(a, CreateChild)] == ["demo-i00-rl"]


def test_a_failed_trainjob_points_at_its_pods_by_their_jobset_label() -> None:
    world = World(maxRetries=0, resources={"launcher": "trainjob"})
    world.step()
    world.finish("demo-i00-rl", ok=False, message="jobset failed due to one or more job failures")
    world.step()
    assert world.status.phase is Phase.FAILED
    assert "TrainJob demo-i00-rl failed" in (world.status.message or "")
    assert "kubectl logs -n ns -l jobset.sigs.k8s.io/jobset-name=demo-i00-rl" in (
        world.status.message or ""
    )
