"""``benchmarks/bench_engine.py --device cuda`` skips with the reason where there is no GPU."""

from __future__ import annotations

import pytest
import torch

from ..benchmarks.conftest import load


def test_cuda_run_without_a_gpu_is_skipped_with_the_reason(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the benchmark would run (minutes), not skip")
    bench = load("bench_engine")  # it puts benchmarks/ on sys.path for its harness
    out = tmp_path / "engine-cuda.json"
    assert bench.main(["--device", "cuda", "--quick", "--out", str(out)]) is None
    assert capsys.readouterr().out.strip() == (
        f"bench_engine --device cuda: skipped: torch {torch.__version__} "
        f"(built for CUDA {torch.version.cuda}) sees no CUDA device; nothing written"
        if torch.version.cuda
        else f"bench_engine --device cuda: skipped: torch {torch.__version__} (a CPU-only build) sees no CUDA "
        "device; nothing written"
    )
    assert not out.exists()


def test_spconv_cuda_baseline_reason():
    """spconv's CUDA rows need its CUDA build; a CPU build or none is named, not silently dropped."""
    reason = load("bench_engine").spconv_cuda_missing()
    try:
        from spconv.core_cc.cumm.common import CompileInfo
    except ImportError:
        assert reason.startswith("spconv not installed")
        return
    if tuple(CompileInfo.get_compiled_cuda_version()) == (-1, -1):
        assert "CPU-only build" in reason
    else:
        assert reason is None
