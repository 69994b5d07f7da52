"""The replication's runs as jobs in worker processes, with progress on the console.

A job is one run (one arm of one seed, or a seed's base evaluation); jobs wait for the
jobs they need (every arm of a seed for its base evaluation; the vanilla arm given
RLoop's updates for that seed's RLoop run) and otherwise run `workers` at a time, each
in a process of its own with one torch thread. Each job's trainer logs go to
WORKDIR/logs/<run>.log; one line per finished phase goes to the console.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

# What a worker runs: given the progress printer, returns the job's result. Picklable
# (a partial of a module-level function).
Work = Callable[[Callable[[str], None]], Any]


@dataclass(frozen=True)
class Job:
    name: str  # the run's metadata.name
    # Called in the parent once the jobs it needs are done, with all finished jobs'
    # results: the work to send to a worker.
    make: Callable[[Mapping[str, Any]], Work]
    needs: tuple[str, ...] = ()


def fixed(work: Work) -> Callable[[Mapping[str, Any]], Work]:
    """`make` of a job whose work does not depend on other jobs' results."""
    return lambda results: work


@dataclass
class Console:
    started: float = field(default_factory=time.monotonic)
    out: TextIO = sys.stdout

    def say(self, line: str) -> None:
        minutes = (time.monotonic() - self.started) / 60
        print(f"[{minutes:5.1f} min] {line}", file=self.out, flush=True)


def _worker_init() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def _run_job(name: str, work: Work, log_dir: str, started: float) -> Any:
    """In the worker: the job's logs into its file, its progress lines onto the console."""
    console = Console(started=started, out=sys.stdout)
    log_path = Path(log_dir) / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    with log_path.open("a") as log_file, contextlib.redirect_stderr(log_file):
        handler = logging.StreamHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.handlers, root.level = [handler], logging.INFO
        return work(console.say)


def run_jobs(jobs: Sequence[Job], workers: int, log_dir: Path, console: Console) -> dict[str, Any]:
    """Every job, each after those it needs; their results by name. A failed job stops
    the bench (its log names the cause) after the running ones finish."""
    results: dict[str, Any] = {}
    waiting = list(jobs)
    running: dict[Future[Any], Job] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init) as pool:
        while waiting or running:
            for job in [j for j in waiting if all(n in results for n in j.needs)]:
                waiting.remove(job)
                future = pool.submit(
                    _run_job, job.name, job.make(results), str(log_dir), console.started
                )
                running[future] = job
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                error = future.exception()
                if error is not None:
                    for other in running:
                        other.cancel()
                    raise RuntimeError(
                        f"{job.name} failed: {error}; see {log_dir / job.name}.log"
                    ) from error
                results[job.name] = future.result()
                console.say(f"{job.name} done ({len(results)} of {len(jobs)} runs)")
    return results
