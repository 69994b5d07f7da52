"""`rloop-trainer {dapo,filter,rft,eval} (--config FILE | --config-json JSON)`.

The operator renders the phase config into the child's command as `--config-json`;
people and `rloop run` may pass a file. Each phase module is imported only when
its phase runs, so `rloop-trainer filter` never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rloop_trainer.config import (
    PHASE_CONFIGS,
    PhaseConfig,
    PhaseConfigError,
    load_phase_config,
    parse_phase_config,
)
from rloop_trainer.errors import PhaseError

# phase -> "module:function"; each function takes its phase's config model.
PHASE_ENTRYPOINTS = {
    "dapo": "rloop_trainer.dapo:run_dapo_phase",
    "filter": "rloop_trainer.filter:run_filter_phase",
    "rft": "rloop_trainer.rft:run_rft_phase",
    "eval": "rloop_trainer.evaluate:run_eval_phase",
}

EXIT_BAD_CONFIG = 2
EXIT_PHASE_ERROR = 1


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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config: PhaseConfig = (
            load_phase_config(args.phase, args.config)
            if args.config is not None
            else parse_phase_config(args.phase, args.config_json)
        )
    except PhaseConfigError as exc:
        print(f"rloop-trainer: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    try:
        _entrypoint(args.phase)(config)
    except PhaseError as exc:
        print(f"rloop-trainer {args.phase}: {exc}", file=sys.stderr)
        return EXIT_PHASE_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
