"""RLoop against vanilla DAPO at equal RL steps, over paired seeds, with the paper's
measurements: the replication of bench/fidelity.md (protocol, pilot and results there).

    python bench/fidelity.py pilot WORKDIR [--lr 3e-4 1e-3] [--windows 6] [--steps 10]
    python bench/fidelity.py compare WORKDIR [--seeds 0 1 2 3 4] [--workers 2]

`compare` runs every arm of every seed (fidelity_compare.py), `--workers` runs at a time,
each in a process of its own, printing a line per finished phase; then prints markdown
for RESULTS.md (Table 1 with paired bootstrap intervals, the figures along the RL steps,
the ablations, differential forgetting, own similarity, the half-width reached and the
sentence), writes it to WORKDIR/results.md and the pictures under WORKDIR/compare/. The
same tables come from `rloop report WORKDIR/store/local/rloop-s*/local --compare
WORKDIR/store/local/vanilla-s*/local`. Accuracy only: nothing here is timed but the
whole. Resumable: run it again to continue.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

from fidelity_compare import ABLATIONS, ARMS, RLOOP, VANILLA, arm_document, jobs
from fidelity_jobs import Console, Job, fixed, run_jobs
from fidelity_markdown import (
    ablation_markdown,
    along_markdown,
    diversity_markdown,
    forgetting_markdown,
    half_width_line,
    table_one_markdown,
)
from fidelity_pilot import pilot_markdown, pilot_name, pilot_rows, run_pilot
from fidelity_runs import Arm, run_view
from fidelity_task import SAMPLES, Budget, build_assets
from rloop_operator.comparison_plots import write_pictures
from rloop_operator.report_command import LoadedRun, load_run_report
from rloop_operator.run_comparison import (
    Arms,
    along_steps,
    differential_forgetting,
    headline_figures,
    shared_sets,
    table_one,
    verdict,
)


def pilot_command(args: argparse.Namespace, console: Console) -> int:
    workdir = args.workdir.resolve()
    base = replace(Budget(), iterations=args.windows, steps=args.steps,
                   prompts_per_step=args.prompts, train_problems=args.train_problems)  # fmt: skip
    build_assets(workdir / "assets", base)
    budgets = [replace(base, lr=lr) for lr in args.lr]
    jobs = [
        Job(pilot_name(budget, args.seed), fixed(partial(run_pilot, workdir, budget, args.seed)))
        for budget in budgets
    ]
    run_jobs(jobs, args.workers, workdir / "logs", console)
    for budget in budgets:
        rows = pilot_rows(workdir, budget, args.seed)
        (workdir / f"{pilot_name(budget, args.seed)}.json").write_text(
            json.dumps({"budget": asdict(budget), "rows": rows}, indent=1)
        )
        print(pilot_markdown(budget, args.seed, rows), end="\n\n")
    return 0


def load_arm(workdir: Path, arm: Arm, seeds: Sequence[int], budget: Budget) -> list[LoadedRun]:
    documents = [arm_document(workdir, arm, seed, budget) for seed in seeds]
    return [load_run_report(run_view(d).layout.root) for d in documents]


def results_markdown(workdir: Path, seeds: Sequence[int], budget: Budget, console: Console) -> str:
    """Every table of the replication; the pictures under WORKDIR/compare/; the sentence."""
    runs = {arm.name: load_arm(workdir, arm, seeds, budget) for arm in ARMS}
    analyses = {name: tuple(r.analysis for r in loaded) for name, loaded in runs.items()}
    main_arms = Arms("RLoop", "vanilla", analyses[RLOOP.name], analyses[VANILLA.name])
    first = {s: table_one(main_arms, s) for s in shared_sets(main_arms.runs)}
    along = {s: along_steps(main_arms, s) for s in first}
    forgetting = {s: differential_forgetting(main_arms.ours, main_arms.theirs, s) for s in first}
    pictures = write_pictures(
        workdir / "compare" / "RLoop-vs-vanilla", main_arms, along, forgetting
    )
    headlines = [c for cs in first.values() for c in cs
                 if c.figure in headline_figures([x.figure for x in cs])]  # fmt: skip
    sentence = verdict(headlines, "RLoop", "vanilla")
    ablations = [
        (arm.summary, Arms("RLoop", arm.summary, analyses[RLOOP.name], analyses[arm.name]))
        for arm in ABLATIONS
    ]
    lines = [f"Budget: {json.dumps(asdict(budget))}; seeds {list(seeds)}.", ""]
    lines += [*table_one_markdown(main_arms, first), "", *along_markdown(main_arms, along)]
    lines += ["", *ablation_markdown(ablations), *forgetting_markdown(main_arms)]
    lines += diversity_markdown([(arm.summary, analyses[arm.name]) for arm in ARMS])
    lines += ["", half_width_line(first, f"pass@{SAMPLES}"), "", sentence]
    lines += ["", *(f"picture: {path}" for path in pictures)]
    console.say(sentence)
    return "\n".join(lines)


def compare_command(args: argparse.Namespace, console: Console) -> int:
    workdir = args.workdir.resolve()
    budget = Budget()
    build_assets(workdir / "assets", budget)
    results = run_jobs(jobs(workdir, args.seeds, budget), args.workers, workdir / "logs", console)
    minutes = (time.monotonic() - console.started) / 60
    markdown = results_markdown(workdir, args.seeds, budget, console)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    markdown += f"\n\n{minutes:.1f} minutes of wall time for the runs ({args.workers} workers; "
    markdown += f"load average at the end {load})."
    (workdir / "results.md").write_text(markdown + "\n")
    (workdir / "updates.json").write_text(json.dumps(results, indent=1))
    print(markdown)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    pilot = commands.add_parser("pilot", help="vanilla-only runs, evaluated every window")
    pilot.add_argument("workdir", type=Path)
    pilot.add_argument("--lr", type=float, nargs="+", default=[Budget().lr])
    pilot.add_argument("--windows", type=int, default=6)
    pilot.add_argument("--steps", type=int, default=10, help="RL steps per window")
    pilot.add_argument("--prompts", type=int, default=Budget().prompts_per_step)
    pilot.add_argument("--train-problems", type=int, default=Budget().train_problems)
    pilot.add_argument("--seed", type=int, default=0)
    pilot.add_argument("--workers", type=int, default=2)
    compare = commands.add_parser("compare", help="RLoop, vanilla and the ablations, paired")
    compare.add_argument("workdir", type=Path)
    compare.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    compare.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    console = Console()
    if args.command == "pilot":
        return pilot_command(args, console)
    return compare_command(args, console)


if __name__ == "__main__":
    sys.exit(main())
