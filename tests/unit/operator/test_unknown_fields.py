"""Fields of a newer CRD: ignored in a cluster, with one event; refused by `rloop run`."""

from __future__ import annotations

import pytest
from rloop_operator.api import SpecError, parse_spec
from rloop_operator.unknown_fields import parse_cluster_spec

from tests.unit.operator.world import World, spec_dict

NEWER = spec_dict(
    dapo={"steps": 10, "kl": {"coef": 0.01}},
    data={
        "train": "s3://bucket/data/train.parquet",
        "validation": [{"name": "aime", "uri": "s3://bucket/aime.parquet", "weight": 2}],
    },
    priority="high",
)


def test_a_cluster_spec_drops_unknown_fields_at_any_depth_and_names_them() -> None:
    spec, ignored = parse_cluster_spec(NEWER)
    assert ignored == ("spec.dapo.kl", "spec.data.validation[0].weight", "spec.priority")
    assert spec.dapo.steps == 10
    assert spec.data.validation[0].name == "aime"


def test_free_form_fields_are_not_unknown() -> None:
    tolerations = [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    raw = spec_dict(resources={"nodeSelector": {"pool": "a100"}, "tolerations": tolerations})
    assert parse_cluster_spec(raw)[1] == ()


def test_a_local_spec_refuses_the_same_fields_as_typos() -> None:
    with pytest.raises(SpecError, match=r"spec\.priority: unknown field"):
        parse_spec(NEWER)


def test_a_run_with_fields_of_a_newer_crd_runs_and_says_so_once() -> None:
    world = World()
    world.spec = NEWER

    first = world.step()

    assert [a.name for a in first.actions if hasattr(a, "stage")] == ["demo-i00-base"]
    assert world.status.ignored_fields == ignored_paths()
    [event] = [e for e in world.events if e.reason == "UnknownFieldsIgnored"]
    assert event.type == "Warning" and "spec.dapo.kl" in event.message
    world.step()
    assert len([e for e in world.events if e.reason == "UnknownFieldsIgnored"]) == 1


def ignored_paths() -> tuple[str, ...]:
    return parse_cluster_spec(NEWER)[1]
