"""hack/requirement.py prints pyproject.toml's own requirement for one package, which the
Makefile installs ahead of the rest (DeepSpeed, whose build imports torch)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def requirement(name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "hack" / "requirement.py"), name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_name_gives_its_declared_range_not_one_whose_name_it_begins() -> None:
    # The trainer extra declares mlflow-skinny before the dev extra declares mlflow.
    assert requirement("mlflow").stdout == "mlflow>=3,<4\n"
    assert requirement("MLflow-Skinny").stdout == "mlflow-skinny>=3,<4\n"


def test_an_undeclared_name_fails_and_says_which() -> None:
    result = requirement("deepspeedx")
    assert result.returncode != 0
    assert "no requirement named 'deepspeedx'" in result.stderr
