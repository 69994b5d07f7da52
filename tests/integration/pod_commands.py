"""A child's container as the kubelet would run it, here: its exact command and environment,
with the pod's files (the /scratch emptyDir, the termination-message file, the trackers'
mounted Secrets) in a local directory and secretKeyRef values taken from given Secrets."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rloop_contract.tracking import CREDENTIALS_DIR_ENV
from rloop_operator.manifests import SCRATCH, TERMINATION_MESSAGE_PATH

from tests.cluster.procs import free_port


def container_of(manifest: dict[str, Any]) -> dict[str, Any]:
    """The phase container of a PyTorchJob's Master or of a Job."""
    if manifest["kind"] == "PyTorchJob":
        pod = manifest["spec"]["pytorchReplicaSpecs"]["Master"]["template"]
    else:
        pod = manifest["spec"]["template"]
    container: dict[str, Any] = pod["spec"]["containers"][0]
    return container


def pod_env(
    container: dict[str, Any], secrets: Mapping[str, Mapping[str, str]], pod_dir: Path
) -> dict[str, str]:
    """The container's environment; `secrets` by name, each a dict of its keys."""
    # The training operator would set PET_MASTER_PORT; a free port keeps parallel runs apart.
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PET_MASTER_PORT": str(free_port()),
    }
    for item in container["env"]:
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[ref["name"]][ref["key"]]
            continue
        value = item["value"].replace(SCRATCH, str(pod_dir))
        value = value.replace(TERMINATION_MESSAGE_PATH, str(pod_dir / "termination"))
        if item["name"] == CREDENTIALS_DIR_ENV:  # the projected volume of the trackers' Secrets
            value = str(pod_dir / "tracking-credentials")
        env[item["name"]] = value
    return env


def mount_projected_secrets(
    manifest_pod: dict[str, Any], secrets: Mapping[str, Mapping[str, str]], pod_dir: Path
) -> None:
    """Lay out the trackers' projected Secret volume, as the kubelet does, in `pod_dir`."""
    directory = pod_dir / "tracking-credentials"
    for volume in manifest_pod["spec"]["volumes"]:
        for source in volume.get("projected", {}).get("sources", []):
            directory.mkdir(exist_ok=True)
            for key, value in secrets[source["secret"]["name"]].items():
                (directory / key).write_text(value)
