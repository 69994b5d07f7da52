"""spec.tracking: where a run's curves, parameters and analysis go besides the store.

Any of MLflow, TensorBoard and Weights & Biases, several at once; with none set nothing
changes. Credentials never appear here: the phase pods mount the Secrets named in
credentialsSecrets and the trainer takes each key of them as an environment variable
(MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD,
WANDB_API_KEY, ...); the operator never reads them. A tracker that cannot be reached costs
the phase one warning in its log, never the phase; metrics.jsonl in the store is written
either way.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from rloop_contract.schema import DNS_SUBDOMAIN, SpecSection

# Names the directory where the phase pod has the trackers' Secrets mounted, one file per key.
CREDENTIALS_DIR_ENV = "RLOOP_TRACKING_CREDENTIALS"


class MlflowSection(SpecSection):
    """One MLflow run per RLoopRun, with a nested run per phase."""

    tracking_uri: Annotated[
        str,
        Field(
            min_length=1,
            max_length=2048,
            pattern=r"^https?://",
            description=("URL of the MLflow tracking server, e.g. http://mlflow.mlflow:5000."),
        ),
    ]
    experiment_name: Annotated[str, Field(min_length=1, max_length=500, description=(
        "MLflow experiment of the run; created when missing."))] = "rloop"  # fmt: skip


class WandbSection(SpecSection):
    """One W&B run per RLoopRun, resumed by each phase."""

    project: Annotated[
        str,
        Field(
            min_length=1,
            max_length=128,
            pattern=r"^[^/\\#?%:]+$",
            description="W&B project of the run.",
        ),
    ]
    entity: (
        Annotated[
            str,
            Field(
                min_length=1,
                max_length=128,
                description=("W&B team or user; unset: the API key's default entity."),
            ),
        ]
        | None
    ) = None
    mode: Annotated[Literal["online", "offline"], Field(description=(
        "offline: no network; each phase leaves its W&B files under the run's store prefix "
        "(tracking/wandb/) for `wandb sync`."))] = "online"  # fmt: skip


class TrackingSection(SpecSection):
    """Experiment trackers the phases log to besides the store (metrics.jsonl, analysis/),
    with verl's metric names, at the run's RL step: any of MLflow, TensorBoard and Weights &
    Biases, several at once; none set changes nothing."""

    mlflow: (
        Annotated[MlflowSection, Field(description=("Log to an MLflow tracking server."))] | None
    ) = None
    tensorboard: Annotated[
        bool,
        Field(
            description=(
                "Write TensorBoard event files under the run's store prefix "
                "(tracking/tensorboard/)."
            )
        ),
    ] = False
    wandb: Annotated[WandbSection, Field(description=("Log to Weights & Biases."))] | None = None
    credentials_secrets: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]],
        Field(max_length=8, description=(
            "Secrets in the run's namespace that every phase pod mounts, each key becoming an "
            "environment variable of the trainer (e.g. MLFLOW_TRACKING_TOKEN, WANDB_API_KEY; a "
            "variable the operator sets, such as AWS_ACCESS_KEY_ID, keeps the operator's "
            "value); the operator never reads them.")),
    ] = Field(default_factory=list)  # fmt: skip

    @property
    def backends(self) -> list[str]:
        """The trackers turned on, by registry name."""
        turned_on = {
            "mlflow": self.mlflow is not None,
            "tensorboard": self.tensorboard,
            "wandb": self.wandb is not None,
        }
        return [name for name, on in turned_on.items() if on]
