"""The CRDs of the oldest supported Kubeflow Trainer beside the pinned Trainer's, in one
API server.

An API server holds one CRD per name (<plural>.<group>), so the oldest Trainer's CRDs go in
under a group of their own, OLDEST_GROUP, with their schemas and CEL rules unchanged. A
TrainJob is checked against them by a server-side dry run of it under that group
(`in_oldest_group`); against the pinned Trainer's, by one under trainer.kubeflow.org.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from .layout import ClusterLayout

TRAINER_GROUP = "trainer.kubeflow.org"
OLDEST_GROUP = f"oldest.{TRAINER_GROUP}"


def oldest_trainer_crds(layout: ClusterLayout, out_dir: Path) -> list[Path]:
    """The oldest supported Trainer's CRDs, moved to OLDEST_GROUP, as files in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for source in layout.trainer_oldest_crds:
        crd = yaml.safe_load(source.read_text())
        crd["spec"]["group"] = OLDEST_GROUP
        crd["metadata"] = {"name": f"{crd['spec']['names']['plural']}.{OLDEST_GROUP}"}
        path = out_dir / f"{crd['metadata']['name']}.json"
        path.write_text(json.dumps(crd))
        files.append(path)
    return files


def in_oldest_group(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of a trainer.kubeflow.org object under OLDEST_GROUP."""
    moved = copy.deepcopy(obj)
    group, version = moved["apiVersion"].split("/")
    assert group == TRAINER_GROUP, moved["apiVersion"]
    moved["apiVersion"] = f"{OLDEST_GROUP}/{version}"
    return moved
