"""spec.tracking: where a run's curves, parameters and analysis go besides the store.

Any of MLflow, TensorBoard and Weights & Biases, several at once; with none set nothing
changes. Credentials never appear here: the phase pods mount the Secrets named in
`credentials_secrets` with envFrom (MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME and
MLFLOW_TRACKING_PASSWORD, WANDB_API_KEY, ...), and the operator never reads them. A
tracker that cannot be reached costs the phase one warning in its log, never the phase;
metrics.jsonl in the store is written either way.

Field names are snake_case; the API's camelCase comes from the contract's aliases.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

SecretName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    ),
]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MlflowSettings(_Settings):
    """One MLflow run per RLoopRun, with a nested run per phase."""

    tracking_uri: str = Field(
        min_length=1,
        max_length=2048,
        pattern=r"^https?://",
        description="URL of the MLflow tracking server, e.g. http://mlflow.mlflow:5000",
    )
    experiment_name: str = Field(
        "rloop",
        min_length=1,
        max_length=500,
        description="MLflow experiment of the run; created when missing",
    )


class WandbSettings(_Settings):
    """One W&B run per RLoopRun, resumed by each phase."""

    project: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[^/\\#?%:]+$",
        description="W&B project of the run",
    )
    entity: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="W&B team or user; unset: the API key's default entity",
    )
    mode: Literal["online", "offline"] = Field(
        "online",
        description="offline: no network; each phase leaves its W&B files under the run's "
        "store prefix (tracking/wandb/) for `wandb sync`",
    )


class TrackingSettings(_Settings):
    """spec.tracking."""

    mlflow: MlflowSettings | None = Field(None, description="log to an MLflow tracking server")
    tensorboard: bool = Field(
        False,
        description="write TensorBoard event files under the run's store prefix "
        "(tracking/tensorboard/)",
    )
    wandb: WandbSettings | None = Field(None, description="log to Weights & Biases")
    credentials_secrets: list[SecretName] = Field(
        default_factory=list,
        max_length=8,
        description="Secrets in the run's namespace that every phase pod mounts with envFrom, "
        "holding the trackers' credentials (e.g. MLFLOW_TRACKING_TOKEN, WANDB_API_KEY); the "
        "operator never reads them",
    )

    @property
    def backends(self) -> list[str]:
        """The trackers turned on, by registry name."""
        turned_on = {
            "mlflow": self.mlflow is not None,
            "tensorboard": self.tensorboard,
            "wandb": self.wandb is not None,
        }
        return [name for name, on in turned_on.items() if on]
