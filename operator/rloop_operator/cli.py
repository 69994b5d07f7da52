"""`rloop`: the user's command line.

rloop run FILE [--state-dir DIR]        run an RLoopRun YAML on this machine (resumable)
rloop demo [--compare] [--workdir DIR] [--mlflow URI]
                                        a tiny RLoop on CPU; --compare adds one vanilla DAPO
                                        run beside it, compared at equal RL steps; --mlflow
                                        also logs both to an MLflow tracking server
rloop report RUN... [--compare OTHER...] [--metric NAME] [--out DIR]
                                        runs' evaluations and analysis, from their stores;
                                        --compare: two arms over paired seeds
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlparse

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from rloop_operator.api import RLoopRunSpec, SpecError
from rloop_operator.demo import print_demo_report, run_demo
from rloop_operator.local_executor import LocalExecutor, Reporter
from rloop_operator.planning.inputs import RunView
from rloop_operator.report_command import ReportError, report_command

EXIT_FAILED = 1
EXIT_BAD_SPEC = 2


def _last_metrics(run: RunView) -> dict[str, object]:
    """The newest line of the current DAPO phase's metrics.jsonl (file:// stores only)."""
    assert isinstance(run.spec, RLoopRunSpec)
    uri = f"{run.layout.rl(run.status.iteration)}/metrics.jsonl"
    path = Path(urlparse(uri).path)
    if not uri.startswith("file://") or not path.exists():
        return {}
    lines = path.read_text().strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def progress_table(run: RunView) -> Table:
    status = run.status
    table = Table(title=f"RLoopRun {run.name}")
    for column in ("phase", "iteration", "stage", "child", "step", "reward", "expert samples"):
        table.add_column(column)
    metrics = _last_metrics(run) if status.stage.value == "Exploring" else {}
    reward = metrics.get("reward")
    table.add_row(
        status.phase.value, status.progress or "", status.stage.value, status.active_child or "",
        str(metrics.get("step", "")), f"{reward:.3f}" if isinstance(reward, float) else "",
        "" if status.expert_samples is None else str(status.expert_samples),
    )  # fmt: skip
    return table


@contextlib.contextmanager
def live_progress(console: Console) -> Iterator[Reporter]:
    """A reporter that logs transitions and keeps a live progress table of each run on
    screen (the demo follows two)."""
    with Live(console=console, refresh_per_second=2, transient=False) as live:
        tables: dict[str, Table] = {}

        def report(run: RunView, message: str | None) -> None:
            if message:
                live.console.log(message)
            tables[run.name] = progress_table(run)
            live.update(Group(*tables.values()))

        yield report


def run_command(run_file: Path, state_dir: Path | None, console: Console) -> int:
    try:
        with live_progress(console) as report:
            executor = LocalExecutor(run_file, state_dir or Path(".rloop") / run_file.stem, report)
            status = executor.run()
    except SpecError as exc:
        console.print(f"[red]invalid RLoopRun:[/red] {exc}")
        return EXIT_BAD_SPEC
    console.print(f"{status.phase.value}: {status.message or ''}")
    return 0 if status.phase.value == "Succeeded" else EXIT_FAILED


def demo_command(workdir: Path, compare: bool, console: Console, mlflow: str | None) -> int:
    with live_progress(console) as report:
        runs = run_demo(workdir, compare, console, report, mlflow)
    # After the live display has printed its last frame: the sentence ends the output.
    return print_demo_report(workdir, runs, console)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rloop", description="RLoop on this machine")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run an RLoopRun YAML locally; run again to resume")
    run.add_argument("file", type=Path)
    run.add_argument("--state-dir", type=Path, help="where status and logs go (.rloop/<file>)")
    demo = commands.add_parser("demo", help="a tiny RLoop on CPU (resumable)")
    demo.add_argument(
        "--compare", action="store_true", help="also run vanilla DAPO, compared at equal RL steps"
    )
    demo.add_argument("--workdir", type=Path, default=Path("/tmp/rloop-demo"))
    demo.add_argument(
        "--mlflow", metavar="URI", help="also log the runs to this MLflow tracking server "
        "(experiment rloop-demo), e.g. http://127.0.0.1:5000",
    )  # fmt: skip
    report = commands.add_parser(
        "report", help="runs' per-iteration tables, best policy, pictures; --compare two arms"
    )
    report.add_argument(
        "run", nargs="+", help="store URI of a run's prefix, or its RLoopRun YAML (one a seed)"
    )
    report.add_argument(
        "--compare", metavar="OTHER", nargs="+", default=[],
        help="the other arm's runs, as many as RUN and in the same seed order: compared at "
        "equal RL steps with paired bootstrap intervals",
    )  # fmt: skip
    report.add_argument("--metric", help="what 'best' maximises, e.g. heldout/avg@8 (default: "
                        "the first validation set's avg@n)")  # fmt: skip
    report.add_argument(
        "--out", type=Path, help="download the runs' PNG pictures into DIR/<run>/; "
        "the comparison's go to DIR/<arm>-vs-<arm>/ (default ./rloop-compare/...)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    console = Console()
    if args.command == "run":
        return run_command(args.file, args.state_dir, console)
    if args.command == "report":
        try:
            return report_command(args.run, args.compare, args.metric, args.out, console)
        except ReportError as exc:
            console.print(f"[red]cannot report:[/red] {exc}")
            return EXIT_FAILED
    return demo_command(args.workdir, args.compare, console, args.mlflow)


if __name__ == "__main__":
    sys.exit(main())
