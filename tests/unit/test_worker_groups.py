"""`make test` runs two pytest-xdist workers with --dist loadgroup, and tests/conftest.py puts
each file's tests in one group (its module fixtures built once; every full-mode test in one
group, one full cluster a session). The groups must really hold: with pytest 9.2 and
pytest-xdist 3.8 they were silently ignored, and with the conftest's hook running after
xdist's they were too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RECORDING_TESTS = """
import os
import pytest

@pytest.mark.parametrize("n", range(8))
def test_records_its_worker(n: int) -> None:
    with open("workers.txt", "a") as out:
        out.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")
"""


def test_one_files_tests_run_on_one_of_two_workers(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_collection_modifyitems  # noqa: F401\n"
    )
    (tmp_path / "test_recording.py").write_text(RECORDING_TESTS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup",
         "-p", "no:cacheprovider", "test_recording.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    workers = (tmp_path / "workers.txt").read_text().split()
    assert len(workers) == 8
    assert len(set(workers)) == 1, f"one file's tests ran on {sorted(set(workers))}"
