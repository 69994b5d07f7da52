"""Which runs a child's event concerns."""

from __future__ import annotations

from rloop_operator.child_watch import owning_runs


def test_a_child_concerns_the_runs_that_own_it() -> None:
    child = {
        "metadata": {
            "namespace": "team-a",
            "ownerReferences": [
                {"apiVersion": "rloop.io/v1alpha1", "kind": "RLoopRun", "name": "qwen"},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "other"},
                {"apiVersion": "example.com/v1", "kind": "RLoopRun", "name": "lookalike"},
            ],
        }
    }
    assert owning_runs(child) == [("team-a", "qwen")]


def test_a_child_without_owners_concerns_no_run() -> None:
    assert owning_runs({"metadata": {"namespace": "ns"}}) == []


def test_a_phase_pod_concerns_the_run_its_label_names() -> None:
    pod = {
        "metadata": {
            "namespace": "team-a",
            "labels": {"rloop.io/run": "qwen", "jobset.sigs.k8s.io/jobset-name": "qwen-i00-rl"},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "qwen-i00-rl"}],
        }
    }
    assert owning_runs(pod) == [("team-a", "qwen")]
