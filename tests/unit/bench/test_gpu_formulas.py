"""The GPU bench's figures come from these formulas; check them by hand."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"


def load_gpu_common() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_common", BENCH / "gpu_common.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu = load_gpu_common()


def test_mfu_is_six_flops_per_parameter_token_over_the_peak() -> None:
    # 1.5e9 parameters x 131,072 tokens in 4.62 s on a 989 TFLOP/s card.
    expected = 6 * 1.5e9 * 131072 / 4.62 / 989e12
    assert gpu.mfu(1_500_000_000, 131_072, 4.62) == pytest.approx(expected)
    assert gpu.mfu(1_500_000_000, 131_072, 4.62) == pytest.approx(0.2582, abs=1e-4)


def test_decode_bound_reads_every_weight_once_per_step() -> None:
    # 1 GB of weights at 3 TB/s: 3,000 steps/s, one token per sequence per step.
    assert gpu.decode_bound_tokens_per_s(10**9, 3e12, batch=512) == pytest.approx(1_536_000)


def test_log_prob_gap_compares_aligned_tokens() -> None:
    gap = gpu.log_prob_gap([[-1.0, -2.0], [-0.5]], [[-1.5, -2.0], [-0.25]])
    assert gap == {"mean_abs": pytest.approx(0.25), "max_abs": 0.5, "tokens": 3}
    with pytest.raises(ValueError):
        gpu.log_prob_gap([[-1.0]], [[-1.0, -2.0]])
