"""Object-store layout of a run (DESIGN.md section 5). Pure: URIs in, URIs out.

    <storage.uri>/<namespace>/<run>/<run-uid>/
      iter-000/rl/trajectories/step-000001.parquet   every rollout, before filtering
      iter-000/rl/checkpoints/ ; iter-000/rl/policy/  DAPO resume state and end point
      iter-000/expert/data.parquet + report.json      the filter's expert set
      iter-000/rft/checkpoints/                       RFT resume state
      iter-000/rl/metrics.jsonl                       one line per DAPO step
      iter-000/rl/report.json                         its last step's score and accuracy
      base/eval/report.json + samples.parquet         evaluation of theta_0 (the base)
      iter-000/eval/report.json + samples.parquet     evaluation of theta_1
      iter-001/policy/                                theta_1, the RFT output (HF format)
      analysis/analysis.json + *.png                  the run-level analysis, refreshed by
                                                      every evaluation
      tracking/tensorboard/ ; tracking/wandb/         spec.tracking's TensorBoard event
                                                      files and offline W&B runs

The run's uid is part of the root so that a run deleted and created again under
the same name never reads the old run's artifacts.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunLayout:
    root: str

    def iteration(self, index: int) -> str:
        return f"{self.root}/iter-{index:03d}"

    def policy(self, index: int) -> str:
        """theta_index as written by the RFT phase of iteration index-1."""
        return f"{self.iteration(index)}/policy"

    def rl(self, index: int) -> str:
        return f"{self.iteration(index)}/rl"

    def trajectories(self, index: int) -> str:
        return f"{self.rl(index)}/trajectories"

    def dapo_metrics(self, index: int) -> str:
        return f"{self.rl(index)}/metrics.jsonl"

    def dapo_report(self, index: int) -> str:
        return f"{self.rl(index)}/report.json"

    def rl_policy(self, index: int) -> str:
        return f"{self.rl(index)}/policy"

    def expert(self, index: int) -> str:
        return f"{self.iteration(index)}/expert"

    def expert_data(self, index: int) -> str:
        return f"{self.expert(index)}/data.parquet"

    def expert_report(self, index: int) -> str:
        return f"{self.expert(index)}/report.json"

    def rft_checkpoints(self, index: int) -> str:
        return f"{self.iteration(index)}/rft/checkpoints"

    def eval(self, index: int) -> str:
        return f"{self.iteration(index)}/eval"

    def eval_report(self, index: int) -> str:
        return f"{self.eval(index)}/report.json"

    def base_eval(self) -> str:
        """The evaluation of the base policy theta_0, before iteration 0 explores."""
        return f"{self.root}/base/eval"

    def base_eval_report(self) -> str:
        return f"{self.base_eval()}/report.json"

    def analysis(self) -> str:
        return f"{self.root}/analysis"

    def analysis_report(self) -> str:
        return f"{self.analysis()}/analysis.json"

    def tracking(self) -> str:
        return f"{self.root}/tracking"


def run_layout(storage_uri: str, namespace: str, name: str, uid: str) -> RunLayout:
    return RunLayout(root=f"{storage_uri.rstrip('/')}/{namespace}/{name}/{uid}")
