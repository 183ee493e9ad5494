"""Data-parallel training on CPU: 2 processes (torchrun, gloo) give the same confusion matrix
as one process on the same validation set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "core" / "src"


@pytest.mark.slow
def test_torchrun_two_cpu_processes_match_single_process(tmp_path):
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(SRC), str(HERE), os.environ.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1",
        PYTHONWARNINGS="ignore",
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(HERE / "ddp_worker.py"),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["world"] == r1["world"] == 2
    # both ranks hold the all-reduced matrix, and it equals the single-process one
    assert r0["ddp_cm"] == r1["ddp_cm"] == r0["single_cm"] == r1["single_cm"]
    # every validation point counted exactly once (the padding sample of rank 1 excluded)
    assert sum(map(sum, r0["ddp_cm"])) == r0["n_points"]
    assert r0["ddp_values"] == pytest.approx(r0["single_values"])
