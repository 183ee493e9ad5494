"""Spatial targets benchmark: each synthetic task trained a few minutes on CPU, against a
no-learning baseline measured in the same run.

- synthetic-boxes-det (and -vfe): mAP@0.25 / mAP@0.5 on the validation rooms; baseline: the same
  model untrained (its random-init detections), and a "class mean box at the room centre"
  predictor (one box per class, the training set's mean size at the centre of the points).
- synthetic-keypoints: mean distance, PCK@0.1 and axis angle error on validation arrows;
  baseline: every keypoint at its training-set mean position (and the mean axis).

Run: ``python benchmarks/bench_spatial.py [--quick] [--tasks ...]``; writes
benchmarks/results/spatial.json (through ``benchmarks/harness.py``) and prints a table.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Bench, add_common_args

warnings.simplefilter("ignore")


def _quiet_fit(learn, epochs: int, lr: float) -> None:
    import fastai.callback.progress  # noqa: F401

    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(epochs, lr)


def _validate(learn) -> dict:
    import fastai.callback.progress  # noqa: F401

    with learn.no_bar(), learn.no_logging():
        vals = learn.validate()
    names = ["valid_loss"] + [m.name for m in learn.metrics]
    return {n: (float(v) if v is not None else None) for n, v in zip(names, vals)}


def det_center_baseline(train_ds, valid_ds, classes) -> dict:
    """mAP of one box per class at the centre of the points with the class's mean training size."""
    from fastai_sparse.box_ops import mean_average_precision

    sizes = {c: [] for c in range(len(classes))}
    for cl in train_ds:
        for s, lab in zip(cl.target.sizes, cl.target.labels):
            sizes[int(lab)].append(s)
    mean = {c: np.mean(v, 0) if v else np.full(3, 0.5) for c, v in sizes.items()}
    pb, ps, pl, gb, gl = [], [], [], [], []
    for cl in valid_ds:
        ctr = (cl.xyz.min(0) + cl.xyz.max(0)) / 2
        boxes = [np.r_[ctr[:2], mean[c][2] / 2, mean[c], 0.0] for c in range(len(classes))]
        pb.append(np.array(boxes))
        ps.append(np.ones(len(classes)))
        pl.append(np.arange(len(classes)))
        b = cl.target
        gb.append(np.c_[b.centers, b.sizes, b.yaw])
        gl.append(b.labels)
    return {
        f"map-{t:g}": mean_average_precision(pb, ps, pl, gb, gl, t, len(classes))["map"] for t in (0.25, 0.5)
    }


def run_detection(
    name: str, n_train: int, n_valid: int, epochs: int, points: int, bs: int, lr: float
) -> dict:
    from fastai_sparse.registry import default_registry

    task = default_registry().get("task", name)
    dls = task.dataloaders(bs=bs, n=n_train, points=points)
    dls_eval = task.dataloaders(bs=bs, n=n_valid, points=points)  # the first n_valid validation rooms
    torch.manual_seed(0)
    learn = task.learner(dls, path=Path("/tmp"))
    learn.dls.valid = dls_eval.valid
    base = _validate(learn)
    t0 = time.time()
    _quiet_fit(learn, epochs, lr)
    train_s = time.time() - t0
    res = _validate(learn)
    ds = task.datasets(n=n_valid, points=points)
    chance = det_center_baseline(
        task.datasets(n=n_train, points=points)["train"], ds["valid"], task.target.classes
    )
    return {
        "task": name,
        "train_rooms": n_train,
        "valid_rooms": n_valid,
        "points": points,
        "epochs": epochs,
        "bs": bs,
        "lr": lr,
        "train_seconds": round(train_s, 1),
        "trained": res,
        "untrained": base,
        "class_mean_box_at_centre": chance,
    }


def run_keypoints(n_train: int, n_valid: int, epochs: int, bs: int, lr: float) -> dict:
    from fastai_sparse.registry import default_registry

    task = default_registry().get("task", "synthetic-keypoints")
    dls = task.dataloaders(bs=bs, n=max(n_train, n_valid))
    dls_eval = task.dataloaders(bs=bs, n=n_valid)
    torch.manual_seed(0)
    learn = task.learner(dls, path=Path("/tmp"))
    learn.dls.valid = dls_eval.valid
    t0 = time.time()
    _quiet_fit(learn, epochs, lr)
    train_s = time.time() - t0
    res = _validate(learn)
    ds = task.datasets(n=max(n_train, n_valid))
    train = [ds["train"][i].target for i in range(n_train)]
    mean_p = np.mean([k.points for k in train], 0)
    mean_a = np.mean([k.axes for k in train], 0)
    mean_a /= np.linalg.norm(mean_a, axis=1, keepdims=True)
    valid = [ds["valid"][i].target for i in range(n_valid)]
    d = np.array([np.linalg.norm(k.points - mean_p, axis=1) for k in valid])
    ang = np.degrees(np.arccos(np.clip([(k.axes * mean_a).sum(1) for k in valid], -1, 1)))
    return {
        "task": "synthetic-keypoints",
        "train_samples": n_train,
        "valid_samples": n_valid,
        "epochs": epochs,
        "bs": bs,
        "lr": lr,
        "train_seconds": round(train_s, 1),
        "trained": res,
        "mean_position_baseline": {
            "mean-distance": float(d.mean()),
            "pck-0.1": float((d <= 0.1).mean()),
            "axis-angle-error": float(ang.mean()),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(ap)
    ap.add_argument(
        "--tasks",
        nargs="*",
        default=["synthetic-keypoints", "synthetic-boxes-det", "synthetic-boxes-det-vfe"],
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/spatial.json)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bench = Bench(
        "spatial",
        "spatial targets (boxes, keypoints) trained a few minutes vs no-learning baselines of the same run",
        quick=args.quick,
        strict=args.strict,
        out=args.out,
    )
    q = args.quick
    for name in args.tasks:
        t0 = time.time()
        if name == "synthetic-keypoints":
            r = run_keypoints(32 if q else 256, 16 if q else 64, 1 if q else 8, 16, 1e-2)
        else:
            r = run_detection(
                name, 8 if q else 32, 4 if q else 16, 1 if q else 8, 3000 if q else 4000, 4, 3e-3
            )
        r["wall_seconds"] = round(time.time() - t0, 1)
        bench.info.setdefault("tasks", {})[name] = r
        if name == "synthetic-keypoints":
            base = r["mean_position_baseline"]
            for m, better in (("mean-distance", False), ("pck-0.1", True), ("axis-angle-error", False)):
                bench.figure(
                    f"{name}/{m}",
                    r["trained"][m],
                    baseline=base[m],
                    baseline_label="mean training position",
                    higher_is_better=better,
                    label=f"{name}: {m}, {r['epochs']} epochs",
                    readme=m == "pck-0.1",
                )
        else:
            for m in ("map-0.25", "map-0.5"):
                bench.figure(
                    f"{name}/{m}",
                    r["trained"][m],
                    baseline=r["class_mean_box_at_centre"][m],
                    baseline_label="class mean box at centre",
                    higher_is_better=True,
                    label=f"{name}: mAP@{m[4:]}, {r['epochs']} epochs",
                    readme=m == "map-0.25",
                    untrained=r["untrained"][m],
                )
        bench.figure(f"{name}/train_seconds", r["train_seconds"], "s", label=f"{name}: training")
    bench.print_table()
    bench.write()


if __name__ == "__main__":
    main()
