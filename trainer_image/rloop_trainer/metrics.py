"""Per-step metrics: a progress bar and a line on stdout, and `<output_uri>/metrics.jsonl`.

Object stores have no append, so the whole file is rewritten each step (it is
small); after a resume the lines of steps beyond the checkpoint are dropped, so
each step appears once.
"""

from __future__ import annotations

import json
import logging

from tqdm import tqdm

from rloop_trainer import store

log = logging.getLogger(__name__)

_SHOWN = ("accuracy", "reward", "response_length", "grad_norm", "generation_rounds")


class MetricsLog:
    def __init__(self, output_uri: str, total_steps: int, resumed_step: int) -> None:
        self.uri = store.join(output_uri, "metrics.jsonl")
        self.records: list[dict[str, float]] = []
        if resumed_step > 0 and store.exists(self.uri):
            lines = store.read_bytes(self.uri).decode().splitlines()
            records = [json.loads(line) for line in lines if line.strip()]
            self.records = [r for r in records if r["step"] <= resumed_step]
        self.progress = tqdm(total=total_steps, initial=resumed_step, desc="dapo", unit="step")

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
