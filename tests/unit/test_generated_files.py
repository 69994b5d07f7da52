"""The files derived from the code are what the code derives today: the CRD and its chart
copy from the API's models and the chart's RBAC rules from the launchers
(hack/generate_api.py), the README's values table from the chart (hack/values_table.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rloop_operator.launchers import TRAINING_LAUNCHERS

ROOT = Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((ROOT / "crds" / "rlooprun.yaml").read_text())
SPEC = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


@pytest.mark.parametrize("generator", ["generate_api.py", "values_table.py"])
def test_the_checked_in_files_are_what_their_generator_writes(generator: str) -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "hack" / generator), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_crds_launcher_enum_is_the_registrys() -> None:
    launcher = SPEC["properties"]["resources"]["properties"]["launcher"]
    assert launcher["enum"] == list(TRAINING_LAUNCHERS)
