"""Memory and time of the policy-update's log-probs: chunked output layer vs full logits.

    .venv/bin/python bench/logprobs.py [--sequences 2] [--positions 1024] [--hidden 896]

The last step of every DAPO micro-batch: final hidden states (B, T, H) -> per-token
log-probs of the sampled tokens and the entropy, then backward. "full" is what
TrainEngine.forward did before: the whole (B, T, V) logits in fp32, a logsumexp
and gather over them, the entropy from a log-softmax. "ours" is
rloop_trainer.logprobs.next_token_log_probs_and_entropy (1,024 positions at a time,
checkpointed). Qwen2.5's 151,936-token vocabulary; 0.5B's hidden size by default.
Each runs in its own process; the log-prob, entropy and gradient sums must agree.
On a CPU: fp32, one pass, peak memory = ru_maxrss. With CUDA: bf16 hidden states and
output layer as the trainer has them (softmax in fp32), median of 3 passes after a
warm-up, peak memory = the allocator's high-water mark. CPU timings say nothing about
a GPU; the memory ratio carries over.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the parent process must not import torch (its ru_maxrss is inherited)
    import torch

VOCAB = 151_936


def _inputs(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, torch.nn.Linear]:
    import torch

    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(args.sequences, args.positions, args.hidden, generator=generator)
    targets = torch.randint(0, VOCAB, (args.sequences, args.positions), generator=generator)
    layer = torch.nn.Linear(args.hidden, VOCAB, bias=False)
    with torch.no_grad():
        layer.weight.normal_(0.0, args.hidden**-0.5, generator=generator)
    if torch.cuda.is_available():
        hidden, targets = hidden.cuda().bfloat16(), targets.cuda()
        layer = layer.cuda().bfloat16()
    return hidden.requires_grad_(True), targets, layer


def _full(
    hidden: torch.Tensor, targets: torch.Tensor, layer: torch.nn.Linear
) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    logits = layer(hidden).float()
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    log_probs = picked - torch.logsumexp(logits, dim=-1)
    with torch.no_grad():
        log_p = torch.log_softmax(logits, dim=-1)
        entropy = -(log_p.exp() * log_p).sum(dim=-1)
    return log_probs, entropy


def child(args: argparse.Namespace) -> dict[str, float]:
    import torch
    from rloop_trainer.logprobs import next_token_log_probs_and_entropy

    torch.set_num_threads(os.cpu_count() or 1)
    cuda = torch.cuda.is_available()
    hidden, targets, layer = _inputs(args)

    def ours(
        hidden: torch.Tensor, targets: torch.Tensor, layer: torch.nn.Linear
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return next_token_log_probs_and_entropy(hidden, targets, layer, temperature=1.0)

    compute = ours if args.child == "ours" else _full

    def one_pass() -> tuple[float, torch.Tensor, torch.Tensor]:
        hidden.grad = None
        started = time.perf_counter()
        log_probs, entropy = compute(hidden, targets, layer)
        torch.autograd.backward(log_probs.sum())
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - started, log_probs.detach(), entropy

    if cuda:
        one_pass()  # warm-up: kernels, allocator
        torch.cuda.reset_peak_memory_stats()
    runs = [one_pass() for _ in range(3 if cuda else 1)]
    seconds, log_probs, entropy = sorted(runs, key=lambda run: run[0])[len(runs) // 2]
    result = {
        "seconds": seconds,
        "log_prob_sum": float(log_probs.float().sum()),
        "entropy_sum": float(entropy.float().sum()),
        "grad_sum": float(hidden.grad.float().abs().sum()) if hidden.grad is not None else 0.0,
    }
    if cuda:
        result["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return {**result, "cuda": float(cuda)}


def in_child(name: str, args: argparse.Namespace) -> dict[str, float]:
    """One contender in a fresh process: its reply, with its peak RSS (ru_maxrss via wait4)
    unless it measured the GPU allocator's peak itself."""
    command = [sys.executable, __file__, "--child", name]
    command += [f"--{key}={getattr(args, key)}" for key in ("sequences", "positions", "hidden")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    reply = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench step {name} failed")
    result: dict[str, float] = json.loads(reply)
    return {"peak_mib": usage.ru_maxrss / 1024, **result}  # a CUDA child reports its own


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sequences", type=int, default=2)
    parser.add_argument("--positions", type=int, default=1024)
    parser.add_argument("--hidden", type=int, default=896)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    results = {name: in_child(name, args) for name in ("full", "ours")}
    cuda = bool(results["ours"]["cuda"])
    tolerance = 1e-2 if cuda else 1e-4  # bf16 GEMMs may pick other kernels per chunk
    for key in ("log_prob_sum", "entropy_sum", "grad_sum"):
        theirs, mine = results["full"][key], results["ours"][key]
        if abs(theirs - mine) > tolerance * abs(theirs):
            raise SystemExit(f"{key} differs: full {theirs} vs ours {mine}")
    tokens = args.sequences * args.positions
    where = "bf16 on CUDA, allocator peak" if cuda else "fp32 on CPU, peak RSS"
    print(f"{tokens:,} tokens x {VOCAB:,} vocabulary, hidden {args.hidden}, {where}")
    for name, result in results.items():
        print(f"{name:5s} peak {result['peak_mib']:8,.0f} MiB  {result['seconds']:8.3f} s")
    full, ours = results["full"], results["ours"]
    print(
        f"ours / full: peak memory x{ours['peak_mib'] / full['peak_mib']:.2f}, "
        f"time x{ours['seconds'] / full['seconds']:.2f}"
    )


if __name__ == "__main__":
    main()
