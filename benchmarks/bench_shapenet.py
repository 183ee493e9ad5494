"""Benchmark: ShapeNet-style part segmentation on CPU, against the chance level of the same run.

Trains the ``shapenet-part`` recipe (unit-ball normalisation, anisotropic scale + small
rotation + jitter, normals as voxel features, category-masked logits, UNet m=16) on the
embedded synthetic multi-part shapes (core's SyntheticParts: airplane, chair, lamp, mug,
table, relabelled with ShapeNet global part ids) for a few minutes, then reports the ShapeNet
instance and class mIoU on held-out shapes (with and without TTA voting), next to the chance
level measured in the same run: each category's majority part (counted on the training
shapes) predicted for every point of every validation shape. Prints a table and writes
benchmarks/results/shapenet.json (through ``benchmarks/harness.py``).

    python benchmarks/bench_shapenet.py            # about 3-6 minutes on 2 CPU threads
    python benchmarks/bench_shapenet.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Bench, add_common_args


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(ap)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--train", type=int, default=None, help="training shapes")
    ap.add_argument("--valid", type=int, default=60, help="validation shapes")
    ap.add_argument("--points", type=int, default=1024)
    ap.add_argument("--scale", type=float, default=16.0, help="voxels per unit at unit-ball size")
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--bs", type=int, default=8)
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/shapenet.json)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    bench = Bench(
        "shapenet",
        "shapenet-part recipe (normals, category-masked UNet m=16) trained on synthetic ShapeNet-like "
        "multi-part shapes; ShapeNet instance/class mIoU on held-out shapes vs the majority-part chance level",
        quick=args.quick,
        strict=args.strict,
        out=args.out,
    )
    epochs = args.epochs or (1 if args.quick else 8)
    n_train = args.train or (16 if args.quick else 160)
    n_valid = 10 if args.quick else args.valid

    from fastai_sparse_shapenet.categories import NUM_PARTS, part_to_category
    from fastai_sparse_shapenet.fixtures import SyntheticShapeNet
    from fastai_sparse_shapenet.metrics import shapenet_scores
    from fastai_sparse_shapenet.predict import evaluate
    from fastai_sparse_shapenet.tasks import make_task

    task = make_task("shapenet-part-synthetic", normals=True, synthetic=True, scale=args.scale)
    train = SyntheticShapeNet(n_train, "train", points=args.points)
    valid = SyntheticShapeNet(n_valid, "valid", points=args.points)
    valid_clouds = [valid[i] for i in range(len(valid))]

    # chance: majority part of each category, counted on the training shapes
    counts = np.zeros(NUM_PARTS)
    for c in train:
        counts += np.bincount(c.attrs["labels"], minlength=NUM_PARTS)
    p2c = part_to_category()
    chance_preds = []
    for c in valid_clouds:
        ids = np.flatnonzero(p2c == c.meta["category_index"])
        chance_preds.append(np.full(len(c), ids[np.argmax(counts[ids])]))
    chance = shapenet_scores(
        chance_preds,
        [c.attrs["labels"] for c in valid_clouds],
        [c.meta["category_index"] for c in valid_clouds],
    )

    from fastai_sparse.learner import sparse_dataloaders

    dls = sparse_dataloaders(
        train,
        valid,
        task.pipeline(train=True),
        task.pipeline(train=False),
        task.target,
        bs=args.bs,
        path="/tmp",
    )
    learn = task.learner(dls, path="/tmp")
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(epochs, args.lr)
    train_s = time.perf_counter() - t0
    names = learn.recorder.metric_names[1:-1]
    history = [dict(zip(names, map(float, v))) for v in learn.recorder.values]
    t0 = time.perf_counter()
    ours = evaluate(learn.model, task, valid_clouds, tta=1)
    ours_tta = evaluate(learn.model, task, valid_clouds, tta=3)
    eval_s = time.perf_counter() - t0

    bench.info.update(
        data={
            "train_shapes": n_train,
            "valid_shapes": n_valid,
            "points": args.points,
            "categories": list(train.src.categories),
        },
        settings={"epochs": epochs, "bs": args.bs, "lr": args.lr, "voxels_per_unit": args.scale},
        per_category={k: v[1] for k, v in ours["per_category"].items()},
        per_category_chance={k: v[1] for k, v in chance["per_category"].items()},
        history=history,
        eval_seconds=eval_s,
    )
    for key, what in (("instance_miou", "instance"), ("class_miou", "class")):
        bench.figure(
            key,
            ours[key],
            baseline=chance[key],
            baseline_label="chance (majority part)",
            higher_is_better=True,
            label=f"ShapeNet-style parts (synthetic), {what} mIoU, {epochs} epochs",
            readme=key == "instance_miou",
        )
        bench.figure(
            f"{key}_tta3",
            ours_tta[key],
            baseline=ours[key],
            baseline_label="without TTA",
            higher_is_better=True,
            label=f"same, {what} mIoU with TTA 3 votes",
        )
    bench.figure(
        "train_seconds",
        train_s,
        "s",
        label=f"ShapeNet-style parts, training {epochs} epochs of {n_train} shapes",
    )
    bench.print_table()
    bench.write()


if __name__ == "__main__":
    main()
