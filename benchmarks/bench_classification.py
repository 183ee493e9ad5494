"""Benchmark of whole-shape classification (and up-axis regression) on the embedded synthetic
shapes, CPU only, a few minutes.

Run from the repository root::

    python benchmarks/bench_classification.py            # ~ 3-6 minutes on 2 cores
    python benchmarks/bench_classification.py --quick    # smaller, ~ 1 minute

Classification: core's task ``synthetic-shapes-cls`` (8 balanced classes, sparse ResNet +
global pooling head) trained with ``fit_one_cycle``. Every figure stands next to baselines
measured in the same run on the same validation set: chance 1/K, the majority class, the
untrained model, and a non-deep baseline (nearest class centroid on sorted bounding-box extents
and the radial-distance histogram, fitted on the training set). Accuracy is reported plain and
with 4-view rotation voting (TTA).

Regression (``synthetic-shapes-reg``): mean angle error of the predicted up axis against the
baseline that always predicts the mean training direction.

Prints a table and writes ``benchmarks/results/classification.json`` (through
``benchmarks/harness.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "core" / "src"))
sys.path.insert(0, str(ROOT / "plugins" / "classification" / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fastai.callback.progress import ProgressCallback  # noqa: F401  (learn.no_bar needs it)
from harness import Bench, add_common_args

from fastai_sparse import get_task
from fastai_sparse.learner import sparse_dataloaders
from fastai_sparse.metrics import confusion_matrix
from fastai_sparse.voxelize import Voxelizer
from fastai_sparse_classification.confusion import class_report
from fastai_sparse_classification.regression import angle_error_degrees


def _descriptor(cloud) -> np.ndarray:
    """Sorted bbox extents + a 16-bin histogram of distances to the centroid (scale-normalised)."""
    x = cloud.xyz.astype(np.float64)
    x = x - x.mean(0)
    r = np.linalg.norm(x, axis=1)
    x, r = x / r.max(), r / r.max()
    ext = np.sort(x.max(0) - x.min(0))
    hist = np.histogram(r, bins=16, range=(0, 1))[0] / len(r)
    return np.concatenate([ext, hist])


def nearest_centroid_accuracy(train, valid, k: int) -> float:
    ftr = np.stack([_descriptor(c) for c in train])
    ytr = np.array([c.target for c in train])
    cent = np.stack([ftr[ytr == j].mean(0) for j in range(k)])
    fva = np.stack([_descriptor(c) for c in valid])
    yva = np.array([c.target for c in valid])
    pred = np.argmin(((fva[:, None] - cent[None]) ** 2).sum(-1), axis=1)
    return float((pred == yva).mean())


def bench_classification(args) -> dict:
    task = get_task("synthetic-shapes-cls")
    task = dataclasses.replace(task, voxelizer=Voxelizer(scale=args.scale, features=("ones",)))
    k = len(task.class_names)
    f = task.dataset_factory()
    train = f(split="train", n=args.n_train, points=args.points, seed=args.seed)
    valid = f(split="valid", n=args.n_valid, points=args.points, seed=args.seed)
    dls = sparse_dataloaders(
        train, valid, task.pipeline(True), task.pipeline(False), task.target, bs=args.bs, path="/tmp"
    )
    torch.manual_seed(args.seed)
    learn = task.learner(dls)
    yva = np.array([c.target for c in valid])

    def acc_of(preds) -> dict:
        cm = confusion_matrix(preds, torch.as_tensor(yva), k).numpy()
        rep = class_report(cm, task.class_names)
        return {"accuracy": rep["accuracy"], "mean_class_accuracy": rep["mean_class_accuracy"]}

    with learn.no_bar():
        untrained = acc_of(learn.get_preds(dl=dls.valid)[0])
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        learn.fit_one_cycle(args.epochs, args.lr)
    train_s = time.perf_counter() - t0
    with learn.no_bar():
        trained = acc_of(learn.get_preds(dl=dls.valid)[0])
        voted = acc_of(learn.tta(n=4)[0])
    return {
        "task": "synthetic-shapes-cls",
        "classes": k,
        "train_items": len(train),
        "valid_items": len(valid),
        "points": args.points,
        "voxel_scale": args.scale,
        "epochs": args.epochs,
        "train_seconds": round(train_s, 1),
        "seconds_per_epoch": round(train_s / args.epochs, 1),
        "chance": 1 / k,
        "majority_baseline": float(np.bincount(yva, minlength=k).max() / len(yva)),
        "untrained_model": untrained,
        "nearest_centroid_baseline": nearest_centroid_accuracy(train, valid, k),
        "trained": trained,
        "trained_tta4": voted,
        "accuracy_over_chance": trained["accuracy"] * k,
    }


def bench_regression(args) -> dict:
    task = get_task("synthetic-shapes-reg")
    f = task.dataset_factory()
    train = f(split="train", n=args.n_train, points=args.points, seed=args.seed)
    valid = f(split="valid", n=args.n_valid, points=args.points, seed=args.seed)
    dls = sparse_dataloaders(
        train, valid, task.pipeline(True), task.pipeline(False), task.target, bs=args.bs, path="/tmp"
    )
    torch.manual_seed(args.seed)
    learn = task.learner(dls)
    true = np.stack([np.asarray(c.target) for c in valid])
    mean_dir = np.stack([np.asarray(c.target) for c in train]).mean(0)
    baseline = float(angle_error_degrees(np.broadcast_to(mean_dir, true.shape), true).mean())
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        learn.fit_one_cycle(args.epochs, task.defaults["lr"])
    train_s = time.perf_counter() - t0
    with learn.no_bar():
        preds = learn.get_preds(dl=dls.valid)[0].numpy()
    err = float(angle_error_degrees(preds, true).mean())
    return {
        "task": "synthetic-shapes-reg",
        "train_items": len(train),
        "valid_items": len(valid),
        "epochs": args.epochs,
        "lr": task.defaults["lr"],
        "train_seconds": round(train_s, 1),
        "mean_direction_baseline_deg": baseline,
        "trained_angle_error_deg": err,
        "ratio_to_baseline": err / baseline,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(ap)
    ap.add_argument("--n-train", type=int, default=256)
    ap.add_argument("--n-valid", type=int, default=128)
    ap.add_argument("--points", type=int, default=512)
    ap.add_argument("--scale", type=float, default=8.0, help="voxels per unit (shapes span about 2 units)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--bs", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-regression", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default results/classification.json)")
    args = ap.parse_args()
    if args.quick:
        args.n_train, args.n_valid, args.epochs = 96, 64, 3
    torch.set_num_threads(args.threads)
    bench = Bench(
        "classification",
        "synthetic shapes: classification accuracy and up-axis regression vs baselines of the same run",
        quick=args.quick,
        strict=args.strict,
        out=args.out,
    )
    c = bench_classification(args)
    bench.info["classification"] = c
    ep = f"{c['epochs']} epochs"
    bench.figure(
        "accuracy",
        c["trained"]["accuracy"],
        baseline=c["chance"],
        baseline_label="chance 1/K",
        higher_is_better=True,
        label=f"synthetic shapes, 8 classes: accuracy, {ep}",
        readme=True,
    )
    bench.figure(
        "accuracy_vs_nearest_centroid",
        c["trained"]["accuracy"],
        baseline=c["nearest_centroid_baseline"],
        baseline_label="nearest centroid",
        higher_is_better=True,
        label="same, vs nearest class centroid (bbox + radial histogram)",
        readme=True,
    )
    bench.figure(
        "accuracy_tta4",
        c["trained_tta4"]["accuracy"],
        baseline=c["trained"]["accuracy"],
        baseline_label="without TTA",
        higher_is_better=True,
        label="same, with 4-rotation TTA",
    )
    bench.figure(
        "untrained_accuracy",
        c["untrained_model"]["accuracy"],
        baseline=c["chance"],
        baseline_label="chance 1/K",
    )
    bench.figure("train_seconds", c["train_seconds"], "s", label=f"classification training, {ep}")
    if not args.no_regression:
        r = bench_regression(args)
        bench.info["regression"] = r
        bench.figure(
            "regression_angle_error",
            r["trained_angle_error_deg"],
            "deg",
            baseline=r["mean_direction_baseline_deg"],
            baseline_label="mean direction",
            label=f"synthetic shapes: up-axis angle error, {r['epochs']} epochs",
            readme=True,
        )
        bench.figure(
            "regression_train_seconds",
            r["train_seconds"],
            "s",
            label=f"regression training, {r['epochs']} epochs",
        )
    bench.print_table()
    bench.write()


if __name__ == "__main__":
    main()
