"""The trackers' credentials come from the mounted Secrets, key by key, never over the pod's
own variables."""

from __future__ import annotations

from pathlib import Path

from rloop_contract.tracking import CREDENTIALS_DIR_ENV
from rloop_trainer.tracking.credentials import load_credentials


def mounted(tmp_path: Path, files: dict[str, str]) -> Path:
    """A directory as the kubelet lays out a projected Secret volume."""
    (tmp_path / "..data").mkdir()
    for key, value in files.items():
        (tmp_path / key).write_text(value)
    return tmp_path


def test_each_key_of_the_mounted_secrets_becomes_a_variable(tmp_path: Path) -> None:
    directory = mounted(tmp_path, {"MLFLOW_TRACKING_TOKEN": "t0k\n", "WANDB_API_KEY": "k3y"})
    environ = {CREDENTIALS_DIR_ENV: str(directory)}

    assert load_credentials(environ) == ["MLFLOW_TRACKING_TOKEN", "WANDB_API_KEY"]
    assert environ["MLFLOW_TRACKING_TOKEN"] == "t0k"
    assert environ["WANDB_API_KEY"] == "k3y"


def test_a_variable_the_pod_sets_keeps_its_value(tmp_path: Path) -> None:
    directory = mounted(tmp_path, {"AWS_ACCESS_KEY_ID": "tracker's", "WANDB_API_KEY": "k"})
    environ = {CREDENTIALS_DIR_ENV: str(directory), "AWS_ACCESS_KEY_ID": "store's"}

    assert load_credentials(environ) == ["WANDB_API_KEY"]
    assert environ["AWS_ACCESS_KEY_ID"] == "store's"


def test_without_a_mounted_secret_nothing_changes() -> None:
    environ = {"HOME": "/home/rloop"}
    assert load_credentials(environ) == []
    assert environ == {"HOME": "/home/rloop"}
