"""`rloop-trainer {dapo,filter,rft,eval} (--config FILE | --config-json JSON)`.

The operator renders the phase config into the child's command as `--config-json`;
people and `rloop run` may pass a file. Each phase module is imported only when
its phase runs, so `rloop-trainer filter` never imports torch.

Exit codes: 0 done; 2 a bad config and 3 any other error that fails the same way
again (bad input, a missing file, a policy that does not load); 4 a newer attempt
took over the output (rloop_trainer.fencing); 1 an error a retry may get past (the
store stayed unavailable) or a crash. Under torchrun the worker's code is lost in
torchrun's own, so the error also goes to the termination message (termination.py).
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rloop_trainer import progress, termination
from rloop_trainer.config import (
    PHASE_CONFIGS,
    PhaseConfig,
    PhaseConfigError,
    load_phase_config,
    parse_phase_config,
)
from rloop_trainer.errors import PhaseError, Superseded

# phase -> "module:function"; each function takes its phase's config model.
PHASE_ENTRYPOINTS = {
    "dapo": "rloop_trainer.dapo:run_dapo_phase",
    "filter": "rloop_trainer.filter:run_filter_phase",
    "rft": "rloop_trainer.rft:run_rft_phase",
    "eval": "rloop_trainer.evaluate:run_eval_phase",
}

EXIT_RETRYABLE = 1
EXIT_BAD_CONFIG = 2
EXIT_PERMANENT = 3
EXIT_SUPERSEDED = 4
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rloop-trainer", description=__doc__)
    parser.add_argument("phase", choices=sorted(PHASE_CONFIGS))
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", type=Path, help="phase config JSON file")
    source.add_argument("--config-json", help="phase config as inline JSON")
    return parser


def _entrypoint(phase: str) -> Callable[[Any], object]:
    module_name, function_name = PHASE_ENTRYPOINTS[phase].split(":")
    function: Callable[[Any], object] = getattr(importlib.import_module(module_name), function_name)
    return function


def die_with_torchrun() -> None:
    """Under torchrun, ask the kernel to kill this worker when torchrun dies.

    torchrun starts each worker in a session of its own, so killing the launcher (or
    the process group of the `rloop run` that started it) would leave the worker
    writing the phase's output next to the retry's. Only under torchrun: a trainer run
    by hand under nohup must outlive its shell. A launcher that died before this call
    is caught by comparing the parent before and after; the writer fence covers the
    rest."""
    if "TORCHELASTIC_RUN_ID" not in os.environ or not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(EXIT_RETRYABLE)  # the launcher is already gone: stop before any write


def _fail(phase: str, error: PhaseError | PhaseConfigError) -> int:
    """Say why on stderr and in the termination message; the exit code says if a retry helps."""
    line = " ".join(f"rloop-trainer {phase}: {error}".split())
    print(line, file=sys.stderr)
    if isinstance(error, PhaseConfigError):
        termination.write_failure(line, "InvalidConfig", permanent=True)
        return EXIT_BAD_CONFIG
    termination.write_failure(line, error.reason, error.permanent)
    if isinstance(error, Superseded):
        return EXIT_SUPERSEDED
    return EXIT_PERMANENT if error.permanent else EXIT_RETRYABLE


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    die_with_torchrun()
    progress.started()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config: PhaseConfig = (
            load_phase_config(args.phase, args.config)
            if args.config is not None
            else parse_phase_config(args.phase, args.config_json)
        )
        _entrypoint(args.phase)(config)
    except (PhaseConfigError, PhaseError) as exc:
        return _fail(args.phase, exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
