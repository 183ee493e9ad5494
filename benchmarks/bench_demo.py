"""The demo as a benchmark: end-to-end time and validation mIoU with and without TTA.

Runs ``fastai-sparse demo`` (``synthetic-rooms-seg``: lr_find, one-cycle training, validation,
4-view TTA, report) on the CPU and records, next to each other, the demo's mIoU, its mIoU with
TTA (the TTA gain) and the chance level measured on the same validation rooms (the
majority-class predictor). Targets: under 3 minutes end to end, mIoU >= 0.90.

    python benchmarks/bench_demo.py            # the demo's settings
    python benchmarks/bench_demo.py --quick    # a one-epoch smoke run

Prints a table and writes ``benchmarks/results/demo.json``; ``--picture`` also copies the demo's
prediction picture to ``docs/images/demo.png`` (the README's picture).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--picture", action="store_true", help="update docs/images/demo.png")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import torch

    from fastai_sparse.demo import run_demo

    out = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    load_before = os.getloadavg()
    t = time.time()
    s = run_demo(out, seed=args.seed, quick=args.quick, quiet=True)
    wall = time.time() - t
    rows = [
        ("end to end (s)", wall, "target < 180"),
        ("training (s)", s["seconds"]["train"], f"{s['settings']['epochs']} epochs"),
        ("validation mIoU", s["miou"], "target >= 0.90"),
        (
            f"validation mIoU, TTA x{s['settings']['tta']}",
            s["miou_tta"],
            f"gain {s['miou_tta'] - s['miou']:+.3f}",
        ),
        ("chance mIoU (majority class, same rooms)", s["chance_miou"], "baseline"),
        ("mIoU / chance", s["miou"] / s["chance_miou"], "ratio"),
    ]
    print(f"demo benchmark: {torch.get_num_threads()} threads, load average before {load_before[0]:.1f}")
    for name, value, note in rows:
        print(f"  {name:42s} {value:8.3f}   {note}")
    result = {
        "machine": {
            "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "quick": args.quick,
        "wall_seconds": wall,
        "summary": {k: v for k, v in s.items() if k not in ("weights", "report")},
    }
    dest = ROOT / "benchmarks" / "results" / ("demo-quick.json" if args.quick else "demo.json")
    dest.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {dest}")
    if args.picture:
        (ROOT / "docs" / "images").mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "prediction.png", ROOT / "docs" / "images" / "demo.png")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
