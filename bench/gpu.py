"""GPU bench (issue 7): rollouts, the colocated DAPO phase, RFT, MFU and memory on one GPU.

    hack/gpu/install.sh N ...          # once per machine: vLLM + wheels into /tmp/site
    PYTHONPATH=/tmp/site:trainer_image python3 bench/gpu.py [--shape 0.5b] [--stages ...]

Everything starts from random weights built from a config (no download):
  peaks    measured bf16 matmul rate and device-copy bandwidth
  rollout  tokens/s of the vLLM engine vs the transformers engine (the trainer's two
           RolloutEngines, same prompts and SamplingSpec), vs the weight-bandwidth
           bound; memory with vLLM awake and asleep
  update   the DAPO policy update (DeepSpeed) on 2048-token sequences vs a plain
           transformers forward+backward of the same shape: MFU = 6*N*tokens/time/peak
  rft      the RFT phase on 2048-token expert samples: MFU of its steps
  dapo     the DAPO phase with vLLM colocated with DeepSpeed on the toy task (a
           Qwen2-shaped model with the toy tokenizer's vocabulary, warm-started):
           killed after its step-2 checkpoint, resumed to the end; time split per
           step; vLLM's log-probs after the last weight sync vs the trainer's
Each stage runs in its own process (a crash or OOM loses only that stage) and writes
`<work>/results/<stage>.json`; the table of every result so far is printed last, and
results plus logs are copied to $OUT when that is set. `--shape tiny --stages ...`
runs on a CPU (vLLM measurements then fail with their error, the rest runs).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import traceback
from pathlib import Path
from typing import Any

from gpu_common import DATASHEET_HBM_BYTES_PER_S, SHAPES, STAGES, Result, decode_bound_tokens_per_s
from gpu_stages import CHILD_STAGES


def result_path(work: Path, stage: str, shape: str) -> Path:
    return work / "results" / f"{stage}-{shape}.json"


def run_child(stage: str, work: Path, shape: str) -> None:
    started = time.perf_counter()
    try:
        result = CHILD_STAGES[stage](work, shape)
    except Exception as exc:
        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    result["wall_s"] = round(time.perf_counter() - started, 1)
    path = result_path(work, stage, shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))


def spawn(stage: str, work: Path, shape: str, log_name: str) -> subprocess.Popen[bytes]:
    result_path(work, stage, shape).unlink(missing_ok=True)
    log = (work / "logs" / f"{log_name}.log").open("wb")
    command = [sys.executable, __file__, "--child", stage, "--shape", shape, "--work", str(work)]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def collect(
    process: subprocess.Popen[bytes], stage: str, work: Path, shape: str, log_name: str
) -> Result:
    path = result_path(work, stage, shape)
    if path.exists():
        result: Result = json.loads(path.read_text())
        return result
    tail = (work / "logs" / f"{log_name}.log").read_text(errors="replace")[-1500:]
    return {"error": f"exited with {process.returncode} before writing results; log tail: {tail}"}


def run_stage(stage: str, work: Path, shape: str, timeout_s: float) -> Result:
    process = spawn(stage, work, shape, f"{stage}-{shape}")
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return {"error": f"timed out after {timeout_s:.0f}s"}
    return collect(process, stage, work, shape, f"{stage}-{shape}")


def wait_for(path: Path, process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        if path.exists():
            return True
        time.sleep(0.2)
    return path.exists()


def stage_dapo(work: Path, shape: str, timeout_s: float) -> Result:
    """Kill a 4-step DAPO run right after its step-2 checkpoint, then resume it to the end."""
    output = work / f"dapo-{shape}"
    subprocess.run(["rm", "-rf", str(output)], check=True)
    first = spawn("dapo-run", work, shape, f"dapo-{shape}-killed")
    marker = output / "checkpoints" / "step-000002" / "_SUCCESS"
    if not wait_for(marker, first, timeout_s):
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        return {
            "error": "no step-2 checkpoint: "
            + str(collect(first, "dapo-run", work, shape, f"dapo-{shape}-killed"))
        }
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    result = run_stage("dapo-run", work, shape, timeout_s) | {"killed_after_checkpoint": 2}
    if (output / "_SUCCESS").exists():
        result["marker"] = json.loads((output / "_SUCCESS").read_text() or "{}")
    metrics_file = output / "metrics.jsonl"
    if metrics_file.exists():
        rows = [json.loads(line) for line in metrics_file.read_text().splitlines() if line]
        result["steps"] = [int(row["step"]) for row in rows]
        result["accuracy"] = [round(row["accuracy"], 3) for row in rows]
        result["split"] = step_split(rows[2:], result.get("score_s_total", 0.0))
    return result


def step_split(resumed_rows: list[Result], score_s_total: float) -> Result:
    """Mean seconds per step of the resumed run's steps: generate / score / write / train / sync."""
    if not resumed_rows:
        return {}
    count = len(resumed_rows)

    def mean(key: str) -> float:
        return sum(float(row.get(key, 0.0)) for row in resumed_rows) / count

    score = score_s_total / count
    return {
        "generate": round(mean("time_rollout_s") - score, 3),
        "score": round(score, 3),
        "write": round(mean("time_write_s"), 3),
        "train": round(mean("time_train_s"), 3),
        "sync": round(mean("time_sync_s"), 3),
        "rollout_tokens_per_s": round(mean("rollout_tokens_per_s")),
    }


def ratio(numerator: Any, denominator: Any) -> str:
    return f"{numerator / denominator:.2f}x" if numerator and denominator else "-"


def table_rows(results: dict[str, Result], shape: str) -> list[tuple[str, str, str]]:
    """(measurement, ours, baseline or bound) rows of the printed table."""
    peaks = results.get(f"peaks-{shape}", {})
    roll, upd = results.get(f"rollout-{shape}", {}), results.get(f"update-{shape}", {})
    rft, dapo = results.get(f"rft-{shape}", {}), results.get(f"dapo-{shape}", {})
    bandwidth = peaks.get("copy_tb_s", DATASHEET_HBM_BYTES_PER_S / 1e12) * 1e12
    weights = roll.get("parameters", 0) * 2
    bound = decode_bound_tokens_per_s(weights, bandwidth, roll["sequences"]) if weights else 0
    vllm, hf = roll.get("vllm_tokens_per_s"), roll.get("hf_tokens_per_s")
    split, sync = dapo.get("split", {}), dapo.get("sync_check", {})
    return [
        (
            "device / matmul TFLOP/s / copy TB/s",
            f"{peaks.get('device')} {peaks.get('matmul_tflops')} {peaks.get('copy_tb_s')}",
            "",
        ),
        ("rollout tok/s vLLM vs transformers", f"{vllm}", f"{hf} ({ratio(vllm, hf)}, goal >= 10x)"),
        (
            "rollout vs weight-bandwidth bound",
            f"{ratio(vllm, bound)} of {bound:.0f}",
            f"transformers {ratio(hf, bound)}",
        ),
        (
            "GPU used GiB: before / vLLM awake / asleep",
            f"{roll.get('used_gib_before')} / {roll.get('used_gib_vllm_awake')} / "
            f"{roll.get('used_gib_vllm_asleep')}",
            f"weights {roll.get('weight_gib_bf16')} GiB",
        ),
        (
            "policy update MFU vs plain fwd+bwd",
            f"{upd.get('update_mfu')}",
            f"{upd.get('plain_mfu')} ({ratio(upd.get('update_mfu'), upd.get('plain_mfu'))}, "
            "goal >= 1.4x)",
        ),
        (
            "peak GiB update / plain",
            f"{upd.get('update_peak_gib')}",
            f"{upd.get('plain_peak_gib')}",
        ),
        (
            "RFT step s / MFU / peak GiB",
            f"{rft.get('step_s')} / {rft.get('rft_mfu')} / {rft.get('peak_gib')}",
            "",
        ),
        (
            "DAPO steps (killed after 2, resumed)",
            f"{dapo.get('steps')}",
            f"accuracy {dapo.get('accuracy')}",
        ),
        (
            "DAPO s/step gen/score/write/train/sync",
            "/".join(str(split.get(k)) for k in ("generate", "score", "write", "train", "sync")),
            "",
        ),
        (
            "DAPO vLLM log-prob gap after sync",
            f"trained {sync.get('vs_trained')}",
            f"start {sync.get('vs_start')}",
        ),
        (
            "DAPO GiB used while training (vLLM asleep)",
            f"{dapo.get('used_gib_training_max')}",
            f"peak allocated {dapo.get('peak_allocated_gib')}",
        ),
    ]


def print_table(results: dict[str, Result], shape: str) -> None:
    errors = [
        (name, key, value)
        for name, result in sorted(results.items())
        for key, value in result.items()
        if key.endswith("error")
    ]
    for name, key, value in errors:
        print(f"FAILED {name}.{key}: {value}")
    rows = table_rows(results, shape)
    width = max(len(row[0]) for row in rows)
    print(f"\n== bench/gpu.py, shape {shape} ==")
    for name, ours, other in rows:
        print(f"{name:<{width}}  {ours:<28}  {other}")


def export(work: Path, out: Path, results: dict[str, Result]) -> None:
    """results.json and logs.tar.gz under $OUT (the device tool brings back few files)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True))
    with tarfile.open(out / "logs.tar.gz", "w:gz") as archive:
        archive.add(work / "logs", arcname="logs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="0.5b")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated: {STAGES}")
    parser.add_argument("--work", type=Path, default=Path("/tmp/rloop-gpu-bench"))
    parser.add_argument("--timeout", type=float, default=420, help="seconds per stage process")
    parser.add_argument("--child", choices=sorted(CHILD_STAGES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child, args.work, args.shape)
        return
    (args.work / "logs").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not any((Path(p) / "flashinfer").exists() for p in sys.path if p):
        os.environ.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")  # vLLM's sampler imports it
    results: dict[str, Result] = {}
    for stage in args.stages.split(","):
        started = time.perf_counter()
        if stage == "dapo":
            result = stage_dapo(args.work, args.shape, args.timeout)
        else:
            result = run_stage(stage, args.work, args.shape, args.timeout)
        result_path(args.work, stage, args.shape).write_text(json.dumps(result, indent=1))
        print(
            f"{stage}: {time.perf_counter() - started:.0f}s {json.dumps(result)[:1500]}", flush=True
        )
        results = {
            p.stem: json.loads(p.read_text()) for p in (args.work / "results").glob("*.json")
        }
        if os.environ.get("OUT"):  # after every stage: a later one may outlive the device call
            export(args.work, Path(os.environ["OUT"]), results)
    print_table(results, args.shape)


if __name__ == "__main__":
    main()
