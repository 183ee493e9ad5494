"""S3DIS plugin benchmark: prepare throughput on a room of realistic size, and a short training
run of ``s3dis-seg`` on fixture rooms against no-learning baselines.

Run from the repository root::

    python benchmarks/bench_s3dis.py            # ~ 5-10 minutes on 2 cores
    python benchmarks/bench_s3dis.py --quick    # smaller, ~ 2 minutes

**Prepare.** One procedural room of ``--points`` points (default 1,000,000: S3DIS rooms hold
from about 10^5 to several 10^6) written in the exact S3DIS text format (room file plus one file
per object). Rows timed interleaved in one process: parsing every text file of the room with
``np.loadtxt`` (the floor: the text must be read), ``room_arrays`` (read + validate + match the
annotation points to the room points + labels), and a full ``prepare`` of that room (plus the
cache record and the atomic ``.npz`` write). Ratios to the parse floor cannot be below 1.

**Training.** ``s3dis-seg`` (5 cm voxels, UNet m=16, 6 m crops) trained ``--epochs`` epochs on a
fixture of 15 training rooms (Areas 1-4 and 6) and 3 validation rooms (Area 5). Validation
metrics over every point of the Area 5 rooms, next to baselines on the same points: the
majority training class, a height lookup (the majority training class of each 10 cm band of
height above the room's floor; no learning beyond counting), and the untrained model.

Prints a table and writes ``benchmarks/results/s3dis.json`` (through ``benchmarks/harness.py``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from fastai.callback.progress import ProgressCallback  # noqa: F401  (learn.no_bar needs it)
from harness import Bench, add_common_args

from fastai_sparse.metrics import confusion_matrix, iou_from_confusion
from fastai_sparse.testing import registry_with
from fastai_sparse_s3dis.constants import CLASSES, DATASET_DIR
from fastai_sparse_s3dis.fixtures import make_fixture, make_room
from fastai_sparse_s3dis.prepare import prepare, room_arrays

K = len(CLASSES)


def bench_prepare(bench: Bench, args, tmp: Path) -> None:
    room = tmp / "prep" / DATASET_DIR / "Area_1" / "office_1"
    t0 = time.perf_counter()
    make_room(room, points=args.points, seed=0, size=(9.0, 7.0, 3.2))
    files = [room / "office_1.txt", *sorted((room / "Annotations").glob("*.txt"))]
    n = len(np.loadtxt(files[0]))
    mb = sum(p.stat().st_size for p in files) / 1e6
    print(
        f"room of {n} points, {len(files) - 1} objects, {mb:.0f} MB of text (written in {time.perf_counter() - t0:.0f} s)"
    )
    k = iter(range(10_000))

    def parse_floor():
        for p in files:
            np.loadtxt(p, ndmin=2)

    def full_prepare():
        out = tmp / f"cache{next(k)}"
        prepare(tmp / "prep", out=out, jobs=1, quiet=True, areas=[1])
        shutil.rmtree(out)

    t = bench.time(
        {"parse": parse_floor, "room_arrays": lambda: room_arrays(room), "prepare": full_prepare},
        repeat=args.repeat,
        warmup=0,
        group="prepare one room",
    )
    bench.info["prepare"] = {"points": n, "objects": len(files) - 1, "text_mb": round(mb, 1)}
    bench.figure(
        "prepare/parse", t["parse"], label=f"np.loadtxt of the room's text files ({n / 1e6:.1f}M points)"
    )
    bench.figure(
        "prepare/room_arrays",
        t["room_arrays"],
        baseline=t["parse"],
        baseline_label="text parse floor",
        limit=1.0,
        label="read + validate + match + labels, one room",
        readme=True,
    )
    bench.figure(
        "prepare/full",
        t["prepare"],
        baseline=t["parse"],
        baseline_label="text parse floor",
        limit=1.0,
        label="prepare of the room (+ record, atomic npz write)",
    )
    bench.figure(
        "prepare/points_per_second",
        n / t["prepare"].median,
        "points/s",
        higher_is_better=True,
        label="prepare throughput, one process",
    )


def _height_lookup(train, valid):
    """Majority training class of each 10 cm band of height above the room's lowest point."""
    bins = 60
    counts = np.zeros((bins, K), np.int64)
    for c in train:
        lab = c.attrs["labels"]
        h = np.clip(((c.xyz[:, 2] - c.xyz[:, 2].min()) / 0.1).astype(int), 0, bins - 1)
        ok = lab >= 0
        np.add.at(counts, (h[ok], lab[ok]), 1)
    table = counts.argmax(1)
    preds = [
        table[np.clip(((c.xyz[:, 2] - c.xyz[:, 2].min()) / 0.1).astype(int), 0, bins - 1)] for c in valid
    ]
    return np.concatenate(preds)


def _scores(pred: np.ndarray, targ: np.ndarray) -> dict:
    cm = confusion_matrix(torch.as_tensor(pred), torch.as_tensor(targ), K, ignore_index=-100).numpy()
    iou = iou_from_confusion(cm)
    return {"miou": float(np.nanmean(iou)), "accuracy": float(np.trace(cm) / cm.sum())}


def bench_training(bench: Bench, args, tmp: Path) -> None:
    names = ["office_1", "hallway_1", "conferenceRoom_1"]
    rooms = {f"Area_{a}": names for a in range(1, 7)}
    root = make_fixture(tmp / "train", rooms=rooms, points=args.room_points, defects=())
    reg = registry_with("s3dis")
    task = reg.get("task", "s3dis-seg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        task.prepare(root, jobs=1, quiet=True)
    torch.manual_seed(args.seed)
    dls = task.dataloaders(root, bs=args.bs, seed=args.seed)
    learn = task.learner(dls, path=tmp)
    train = [dls.train.dataset.cloud(i) for i in range(len(dls.train.dataset))]
    valid = [dls.valid.dataset.cloud(i) for i in range(len(dls.valid.dataset))]
    targ = np.concatenate([c.attrs["labels"] for c in valid])
    train_labels = np.concatenate([c.attrs["labels"] for c in train])
    majority = int(np.bincount(train_labels[train_labels >= 0], minlength=K).argmax())

    def model_scores():
        with learn.no_bar():
            preds, _ = learn.get_preds(dl=dls.valid)
        return _scores(preds.argmax(1).numpy(), targ)

    untrained = model_scores()
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        learn.fit_one_cycle(args.epochs, args.lr)
    seconds = time.perf_counter() - t0
    trained = model_scores()
    base_major = _scores(np.full(len(targ), majority), targ)
    base_height = _scores(_height_lookup(train, valid), targ)
    bench.info["training"] = {
        "train_rooms": len(train),
        "valid_rooms": len(valid),
        "valid_points": len(targ),
        "epochs": args.epochs,
        "bs": args.bs,
        "lr": args.lr,
        "train_seconds": round(seconds, 1),
        "untrained": untrained,
        "trained": trained,
        "majority_class": {"class": CLASSES[majority], **base_major},
        "height_lookup": base_height,
    }
    ep = f"{args.epochs} epochs"
    bench.figure(
        "train/miou",
        trained["miou"],
        baseline=base_height["miou"],
        baseline_label="height lookup",
        higher_is_better=True,
        label=f"s3dis-seg on fixture rooms: Area 5 mIoU, {ep}",
        readme=True,
    )
    bench.figure(
        "train/miou_vs_majority",
        trained["miou"],
        baseline=base_major["miou"],
        baseline_label="majority class",
        higher_is_better=True,
        label="same, vs the majority class",
    )
    bench.figure(
        "train/accuracy",
        trained["accuracy"],
        baseline=base_height["accuracy"],
        baseline_label="height lookup",
        higher_is_better=True,
        label="same, overall accuracy",
    )
    bench.figure(
        "train/untrained_miou",
        untrained["miou"],
        baseline=base_major["miou"],
        baseline_label="majority class",
    )
    bench.figure("train/seconds", seconds, "s", label=f"training, {ep}, {len(train)} rooms, bs {args.bs}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(ap)
    ap.add_argument("--points", type=int, default=1_000_000, help="points of the room prepared")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--room-points", type=int, default=4000, help="points per fixture room for training")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--bs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-training", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default results/s3dis.json)")
    args = ap.parse_args()
    if args.quick:
        args.points, args.repeat, args.room_points, args.epochs = 200_000, 2, 2000, 8
    torch.set_num_threads(args.threads)
    bench = Bench(
        "s3dis",
        "S3DIS: prepare one room vs the text parse floor; s3dis-seg training vs no-learning baselines",
        quick=args.quick,
        strict=args.strict,
        out=args.out,
    )
    with tempfile.TemporaryDirectory() as tmp:
        bench_prepare(bench, args, Path(tmp))
        if not args.no_training:
            bench_training(bench, args, Path(tmp))
    bench.print_table()
    bench.write()


if __name__ == "__main__":
    main()
