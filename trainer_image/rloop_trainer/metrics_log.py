"""Per-step metrics: a progress bar and a line on stdout, and `<output_uri>/metrics.jsonl`.

Object stores have no append, so the whole file is rewritten each step (it is
small). A resumed phase starts from the metrics its checkpoint saved (those of the
steps up to it), so each step appears once even if the store failed between a
checkpoint and the file's next write.
"""

from __future__ import annotations

import json
import logging

from tqdm import tqdm

from rloop_trainer import store

log = logging.getLogger(__name__)

_SHOWN = ("accuracy", "reward", "response_length", "grad_norm", "generation_rounds")


class MetricsLog:
    def __init__(self, output_uri: str, total_steps: int, history: list[dict[str, float]]) -> None:
        """`history`: the metrics of the steps already done, from the checkpoint resumed."""
        self.uri = store.join(output_uri, "metrics.jsonl")
        self.records = list(history)
        self.progress = tqdm(total=total_steps, initial=len(history), desc="dapo", unit="step")

    def record(self, metrics: dict[str, float]) -> None:
        self.records.append(metrics)
        body = "".join(json.dumps(record, sort_keys=True) + "\n" for record in self.records)
        store.write_bytes(self.uri, body.encode())
        shown = {key: round(metrics[key], 4) for key in _SHOWN if key in metrics}
        self.progress.set_postfix(shown)
        self.progress.update(1)
        log.info("step %d %s", int(metrics["step"]), json.dumps(metrics, sort_keys=True))

    def close(self) -> None:
        self.progress.close()
