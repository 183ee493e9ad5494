"""Learning speed per step on real shapes: ShapeNet parts and ModelNet, task defaults vs variants.

Overfits a handful of real shapes from ``../shared/data/real/`` with each task's own training
path (fastai Learner, ``Task.defaults`` lr and schedule through
:func:`fastai_sparse.schedules.fit`, the task's augmentation, voxelizer, model and head), one
batch of all the shapes per step, and validates on the same shapes without augmentation
(batch norm in eval mode, the task's own metrics) every ``--every`` steps:

* ``shapenet-part-nonormals`` on the 4 ShapeNet part challenge (ICCV17) shapes (2 airplanes,
  2 bags; x y z only, so the task without normals): instance mIoU;
* ``modelnet40-cls`` on the 3 ModelNet40 meshes (bed, chair, stool) and the resampled chair:
  accuracy.

For each configuration: the first step at which the metric reaches 0.9 (``None``: never in
``--steps``) and the metric at the end. Variants: the UNet without its final BN+ReLU, and other
peak learning rates / schedules; a task default that learns clearly slower than a variant is
the thing this benchmark exists to catch. The one-cycle schedule depends on the run's length,
so every run is ``--steps`` long and the figures are "within a ``--steps`` run".

    python benchmarks/bench_real_shapes.py [--steps 120] [--every 10] [--seeds 0 1]

Writes ``benchmarks/results/real_shapes.json`` (through ``benchmarks/harness.py``, after every
run) and prints a table: each default's final metric next to the untrained model's, each
variant's next to the defaults' (same seed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import Bench, loadavg

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "real"


def shapenet_shapes(data: Path) -> list:
    from fastai_sparse_shapenet.readers import ShapeNetPart

    return list(ShapeNetPart(data / "shapenet_iccv17", "train", layout="iccv17"))


def modelnet_shapes(data: Path, classes) -> list:
    from fastai_sparse_classification.readers import ShapeDataset, ShapeItem

    d = data / "modelnet"
    idx = {c: i for i, c in enumerate(classes)}
    off = [ShapeItem(p, idx[p.stem.rsplit("_", 1)[0]], p.stem, p.stem.rsplit("_", 1)[0]) for p in sorted((d / "off").glob("*.off"))]  # fmt: skip
    txt = [ShapeItem(p, idx[p.parent.name], p.stem, p.parent.name) for p in sorted((d / "normal_resampled").glob("*/*.txt"))]  # fmt: skip
    return list(ShapeDataset(off, classes)) + list(ShapeDataset(txt, classes, y_up=True))


def run(task, shapes, steps: int, every: int, seed: int, tmp: Path, metric: str) -> dict:
    """Train ``task`` on ``shapes`` for ``steps`` one-batch epochs; validate every ``every``."""
    import torch
    from fastai.callback.core import Callback, CancelValidException

    from fastai_sparse.learner import sparse_dataloaders
    from fastai_sparse.schedules import fit

    torch.manual_seed(seed)
    dls = sparse_dataloaders(
        shapes,
        shapes,
        task.pipeline(train=True),
        task.pipeline(train=False),
        task.target,
        bs=len(shapes),
        seed=seed,
        path=tmp,
    )
    learn = task.learner(dls, path=tmp)
    learn.remove_cbs([cb for cb in learn.cbs if type(cb).__name__ == "PerClassTableCallback"])
    curve: dict[int, float] = {}

    class ValidEvery(Callback):
        order = 50

        def before_validate(self):
            self.skip = bool((self.epoch + 1) % every and self.epoch + 1 != steps)
            if self.skip:
                raise CancelValidException()

        def after_validate(self):  # also called after a cancelled validation
            if self.skip:
                return
            # the recorder's line is written after this event: read the metric objects directly
            for m in self.learn.metrics:
                if m.name == metric:
                    curve[self.epoch + 1] = round(float(m.value), 4)

    with learn.no_bar(), learn.no_logging():
        learn.validate()  # step 0: the untrained model (batch norm in eval mode)
    for m in learn.metrics:
        if m.name == metric:
            curve[0] = round(float(m.value), 4)
    t = time.time()
    with learn.no_bar(), learn.no_logging():
        fit(learn, steps, task.defaults["lr"], task.defaults.get("schedule"), cbs=[ValidEvery()])
    secs = time.time() - t
    first = next((s for s, v in sorted(curve.items()) if v >= 0.9), None)
    return {"curve": {str(k): v for k, v in sorted(curve.items())}, "steps_to_0.9": first,
            "final": curve.get(steps), "train_seconds": round(secs, 1)}  # fmt: skip


def add_figures(bench, steps: int, every: int) -> None:
    """For every task in ``bench.info``: each default run's final metric next to the untrained
    model's, and each variant's steps to 0.9 next to the defaults' of the same seed."""
    never = steps + every  # "not within the run", for the ratio
    for name, entry in bench.info["tasks"].items():
        metric, runs = entry["metric"], entry["runs"]
        base = {r["seed"]: r for r in runs if r["config"] == "defaults"}
        for r in runs:
            if r["config"] == "defaults":
                bench.figure(f"{name}/defaults/final/seed{r['seed']}", r["final"], metric, baseline=r["curve"]["0"],
                             baseline_label="untrained (step 0)", higher_is_better=True,
                             label=f"{name} defaults, {metric} after {steps} steps, seed {r['seed']}",
                             steps_to_0_9=r["steps_to_0.9"])  # fmt: skip
            elif r["seed"] in base:
                b = base[r["seed"]]
                got = r["steps_to_0.9"] if r["steps_to_0.9"] is not None else never
                bsteps = b["steps_to_0.9"] if b["steps_to_0.9"] is not None else never
                bench.figure(f"{name}/{r['config']}/steps_to_0.9/seed{r['seed']}", got, "steps",
                             baseline=bsteps, baseline_label="the task's defaults",
                             label=f"{name} {r['config']}: steps to {metric} >= 0.9 ({never} = not in the run)",
                             final=r["final"], final_defaults=b["final"])  # fmt: skip


def variant(task, lr=None, schedule=None, **model_kwargs):
    defaults = dict(task.defaults)
    if lr is not None:
        defaults["lr"] = lr
    if schedule is not None:
        defaults["schedule"] = schedule
    return dataclasses.replace(task, defaults=defaults, model_kwargs={**task.model_kwargs, **model_kwargs})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "real_shapes.json")
    ap.add_argument("--tasks", nargs="*", default=None, help="only these tasks (names as printed)")
    ap.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="run only the configurations whose label contains one of these (all --seeds); the "
        "file's other runs are kept",
    )
    ap.add_argument(
        "--rebuild", action="store_true", help="recompute the figures of --out's runs, no training"
    )
    args = ap.parse_args()
    if args.rebuild:
        args.only = ["\0"]  # matches no configuration: nothing trains, every earlier run is kept
    warnings.simplefilter("ignore")
    for sub in ("shapenet_iccv17", "modelnet"):
        if not (args.data / sub).is_dir():
            raise SystemExit(f"real samples not found at {args.data / sub}")
    import torch

    torch.set_num_threads(1)
    from fastai_sparse.testing import registry_with

    reg = registry_with("shapenet", "classification")
    part, cls = reg.get("task", "shapenet-part-nonormals"), reg.get("task", "modelnet40-cls")
    part_bn = part.model_kwargs.get("output_bn_relu", True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-real-shapes-"))
    groups = [
        (
            "shapenet-part-nonormals",
            shapenet_shapes(args.data),
            "shapenet_instance_miou",
            [("defaults", part)]
            + [(f"lr {lr:g}", variant(part, lr)) for lr in (2e-3, 5e-3, 1e-2) if lr != part.defaults["lr"]]
            + [(f"final BN+ReLU {not bn}", variant(part, output_bn_relu=not bn)) for bn in [part_bn]]
            + [("flat", variant(part, schedule="flat"))],
        ),
        (
            "modelnet40-cls",
            modelnet_shapes(args.data, cls.class_names),
            "accuracy",
            [("defaults", cls)]
            + [(f"lr {lr:g}", variant(cls, lr)) for lr in (1e-3, 3e-3, 1e-2) if lr != cls.defaults["lr"]]
            + [("flat", variant(cls, schedule="flat"))],
        ),
    ]
    bench = Bench(
        "real_shapes",
        "learning speed per step on a handful of real shapes (ShapeNet parts, ModelNet): each task's "
        "defaults vs variants, the task's own metric on the same shapes without augmentation",
        out=args.out,
    )
    bench.info.update(steps=args.steps, every=args.every, tasks={})
    if args.rebuild:
        bench.info["note"] = (
            "figures rebuilt from runs measured earlier by this script; each run records the load "
            "average at its end (1 torch thread each)"
        )
    old = {}
    if (args.only or args.tasks) and args.out.exists():  # add to the earlier file's runs
        old = json.loads(args.out.read_text()).get("info", {}).get("tasks", {})

    if args.tasks:
        groups = [g for g in groups if g[0] in args.tasks]
        for name, task in old.items():  # keep the other tasks of the earlier file
            bench.info["tasks"].setdefault(name, task)
    for name, shapes, metric, configs in groups:
        print(f"{name}: {len(shapes)} real shapes, metric {metric}, {args.steps} steps", flush=True)
        entry = bench.info["tasks"][name] = {
            "shapes": [s.meta.get("id") for s in shapes],
            "metric": metric,
            "defaults": dict(configs[0][1].defaults),
            "model": [configs[0][1].model, dict(configs[0][1].model_kwargs)],
            "runs": [  # with --only, the earlier runs of other configurations or seeds
                r
                for r in old.get(name, {}).get("runs", [])
                if args.only and not (any(o in r["config"] for o in args.only) and r["seed"] in args.seeds)
            ],
        }
        for label, task in configs:
            if args.only and not any(o in label for o in args.only):
                continue
            seeds = args.seeds if label == "defaults" or args.only else args.seeds[:1]
            for seed in seeds:
                r = run(task, shapes, args.steps, args.every, seed, tmp, metric)
                entry["runs"].append({"config": label, "seed": seed, "lr": task.defaults["lr"],
                                      "schedule": task.defaults.get("schedule"),
                                      "model_kwargs": dict(task.model_kwargs), "load": loadavg(), **r})  # fmt: skip
                bench.write()
                print(f"  {label:24s} seed {seed}: steps to 0.9 {r['steps_to_0.9']}, final {r['final']}, "
                      f"curve {list(r['curve'].values())} ({r['train_seconds']} s)", flush=True)  # fmt: skip
    add_figures(bench, args.steps, args.every)
    bench.write()
    bench.print_table()


if __name__ == "__main__":
    main()
