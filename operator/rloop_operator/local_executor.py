"""`rloop run FILE`: the operator's own plan(), with each child run as a local process.

The RLoopRun YAML is the one a user would `kubectl apply`; each stage runs the
exact command the operator puts in the child's manifest. The run's status and
one record per child live in a state directory, so running the same command
again continues where it stopped (a child that was running is run again, and
the trainer resumes it from its checkpoints in the store).

One writer per phase output: the executor stops its phase process when it is
interrupted or terminated, and an executor that was killed outright leaves the
process's pid in the child's record, where the next `rloop run` finds it and stops
it before starting the phase again (a torchrun worker dies with its torchrun:
rloop_trainer.cli.die_with_torchrun; the trainer's writer fence covers the rest). Either
way it starts nothing before every process of the run's phases is gone, workers included
(phase_processes).

A phase that makes no progress for the progress timeout is stopped and retried, the
trainer resuming from its checkpoint: the executor runs the phase pods' liveness probe
(stall_watch).

A phase that fails leaves its reason in a termination-message file, as in a pod:
its own one-line error is the status message, and a failure it calls permanent
(bad input) fails the run without retries.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from rloop_operator.api import RLoopRunSpec, RLoopRunStatus, SpecError, parse_spec, parse_status
from rloop_operator.children import Child, run_name_problem
from rloop_operator.clock import utcnow
from rloop_operator.lifecycle import Phase, Stage
from rloop_operator.manifests import PROGRESS_ENV, progress_probe_command, trainer_command
from rloop_operator.phase_processes import (
    process_start_time,
    run_marker,
    stop_marked_processes,
    stop_process,
)
from rloop_operator.planning.actions import CreateChild, DeleteChild, EmitEvent, Plan, ReadReport
from rloop_operator.planning.inputs import Observed, PlanSettings, RunView
from rloop_operator.planning.plan_loop import plan_until_settled
from rloop_operator.stage_reports import StageReport, read_report
from rloop_operator.stages import launcher_for
from rloop_operator.stall_watch import StallWatch, probe_period
from rloop_operator.trainer_failures import TrainerFailure, failure_from_messages

LOG_TAIL_CHARS = 2000
TERMINATION_ENV = "RLOOP_TERMINATION_MESSAGE_PATH"
# Locally a failed phase is usually a bug to fix, not a node to wait for.
LOCAL_PLAN_SETTINGS = PlanSettings(backoff_base_seconds=2, backoff_cap_seconds=30)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def load_run(path: Path) -> tuple[dict[str, Any], RLoopRunSpec]:
    """Read an RLoopRun YAML; SpecError names the field and the fix."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: cannot read an RLoopRun from it: {exc}") from exc
    if not isinstance(document, dict) or document.get("kind") != "RLoopRun":
        raise SpecError(f"{path}: not an RLoopRun (kind: RLoopRun is missing)")
    metadata = document.get("metadata") or {}
    if not metadata.get("name"):
        raise SpecError(f"{path}: metadata.name is missing; give the run a name")
    problem = run_name_problem(str(metadata["name"]))
    if problem is not None:
        raise SpecError(f"{path}: {problem}")
    return metadata, parse_spec(document.get("spec") or {})


@dataclass
class ChildRecord:
    name: str
    iteration: int
    stage: str
    phase: str
    created_at: str
    finished_at: str | None = None
    message: str = ""
    reason: str = ""
    permanent: bool = False
    pid: int | None = None  # the phase process, while it runs
    pid_started: int | None = None  # its process_start_time: a pid can be reused


class LocalState:
    """Status and child records of one local run, as JSON files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        (directory / "children").mkdir(parents=True, exist_ok=True)
        (directory / "logs").mkdir(exist_ok=True)

    @property
    def status_file(self) -> Path:
        return self.directory / "status.json"

    def load_status(self) -> RLoopRunStatus:
        if not self.status_file.exists():
            return RLoopRunStatus()
        return parse_status(json.loads(self.status_file.read_text()))

    def save_status(self, status: RLoopRunStatus) -> None:
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(status.to_api(), indent=2))
        tmp.replace(self.status_file)

    def save_child(self, record: ChildRecord) -> None:
        (self.directory / "children" / f"{record.name}.json").write_text(
            json.dumps(asdict(record), indent=2)
        )

    def forget(self, child: str) -> None:
        """A finished child the plan deleted (to create it again under its name, after a
        hang): its record goes, its log stays and the next attempt's is appended."""
        (self.directory / "children" / f"{child}.json").unlink(missing_ok=True)

    def records(self) -> list[ChildRecord]:
        paths = sorted((self.directory / "children").glob("*.json"))
        return [ChildRecord(**json.loads(path.read_text())) for path in paths]

    def children(self, spec: RLoopRunSpec) -> tuple[Child, ...]:
        """Finished children; one left Running by an interrupted executor is forgotten
        so that the plan starts it again under the same name."""
        found = []
        for record in self.records():
            if record.phase == Phase.RUNNING.value:
                (self.directory / "children" / f"{record.name}.json").unlink()
                continue
            found.append(_child_of(record, spec))
        return tuple(found)

    def log_file(self, child: str) -> Path:
        return self.directory / "logs" / f"{child}.log"

    def termination_file(self, child: str) -> Path:
        return self.directory / "logs" / f"{child}.termination"

    def progress_file(self, child: str) -> Path:
        return self.directory / "logs" / f"{child}.progress"


def phase_failure(code: int, log_file: Path, termination_file: Path) -> TrainerFailure:
    """Why a phase process failed: the trainer's own line when it left one (not torchrun's
    traceback around it), else the exit code and the end of the log."""
    messages = [termination_file.read_text()] if termination_file.exists() else []
    failure = failure_from_messages(messages)
    if failure is not None:
        return failure
    tail = log_file.read_text()[-LOG_TAIL_CHARS:]
    message = f"exit code {code}; log {log_file}; last output:\n{tail}"
    return TrainerFailure(message, "ProcessFailed", permanent=False)


@contextlib.contextmanager
def _exit_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into SystemExit, so that `finally` blocks stop the phase process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def leave(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, leave)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _child_of(record: ChildRecord, spec: RLoopRunSpec) -> Child:
    stage = Stage(record.stage)
    return Child(
        name=record.name,
        kind=launcher_for(spec, stage).kind,
        iteration=record.iteration,
        stage=stage,
        phase=Phase(record.phase),
        reason=record.reason or ("" if record.phase == Phase.SUCCEEDED.value else "ProcessFailed"),
        message=record.message,
        finished_at=datetime.fromisoformat(record.finished_at) if record.finished_at else None,
        created_at=datetime.fromisoformat(record.created_at),
        permanent=record.permanent,
    )


# Called with a message on each transition, and with None about once a second
# while a child runs, so a display can refresh its progress.
Reporter = Callable[[RunView, str | None], None]
POLL_SECONDS = 1.0


class LocalExecutor:
    def __init__(
        self,
        run_file: Path,
        state_dir: Path,
        report: Reporter,
        settings: PlanSettings = LOCAL_PLAN_SETTINGS,
    ) -> None:
        metadata, self.spec = load_run(run_file)
        self.name = str(metadata["name"])
        self.namespace = str(metadata.get("namespace", "local"))
        self.uid = str(metadata.get("uid", "local"))
        self.state = LocalState(state_dir)
        self.report = report
        self.settings = settings
        # spec.resources.progressTimeout, as the kubelet's liveness probe would apply it.
        seconds = self.spec.resources.progress_timeout_seconds
        self.progress_timeout = None if seconds is None else timedelta(seconds=seconds)

    def view(self) -> RunView:
        return RunView(self.name, self.namespace, self.uid, 1, self.spec, self.state.load_status())

    def run(self) -> RLoopRunStatus:
        """Plan and execute until the run is Succeeded or Failed."""
        with _exit_on_sigterm():
            self._stop_leftovers()
            while True:
                result = self._plan()
                self.state.save_status(result.status)
                run = self.view()
                # Events first: a child runs to completion here, so its "created" event
                # must be shown before it starts, not after it ended.
                for event in (a for a in result.actions if isinstance(a, EmitEvent)):
                    self.report(run, f"{event.type}: {event.reason}: {event.message}")
                for delete in (a for a in result.actions if isinstance(a, DeleteChild)):
                    self.state.forget(delete.name)
                for create in (a for a in result.actions if isinstance(a, CreateChild)):
                    self._run_child(run, create)
                if result.status.phase.is_terminal:
                    return result.status
                if not any(isinstance(a, CreateChild) for a in result.actions):
                    time.sleep(result.requeue_after or 1.0)

    def _stop_leftovers(self) -> None:
        """Stop the phases a killed executor left running (their top process first, which
        stops its workers), and wait until all their processes are gone, before any retry."""
        for record in self.state.records():
            if record.pid is not None and stop_process(record.pid, record.pid_started):
                message = f"stopped {record.name} (pid {record.pid}), left by an earlier executor"
                self.report(self.view(), message)
        stragglers = stop_marked_processes(self.state.directory)
        if stragglers:
            self.report(self.view(), f"stopped phase processes {stragglers} of an earlier executor")

    def _plan(self) -> Plan:
        credentials = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}

        def read(action: ReadReport) -> StageReport:
            return read_report(action.uri, action.report.parse, self.spec.storage, credentials)

        observed = Observed(self.state.children(self.spec))
        return plan_until_settled(self.view(), observed, utcnow(), self.settings, read)

    def _run_child(self, run: RunView, action: CreateChild) -> None:
        record = ChildRecord(
            action.name,
            action.iteration,
            action.stage.value,
            Phase.RUNNING.value,
            utcnow().isoformat(),
        )
        self.state.save_child(record)
        self.report(run, f"running {action.name}")
        log_file = self.state.log_file(action.name)
        termination_file = self.state.termination_file(action.name)
        progress_file = self.state.progress_file(action.name)
        for leftover in (termination_file, progress_file):
            leftover.unlink(missing_ok=True)
        env = self._env() | {
            TERMINATION_ENV: str(termination_file),
            PROGRESS_ENV: str(progress_file),
        }
        with log_file.open("a") as log:
            process = subprocess.Popen(
                trainer_command(run, action.iteration, action.stage),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
            record.pid, record.pid_started = process.pid, process_start_time(process.pid)
            self.state.save_child(record)
            try:
                self._watch(run, action, process, env)
            finally:
                stop_process(process.pid, record.pid_started)
                code = process.wait()
                stop_marked_processes(self.state.directory)  # its workers too, before a retry
        record.phase = (Phase.SUCCEEDED if code == 0 else Phase.FAILED).value
        record.finished_at = utcnow().isoformat()
        record.pid = record.pid_started = None
        if code != 0:
            self.report(run, f"{action.name} exited with code {code}; log {log_file}")
            failure = phase_failure(code, log_file, termination_file)
            record.message, record.reason = failure.message, failure.reason
            record.permanent = failure.permanent
        self.state.save_child(record)

    def _watch(
        self,
        run: RunView,
        action: CreateChild,
        process: subprocess.Popen[bytes],
        env: dict[str, str],
    ) -> None:
        """Until the phase process exits, or until it has made no progress for the progress
        timeout (the caller then stops it; the probe has left why)."""
        timeout = self.progress_timeout
        watch = None
        if timeout is not None:
            watch = StallWatch(progress_probe_command(timeout), env, probe_period(timeout))
        while process.poll() is None:
            self.report(run, None)
            stall = None if watch is None else watch.stalled()
            if stall is not None:
                message = f"{action.name} {stall}; stopping it, to retry from its checkpoint"
                self.report(run, message)
                return
            time.sleep(POLL_SECONDS)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ) | run_marker(self.state.directory)
        # The training operator hands torchrun its rendezvous port as PET_MASTER_PORT;
        # locally a free one keeps parallel runs on one machine apart.
        env["PET_MASTER_PORT"] = str(_free_port())
        # Children are started with this interpreter's scripts first on PATH so that
        # `torchrun` and `rloop-trainer` are the ones installed beside `rloop`.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        if self.spec.storage.endpoint:
            env["AWS_ENDPOINT_URL"] = self.spec.storage.endpoint
        if self.spec.storage.region:
            env["AWS_DEFAULT_REGION"] = self.spec.storage.region
        return env
