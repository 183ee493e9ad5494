"""SemanticKITTI plugin benchmark: reading and validating scans, the data pipeline, one step of
the default model, and a short training run against a no-learning baseline.

    python benchmarks/bench_semantickitti.py            # about 10 minutes on 1 CPU thread
    python benchmarks/bench_semantickitti.py --quick    # smoke run (results/quick/)

Data: scans written by the plugin's fixture writer in the exact SemanticKITTI formats (a 64-beam
LiDAR ray-cast into a procedural street; a realistic-size scan has about 120k points, like a
real one), plus the real KITTI scan ``../shared/data/real/kitti/000000.bin`` when it is there.
Rows compared in one process, interleaved (benchmarks/harness.py):

1. Reading, per scan: ``numpy.fromfile`` of the ``.bin`` and the ``.label`` (the floor: the
   bytes must be read) against the dataset's item (read, validate, map raw ids, build the
   PointCloud), ``prepare``'s per-scan validation, and loading the same arrays from an ``.npz``
   cache (what a cache would cost instead: the reason ``prepare`` caches nothing).
2. ``prepare`` over several realistic scans (forced revalidation), per scan, against the
   ``fromfile`` floor of the same files.
3. The data side of a training step (augmentation + voxelization at 5 cm) against the model
   side (forward + backward of the task's default model on the same scan).
4. Training ``semantickitti-seg``'s recipe (data, transforms, voxelizer, loss) on fixture
   sequences with a small UNet for a few minutes; mIoU and accuracy on the held-out sequence 08
   against the no-learning baseline of the same run (every point gets the most frequent training
   class).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from harness import Bench, add_common_args

REAL_SCAN = (
    Path(
        os.environ.get("FASTAI_SPARSE_REAL_DATA")
        or Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
    )
    / "kitti"
    / "000000.bin"
)


def _read_rows(root: Path, bench: Bench, repeat: int) -> None:
    from fastai_sparse_semantickitti.config import default_config
    from fastai_sparse_semantickitti.dataset import SemanticKittiScans
    from fastai_sparse_semantickitti.prepare import validate_scan
    from fastai_sparse_semantickitti.reader import list_scans

    ds = SemanticKittiScans(root, "train", sequences=[0], limit=1)
    scan = list_scans(root, ["00"], labels=True)[0]
    cfg = default_config()
    n = scan.scan.stat().st_size // 16
    cloud = ds[0]
    npz = root / "cache-trial.npz"
    np.savez(
        npz, xyz=cloud.xyz, remission=cloud.attrs["remission"], labels=cloud.attrs["labels"].astype(np.int16)
    )

    def fromfile():  # both arrays alive at once, as in an item (fresh memory for each)
        return np.fromfile(scan.scan, dtype="<f4"), np.fromfile(scan.label, dtype="<u4")

    def load_npz():
        with np.load(npz) as z:
            z["xyz"], z["remission"], z["labels"]

    t = bench.time(
        {
            "fromfile": fromfile,
            "item": lambda: ds[0],
            "validate": lambda: validate_scan(scan, cfg),
            "npz": load_npz,
        },
        repeat=repeat,
        group="read one scan",
    )
    kw = {"baseline": t["fromfile"], "baseline_label": "np.fromfile .bin+.label", "points": n}
    bench.figure("read/fromfile", t["fromfile"], label=f"np.fromfile of .bin + .label, {n} points", points=n)
    bench.figure(
        "read/item", t["item"], limit=1.0, label="dataset item: read, check, map ids", readme=True, **kw
    )
    bench.figure("read/validate", t["validate"], limit=1.0, label="prepare's check of one scan", **kw)
    bench.figure("read/npz_cache", t["npz"], label="the same arrays from an .npz cache (not used)", **kw)

    if REAL_SCAN.is_file():
        from fastai_sparse_semantickitti.reader import read_scan

        t = bench.time(
            {
                "fromfile": lambda: np.fromfile(REAL_SCAN, dtype="<f4"),
                "read_scan": lambda: read_scan(REAL_SCAN),
            },
            repeat=repeat,
            group="read the real scan",
        )
        m = REAL_SCAN.stat().st_size // 16
        bench.figure(
            "real/read_scan",
            t["read_scan"],
            baseline=t["fromfile"],
            baseline_label="np.fromfile",
            limit=1.0,
            label=f"read_scan of the real KITTI scan, {m} points",
            points=m,
        )
    else:
        bench.info["real_scan"] = f"absent ({REAL_SCAN}): real-scan rows skipped"


def _prepare_rows(root: Path, bench: Bench, repeat: int, scans: int) -> None:
    from fastai_sparse_semantickitti.prepare import prepare

    files = sorted((root / "sequences").glob("*/velodyne/*.bin"))
    labels = sorted((root / "sequences").glob("*/labels/*.label"))
    out = root / "index"

    def floor():
        for f in files:
            np.fromfile(f, dtype="<f4")
        for f in labels:
            np.fromfile(f, dtype="<u4")

    t = bench.time(
        {
            "floor": floor,
            "prepare": lambda: prepare(root, out=out, jobs=1, sequences=[0], quiet=True, force=True),
        },
        repeat=repeat,
        group="prepare",
    )
    for k in t.values():  # per scan
        k.samples = [s / scans for s in k.samples]
    bench.figure(
        "prepare/per_scan",
        t["prepare"],
        baseline=t["floor"],
        baseline_label="np.fromfile of the files",
        limit=1.0,
        label=f"prepare, per scan ({scans} scans, 1 process)",
        readme=True,
    )


def _step_rows(root: Path, bench: Bench, repeat: int, quick: bool) -> None:
    from fastai_sparse.batch import collate
    from fastai_sparse.testing import registry_with

    reg = registry_with("semantickitti")
    task = reg.get("task", "semantickitti-seg")
    cloud = task.datasets(root, registry=reg, sequences=[0])["train"][0]
    pipe = task.pipeline(train=True)
    rng = np.random.default_rng(0)
    sample = pipe(cloud, rng)
    x, y = collate([sample], task.target)
    if quick:  # the default model's step takes about a minute on one thread: not in a smoke run
        from fastai_sparse_semantickitti.tasks import seg_task

        task = seg_task(model="unet-small")
    model_name = task.model
    model = task.build_model(int(x["feats"].shape[1]), registry=reg)
    loss_fn = task.loss_func()
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def fwd_bwd():
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    t = bench.time(
        {"data": lambda: pipe(cloud, rng), "model": fwd_bwd},
        repeat=repeat,
        warmup=0 if not quick else 1,
        group="training step, one scan",
    )
    params = sum(p.numel() for p in model.parameters())
    bench.figure(
        "step/data",
        t["data"],
        label=f"augment + voxelize one scan ({len(cloud)} points, {len(sample.coords)} voxels at 5 cm)",
        readme=True,
        points=len(cloud),
        voxels=len(sample.coords),
    )
    bench.figure(
        "step/model",
        t["model"],
        baseline=t["data"],
        baseline_label="augment + voxelize",
        label=f"{model_name} forward + backward + Adam, same scan ({params / 1e6:.1f}M parameters)",
        readme=True,
        parameters=params,
    )


def _train(root: Path, bench: Bench, args) -> None:
    from fastai_sparse.metrics import confusion_matrix, iou_from_confusion
    from fastai_sparse_semantickitti.tasks import seg_task

    task = seg_task(model=args.model)
    torch.manual_seed(0)
    dls = task.dataloaders(root, bs=args.bs, seed=0)
    k = len(task.class_names)
    # no-learning baseline: the most frequent class of the training labels, everywhere
    counts = np.zeros(k, np.int64)
    train = task.datasets(root)["train"]
    for i in range(len(train)):
        lab = train[i].attrs["labels"]
        counts += np.bincount(lab[lab >= 0], minlength=k)
    majority = int(counts.argmax())
    learn = task.learner(dls, path=root)
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(args.epochs, args.lr)
        preds, targs = learn.get_preds()
    seconds = time.perf_counter() - t0
    targs = torch.as_tensor(targs)
    cm = confusion_matrix(preds, targs, k)
    iou = iou_from_confusion(cm)
    keep = targs != -100
    base = torch.full_like(targs, majority)
    cm0 = confusion_matrix(base[keep], targs[keep], k)
    iou0 = iou_from_confusion(cm0)
    acc = float(np.trace(cm.numpy()) / cm.numpy().sum())
    acc0 = float(np.trace(cm0.numpy()) / cm0.numpy().sum())
    present = np.asarray(cm.sum(1)) > 0  # classes in the validation labels
    miou = float(np.nanmean(np.where(present, np.nan_to_num(iou), np.nan)))
    miou0 = float(np.nanmean(np.where(present, np.nan_to_num(iou0), np.nan)))
    note = "mean over the classes present in the validation labels (absent-from-prediction counts 0)"
    bench.figure(
        "train/miou",
        miou,
        "mIoU",
        baseline=miou0,
        baseline_label=f"majority class ({task.class_names[majority]})",
        higher_is_better=True,
        label=f"mIoU on held-out sequence 08 after {args.epochs} epochs ({args.model})",
        readme=True,
        note=note,
    )
    bench.figure(
        "train/accuracy",
        acc,
        "accuracy",
        baseline=acc0,
        baseline_label="majority class",
        higher_is_better=True,
        label="point accuracy on sequence 08",
    )
    bench.figure("train/seconds", seconds, "s", label=f"training time, {args.epochs} epochs")
    bench.info["training"] = {
        "model": args.model,
        "epochs": args.epochs,
        "bs": args.bs,
        "lr": args.lr,
        "train_scans": len(train),
        "valid_points": int(keep.sum()),
        "iou_per_class": {
            n: (None if np.isnan(v) else round(float(v), 4)) for n, v in zip(task.class_names, iou)
        },
        "classes_present": [n for n, p in zip(task.class_names, present) if p],
        "history": [[float(v) for v in row] for row in learn.recorder.values],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(ap)
    ap.add_argument("--points", type=int, default=120_000, help="points of a realistic scan")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--prepare-scans", type=int, default=6)
    ap.add_argument("--model", default="unet-m16", help="backbone of the training run")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--bs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-2)
    ap.add_argument("--train-points", type=int, default=4000)
    ap.add_argument("--skip-model-step", action="store_true", help="skip the default model's training step")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 1))
    quick = args.quick
    if quick:
        args.points, args.repeat, args.prepare_scans = 20_000, 3, 2
        args.model, args.train_points = "unet-small", 1500
    args.epochs = args.epochs or (2 if quick else 12)
    bench = Bench(
        "semantickitti",
        "SemanticKITTI: scan reading and validation, data pipeline, model step, short training vs majority class",
        quick=quick,
        strict=args.strict,
    )
    from fastai_sparse_semantickitti.fixtures import make_fixture

    with tempfile.TemporaryDirectory(prefix="bench-kitti-") as tmp:
        tmp = Path(tmp)
        big = make_fixture(tmp / "big", scans=args.prepare_scans, points=args.points, sequences=[0])
        _read_rows(big, bench, args.repeat)
        _prepare_rows(big, bench, max(2, args.repeat // 2), args.prepare_scans)
        if not args.skip_model_step:
            _step_rows(big, bench, 2, quick)
        small = make_fixture(tmp / "small", scans={f"{i:02d}": 2 for i in range(11)}, points=args.train_points,
                             sequences=range(11))  # fmt: skip
        _train(small, bench, args)
    bench.info["fixture"] = {"points": args.points, "prepare_scans": args.prepare_scans}
    bench.print_table()
    bench.write()


if __name__ == "__main__":
    sys.exit(main())
