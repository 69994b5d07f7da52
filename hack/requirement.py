"""Print pyproject.toml's requirement for one package: `python hack/requirement.py deepspeed`.

The Makefile installs DeepSpeed on its own, before the rest, and takes its version range from
here so that pyproject.toml stays the one place that declares it.
"""

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def requirement(name: str) -> str:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    groups: list[list[str]] = [project["dependencies"], *project["optional-dependencies"].values()]
    for declared in (req for group in groups for req in group):
        match = re.match(r"[A-Za-z0-9_.-]+", declared)
        if match and match.group(0).lower() == name.lower():
            return declared
    raise SystemExit(f"pyproject.toml declares no requirement named {name!r}")


if __name__ == "__main__":
    print(requirement(sys.argv[1]))
