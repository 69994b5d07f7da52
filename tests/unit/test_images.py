"""The operator and trainer images. No container engine here: lint the Dockerfiles, check
what they install and run against the project, and resolve the trainer's pinned set."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_DOCKERFILE = ROOT / "operator" / "Dockerfile"
TRAINER_DOCKERFILE = ROOT / "trainer_image" / "Dockerfile"
TRAINER_REQUIREMENTS = ROOT / "trainer_image" / "requirements.txt"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in dockerfile.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    return [(text.split(" ", 1)[0], text.split(" ", 1)[1]) for text in logical]


def arguments_of(dockerfile: Path, name: str) -> list[str]:
    return [arguments for instruction, arguments in instructions(dockerfile) if instruction == name]


def pins() -> dict[str, str]:
    """Package name -> pinned version, from the trainer's requirements file."""
    pinned: dict[str, str] = {}
    for line in TRAINER_REQUIREMENTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pinned[name.strip().lower()] = version.strip()
    return pinned


@pytest.mark.parametrize("dockerfile", [OPERATOR_DOCKERFILE, TRAINER_DOCKERFILE], ids=str)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    lint = subprocess.run(
        [str(hadolint), "--no-color", str(dockerfile)], capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.parametrize("dockerfile", [OPERATOR_DOCKERFILE, TRAINER_DOCKERFILE], ids=str)
def test_image_runs_as_a_numeric_non_root_user(dockerfile: Path) -> None:
    user = arguments_of(dockerfile, "USER")[-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and gid.isdigit(), "numeric, so that runAsNonRoot can be verified"
    assert int(uid) != 0 and int(gid) != 0


def test_operator_image_installs_only_the_operator_extra() -> None:
    installs = [run for run in arguments_of(OPERATOR_DOCKERFILE, "RUN") if "pip install" in run]
    assert installs == ["/opt/venv/bin/pip install '.[operator]'"]


def test_operator_entrypoint_runs_the_operator_module() -> None:
    entrypoint = json.loads(arguments_of(OPERATOR_DOCKERFILE, "ENTRYPOINT")[0])
    assert entrypoint[:2] == ["kopf", "run"]
    module = entrypoint[entrypoint.index("-m") + 1]
    assert importlib.util.find_spec(module) is not None


def test_trainer_entrypoint_is_the_project_cli() -> None:
    entrypoint = json.loads(arguments_of(TRAINER_DOCKERFILE, "ENTRYPOINT")[0])
    assert entrypoint == ["rloop-trainer"]
    assert "rloop-trainer" in PYPROJECT["project"]["scripts"]


def test_trainer_image_takes_every_version_from_the_requirements_file() -> None:
    copied = [copy.split()[0] for copy in arguments_of(TRAINER_DOCKERFILE, "COPY")]
    assert str(TRAINER_REQUIREMENTS.relative_to(ROOT)) in copied
    installs = [run for run in arguments_of(TRAINER_DOCKERFILE, "RUN") if "pip install" in run]
    assert installs
    assert not [run for run in installs if re.search(r"[=<>]=", run)], "pin in requirements.txt"


def test_trainer_pins_satisfy_the_project_requirements() -> None:
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    declared = [Requirement(text) for text in [*project["dependencies"], *extras["trainer"]]]
    declared += [Requirement(text) for text in extras["gpu"]]
    pinned = pins()
    for requirement in declared:
        name = requirement.name.lower()
        assert name in pinned, f"{name} is a trainer dependency: pin it in requirements.txt"
        assert requirement.specifier.contains(pinned[name]), (
            f"requirements.txt pins {name}=={pinned[name]}, pyproject wants {requirement}"
        )


def test_dockerignore_admits_what_the_dockerfiles_copy() -> None:
    admitted = [
        line.removeprefix("!").rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for dockerfile in (OPERATOR_DOCKERFILE, TRAINER_DOCKERFILE):
        for copy in arguments_of(dockerfile, "COPY"):
            if copy.startswith("--from"):
                continue
            for source in copy.split()[:-1]:
                assert any(source == path or source.startswith(f"{path}/") for path in admitted), (
                    f"{dockerfile.name} copies {source}, which .dockerignore excludes"
                )


def test_the_distribution_lists_every_package_and_both_images_copy_them() -> None:
    """A subpackage missing from pyproject's list is missing from a non-editable install
    (the images' `pip install .`), though every editable test run finds it."""
    setuptools = PYPROJECT["tool"]["setuptools"]
    found = {
        ".".join([top, *init.parent.relative_to(ROOT / root).parts])
        for top, root in setuptools["package-dir"].items()
        for init in (ROOT / root).rglob("__init__.py")
    }
    assert sorted(found) == sorted(setuptools["packages"])
    for dockerfile in (OPERATOR_DOCKERFILE, TRAINER_DOCKERFILE):
        copied = [copy.split()[0] for copy in arguments_of(dockerfile, "COPY")]
        assert sorted(setuptools["package-dir"].values()) == sorted(
            source for source in copied if source in setuptools["package-dir"].values()
        ), dockerfile


def test_trainer_pins_resolve_together_for_the_image_python() -> None:
    [python] = re.findall(r"python(3\.\d+) -m venv", TRAINER_DOCKERFILE.read_text())
    uv = Path(sys.executable).with_name("uv")
    command = [
        str(uv), "pip", "compile", str(TRAINER_REQUIREMENTS),
        "--python-version", python, "--python-platform", "x86_64-manylinux_2_28",
        "--no-header", "--no-annotate", "--quiet",
    ]  # fmt: skip
    resolved = subprocess.run(command, capture_output=True, text=True, check=False)
    assert resolved.returncode == 0, resolved.stderr
    lock = {
        name.lower(): version
        for name, version in (line.split("==") for line in resolved.stdout.split())
    }
    for name, version in pins().items():
        assert lock.get(name) == version, f"{name}=={version} did not survive resolution"
