"""A phase's progress for whoever watches it, and the probe that tells a stalled phase.

A phase that stops making progress is hung, whatever the cause: a store call that never
returns, a deadlocked generation, a collective a peer never joins. The trainer keeps its
last step and when it reached it in a small JSON file at $RLOOP_PROGRESS_PATH (one per pod:
local rank 0 writes it), rewritten whole at each step:

    {"step": 12, "at": "2026-12-04T23:10:08Z"}      step null: no step yet

Steps are the phase's own units: DAPO's RL steps (the run's numbers), RFT's optimizer steps,
the eval's generation chunks, the filter's trajectory files read. A phase beats when it
starts (step null), at the step it resumes from, and after every step.

`rloop-trainer-probe --stalled-after SECONDS` reads it where the trainer runs: it is the exec
liveness probe of the phase pods, and the local executor's watchdog runs the same command.
When the file is older than SECONDS, the probe leaves "stalled at step N since T" as the
container's termination message (rloop_trainer.termination, reason Stalled, a retry can
succeed), prints it (the kubelet puts it in the probe's event) and exits 1; the kubelet or
the executor then ends the phase, and the operator or the executor reads the message like
any other failure of the trainer's. So progress reaches the operator through the pod's own
status: the phase pods need no API token and the operator no store access. Only this
module's standard-library imports run per probe.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rloop_trainer import termination

log = logging.getLogger(__name__)

PATH_ENV = "RLOOP_PROGRESS_PATH"
REASON = "Stalled"
EXIT_STALLED = 1


@dataclass(frozen=True)
class Heartbeat:
    step: int | None  # None: the phase has not reached a step yet
    at: datetime  # when it reached `step` (or started), UTC

    def to_json(self) -> str:
        return json.dumps({"step": self.step, "at": _iso(self.at)})

    @classmethod
    def from_json(cls, text: str) -> Heartbeat:
        """Raises ValueError (or KeyError, TypeError) when `text` is not a heartbeat."""
        document = json.loads(text)
        step = document["step"]
        if step is not None and not isinstance(step, int):
            raise ValueError(f"step {step!r} is not an integer")
        return cls(step, datetime.fromisoformat(document["at"]))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def stall_line(beat: Heartbeat, now: datetime, stalled_after_s: float) -> str | None:
    """ "stalled at step N since T: ..." once `beat` is older than `stalled_after_s`; else None."""
    quiet_s = (now - beat.at).total_seconds()
    if quiet_s < stalled_after_s:
        return None
    where = "before its first step" if beat.step is None else f"at step {beat.step}"
    return (
        f"stalled {where} since {_iso(beat.at)}: no progress for {quiet_s:.0f} s "
        f"(progress timeout {stalled_after_s:.0f} s)"
    )


class _Beats:
    """This process's heartbeat file, when it keeps one."""

    def __init__(self) -> None:
        self.last_step: int | None = None
        self.warned = False

    def write(self, step: int | None, env: Mapping[str, str]) -> None:
        self.last_step = step
        path = env.get(PATH_ENV)
        if not path or env.get("LOCAL_RANK", "0") != "0":
            return
        target = Path(path)
        partial = target.with_name(f".{target.name}.partial")
        try:
            partial.write_text(Heartbeat(step, datetime.now(UTC)).to_json())
            partial.replace(target)  # a probe never reads half a heartbeat
        except OSError as exc:
            if not self.warned:  # a heartbeat never fails a phase; it only goes unwatched
                log.warning("cannot write the progress heartbeat %s: %s", path, exc)
                self.warned = True


_beats = _Beats()


def started(env: Mapping[str, str] | None = None) -> None:
    """The phase process has started and reached no step yet."""
    _beats.write(None, os.environ if env is None else env)


def reached(step: int, env: Mapping[str, str] | None = None) -> None:
    """The phase has completed `step` (or resumes after it)."""
    _beats.write(step, os.environ if env is None else env)


def advanced(env: Mapping[str, str] | None = None) -> None:
    """The phase has completed one more unit of work (its steps are counted here)."""
    reached((_beats.last_step or 0) + 1, env)


def probe(stalled_after_s: float, env: Mapping[str, str], now: datetime) -> str | None:
    """The stall line, also left as the termination message, when the heartbeat at
    $RLOOP_PROGRESS_PATH is older than `stalled_after_s`; None while the phase progresses,
    and when there is no heartbeat to read (not started yet, or not kept)."""
    path = env.get(PATH_ENV)
    if not path:
        return None
    try:
        beat = Heartbeat.from_json(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"unreadable progress heartbeat {path}: {exc}", file=sys.stderr)
        return None
    line = stall_line(beat, now, stalled_after_s)
    if line is not None:
        termination.write_failure(line, REASON, permanent=False, env=env)
    return line


def main(argv: Sequence[str] | None = None) -> int:
    """`rloop-trainer-probe --stalled-after SECONDS`: exit 1 (and say why) once stalled."""
    parser = argparse.ArgumentParser(prog="rloop-trainer-probe", description=__doc__)
    parser.add_argument("--stalled-after", type=float, required=True, metavar="SECONDS")
    args = parser.parse_args(argv)
    line = probe(args.stalled_after, os.environ, datetime.now(UTC))
    if line is None:
        return 0
    print(line)
    return EXIT_STALLED


if __name__ == "__main__":
    sys.exit(main())
