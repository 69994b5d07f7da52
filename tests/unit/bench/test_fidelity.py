"""The replication's arms are the protocol's (bench/fidelity.md): specs the operator
accepts, with the settings each arm changes and no other."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest
from rloop_operator.api import parse_spec

BENCH = Path(__file__).resolve().parents[3] / "bench"


@pytest.fixture
def compare(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))  # the bench's modules import each other by name
    return importlib.import_module("fidelity_compare")


def test_each_arm_is_a_valid_run_that_changes_only_its_own_setting(
    compare: ModuleType, tmp_path: Path
) -> None:
    budget = importlib.import_module("fidelity_task").Budget()
    specs = {
        arm.name: parse_spec(compare.arm_document(tmp_path, arm, 3, budget)["spec"])
        for arm in compare.ARMS
    }

    rloop = specs["rloop"]
    assert (rloop.mode, rloop.iterations, rloop.seed) == ("rloop", 3, 3)
    assert rloop.filter.hard_threshold == 0.1
    assert specs["threshold-1"].filter.hard_threshold == 1.0
    assert specs["threshold-1"].model_copy(update={"filter": rloop.filter}) == rloop
    assert specs["rft-from-rl"] == rloop  # its change is the RFT phase's starting policy
    assert specs["vanilla"].mode == "vanilla"
    assert specs["vanilla"].model_copy(update={"mode": "rloop"}) == rloop
    assert [v.samples for v in rloop.data.validation] == [32, 32]


def test_vanilla_updates_takes_rloops_rft_updates_as_extra_rl_steps(compare: ModuleType) -> None:
    budget = importlib.import_module("fidelity_task").Budget()

    # 13 RFT updates at 2 updates a step: 7 more steps, spread over 3 windows: 3 a window
    assert compare.matched_steps(budget, {"rl_updates": 120, "rft_updates": 13}) == 23
    assert compare.matched_steps(budget, {"rl_updates": 120, "rft_updates": 0}) == 20
