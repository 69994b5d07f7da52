"""Reading runs and children back from the API server, and waiting for them."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tests.cluster.controlplane import ControlPlane

T = TypeVar("T")
POLL_S = 0.2


def eventually(check: Callable[[], T], timeout_s: float, what: str) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(POLL_S)


def get_run(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    out = plane.kubectl("get", "rlooprun", name, "-n", namespace, "-o", "json").stdout
    run: dict[str, Any] = json.loads(out)
    return run


def run_status(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = get_run(plane, namespace, name).get("status") or {}
    return status


def wait_for_phase(
    plane: ControlPlane, namespace: str, name: str, phase: str, timeout_s: float = 120
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        status = run_status(plane, namespace, name)
        return status if status.get("phase") == phase else None

    status = eventually(reached, timeout_s, f"{namespace}/{name} to reach phase {phase}")
    assert status is not None
    return status


CHILD_RESOURCES = ("pytorchjobs.kubeflow.org", "trainjobs.trainer.kubeflow.org", "jobs.batch")


def children_by_kind(
    plane: ControlPlane, namespace: str, resources: tuple[str, ...] = CHILD_RESOURCES
) -> dict[str, list[str]]:
    """{resource: sorted names} of the children labelled rloop.io/run in `namespace`."""
    found = {}
    for resource in resources:
        out = plane.kubectl(
            "get", resource, "-n", namespace, "-l", "rloop.io/run", "-o", "json"
        ).stdout
        found[resource] = sorted(item["metadata"]["name"] for item in json.loads(out)["items"])
    return found


def child_names(plane: ControlPlane, namespace: str) -> list[str]:
    return sorted(name for names in children_by_kind(plane, namespace).values() for name in names)


def printed_columns(plane: ControlPlane, namespace: str) -> dict[str, dict[str, str]]:
    """`kubectl get rloopruns` as {name: {column: value}}, read from its printed table."""
    lines = plane.kubectl("get", "rloopruns", "-n", namespace).stdout.splitlines()
    if not lines:
        return {}
    # STAGE and EXPERT may be empty; columns are fixed-width, so cut at the header's offsets.
    columns = [(m.group(), m.start()) for m in re.finditer(r"\S+", lines[0])]
    rows = {}
    for line in lines[1:]:
        ends = [start for _, start in columns[1:]] + [len(line)]
        row = {
            name: line[start:end].strip() for (name, start), end in zip(columns, ends, strict=True)
        }
        rows[row["NAME"]] = row
    return rows


RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"


def create_namespace(plane: ControlPlane, name: str) -> None:
    """A namespace whose pods must meet the Pod Security "restricted" profile, as on a
    hardened cluster: admission refuses any phase pod that does not."""
    plane.kubectl("create", "namespace", name)
    plane.kubectl("label", "namespace", name, RESTRICTED)
