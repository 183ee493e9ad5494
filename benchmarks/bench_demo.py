"""The demo as a benchmark: end-to-end time and validation mIoU with and without TTA.

Runs ``fastai-sparse demo`` (``synthetic-rooms-seg``: lr_find, one-cycle training, validation,
4-view TTA, report) on the CPU and records, next to each other, the demo's mIoU, its mIoU with
TTA (the TTA gain) and the chance level measured on the same validation rooms (the
majority-class predictor). Targets: under 3 minutes end to end, mIoU >= 0.90. The thread
count and the OpenMP wait are the ones the command chooses (:mod:`fastai_sparse.threads`:
every core and spinning threads on an idle machine, fewer on a busy one).

    python benchmarks/bench_demo.py            # the demo's settings
    python benchmarks/bench_demo.py --quick    # a one-epoch smoke run

Prints a table and writes ``benchmarks/results/demo.json`` (``results/quick/`` for ``--quick``); ``--picture`` also copies the demo's
prediction picture to ``docs/images/demo.png`` (the README's picture).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import Bench, add_common_args, loadavg

TARGET_SECONDS = 180.0
TARGET_MIOU = 0.90


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(ap)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--picture", action="store_true", help="update docs/images/demo.png")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    from fastai_sparse.threads import set_threads

    # the threads and the OpenMP wait `fastai-sparse demo` would choose here, set before torch
    # loads as the command does (run_demo alone keeps torch's default count)
    choice = set_threads(wait=True)
    import torch

    from fastai_sparse.demo import run_demo

    bench = Bench(
        "demo",
        "fastai-sparse demo end to end (lr_find, one-cycle, validation, TTA, report) on the CPU",
        quick=args.quick,
        strict=args.strict,
    )
    out = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    load_before = loadavg()
    t = time.time()
    s = run_demo(out, seed=args.seed, quick=args.quick, quiet=True)
    wall = time.time() - t
    load = {"group": "demo", "before": load_before, "after": loadavg(), "repeat": 1}
    threads = torch.get_num_threads()
    bench.figure(
        "end_to_end",
        wall,
        "s",
        target=TARGET_SECONDS,
        label=f"demo, end to end ({s['settings']['epochs']} epochs)",
        readme=True,
        load=load,
        threads=threads,
    )
    bench.figure("training", s["seconds"]["train"], "s", label="demo, training only", load=load)
    bench.figure(
        "miou",
        s["miou"],
        baseline=s["chance_miou"],
        baseline_label="chance (majority class)",
        higher_is_better=True,
        value_target=TARGET_MIOU,
        label="demo, validation mIoU",
        readme=True,
        load=load,
        threads=threads,
    )
    bench.figure(
        "miou_tta",
        s["miou_tta"],
        baseline=s["miou"],
        baseline_label="without TTA",
        higher_is_better=True,
        label=f"demo, validation mIoU with TTA x{s['settings']['tta']}",
        readme=True,
        load=load,
        threads=threads,
    )
    bench.info["summary"] = {k: v for k, v in s.items() if k not in ("weights", "report")}
    bench.info["thread_choice"] = choice.as_dict()
    bench.print_table()
    bench.write()
    if args.picture:
        (ROOT / "docs" / "images").mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "prediction.png", ROOT / "docs" / "images" / "demo.png")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
