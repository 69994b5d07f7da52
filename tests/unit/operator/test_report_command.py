"""How `rloop report` finds a run's store prefix, and what it must not import."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rloop_operator.report_command import ReportError, resolve_run


def test_a_store_uri_is_the_prefix_itself() -> None:
    assert resolve_run("s3://bucket/rloop/ns/run/uid/") == ("s3://bucket/rloop/ns/run/uid", None)


def test_a_directory_is_a_file_store_prefix(tmp_path: Path) -> None:
    assert resolve_run(str(tmp_path)) == (f"file://{tmp_path}", None)


def test_a_run_yaml_gives_the_prefix_the_operator_would_use(tmp_path: Path) -> None:
    run_file = tmp_path / "run.yaml"
    spec = {
        "model": {"base": "s3://b/m"},
        "data": {"train": "s3://b/t.parquet"},
        "storage": {"uri": "s3://b/rloop/", "endpoint": "http://127.0.0.1:9"},
    }
    document = {"kind": "RLoopRun", "metadata": {"name": "tiny", "namespace": "ml"}, "spec": spec}
    run_file.write_text(yaml.safe_dump(document))

    assert resolve_run(str(run_file)) == ("s3://b/rloop/ml/tiny/local", "http://127.0.0.1:9")


def test_anything_else_is_refused_saying_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=re.escape("<storage.uri>/<namespace>/<name>/<uid>")):
        resolve_run(str(tmp_path / "missing"))


def test_the_command_line_imports_neither_torch_nor_the_trainer() -> None:
    probe = (
        "import sys, rloop_operator.cli; "
        "print(sorted({'torch', 'rloop_trainer'} & {m.split('.')[0] for m in sys.modules}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
