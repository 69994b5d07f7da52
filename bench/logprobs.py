"""Memory of the policy-update's log-probs: chunked output layer vs full fp32 logits.

    .venv/bin/python bench/logprobs.py [--sequences 2] [--positions 1024] [--hidden 896]

The last step of every DAPO micro-batch: final hidden states (B, T, H) -> per-token
log-probs of the sampled tokens and the entropy, then backward. "full" is what
TrainEngine.forward did before: the whole (B, T, V) logits in fp32, a logsumexp
and gather over them, the entropy from a log-softmax. "ours" is
rloop_trainer.logprobs.next_token_log_probs_and_entropy (1,024 positions at a time,
checkpointed). Qwen2.5's 151,936-token vocabulary; 0.5B's hidden size by default.
Each runs in its own process on the CPU, where ru_maxrss is the peak memory; the
log-probs and the hidden-state gradients must agree. Timings on a CPU say nothing
about a GPU; the memory ratio carries over (the GPU allocator holds the same tensors).
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
    hidden, targets, layer = _inputs(args)
    compute = next_token_log_probs_and_entropy if args.child == "ours" else _full
    started = time.perf_counter()
    log_probs, entropy = compute(hidden, targets, layer)
    torch.autograd.backward(log_probs.sum())
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "log_prob_sum": float(log_probs.detach().sum()),
        "entropy_sum": float(entropy.sum()),
        "grad_sum": float(hidden.grad.abs().sum()) if hidden.grad is not None else 0.0,
    }


def in_child(name: str, args: argparse.Namespace) -> dict[str, float]:
    """One contender in a fresh process: its reply plus its peak RSS (ru_maxrss via wait4)."""
    command = [sys.executable, __file__, "--child", name]
    command += [f"--{key}={getattr(args, key)}" for key in ("sequences", "positions", "hidden")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    reply = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench step {name} failed")
    return {**json.loads(reply), "peak_rss_mib": usage.ru_maxrss / 1024}


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
    for key in ("log_prob_sum", "entropy_sum", "grad_sum"):
        theirs, mine = results["full"][key], results["ours"][key]
        if abs(theirs - mine) > 1e-4 * abs(theirs):
            raise SystemExit(f"{key} differs: full {theirs} vs ours {mine}")
    tokens = args.sequences * args.positions
    print(f"{tokens:,} tokens x {VOCAB:,} vocabulary, hidden {args.hidden}, fp32 on CPU")
    for name, result in results.items():
        print(f"{name:5s} peak RSS {result['peak_rss_mib']:8,.0f} MiB  {result['seconds']:6.1f} s")
    full, ours = results["full"], results["ours"]
    print(
        f"ours / full: peak memory x{ours['peak_rss_mib'] / full['peak_rss_mib']:.2f}, "
        f"time x{ours['seconds'] / full['seconds']:.2f}"
    )


if __name__ == "__main__":
    main()
