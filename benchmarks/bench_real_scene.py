"""Learning speed per step on a real ScanNet scene: the task defaults against the reference recipe.

Trains on one real scan (``../shared/data/real/scannet/scans/scene0000_00``, 81,369 vertices;
its labels are raw ScanNet category ids, mapped to NYU40 through
``scannetv2-labels.combined.tsv`` with the plugin's ``label_source="raw-id"``) for 25 / 50 /
100 one-scene optimisation steps, and evaluates every run with the same code, independent of
the training pipeline: all vertices, the scene centred (mean) without augmentation, voxel
features the mean colour ``rgb / 127.5 - 1``, batch norm in eval mode; mIoU over the classes
present in the truth or the prediction (SparseConvNet's ``iou.py`` rule) and accuracy over the
labelled vertices.

Configurations (each with 2 seeds by default):

* ``scannet-seg``: the registered task exactly as a user gets it (fastai Learner,
  ``Task.defaults`` lr, schedule and model) through :func:`fastai_sparse.schedules.fit`, one
  run per step count when the schedule depends on the run's length;
* ``recipe``: SparseConvNet's ScanNet recipe built with this project's engine: UNet m16,
  7 levels, without the final BN+ReLU, ``torch.optim.Adam`` lr 1e-3 constant, the task's
  training augmentation (the recipe's, elastic distortion included), plain PyTorch loop;
* ``recipe-bn``: the same with the final BN+ReLU of the published ScanNet example.

``--sweep`` adds the runs the defaults were chosen from (one seed): peak lr x schedule
(one-cycle with 25% / 10% warm-up, flat) x final BN+ReLU on / off, plus ``lr_find``'s
suggestion on this one-scene data. The anchor is the issue's measurement of SparseConvNet's own
code on a DIFFERENT ScanNet scene (67k vertices, 7 classes present): 0.215 / 0.275 / 0.404 and
0.203 / 0.327 / 0.476 mIoU after 25 / 50 / 100 steps (two seeds).

    python benchmarks/bench_real_scene.py                 # defaults + recipe rows, 2 seeds
    python benchmarks/bench_real_scene.py --sweep --seeds 0

Writes ``benchmarks/results/real_scene.json`` (through ``benchmarks/harness.py``) after every
run, so an interrupted run keeps the finished ones; ``--only`` adds runs to the file's earlier
ones. Figures: each configuration's mIoU after 25 / 50 / 100 steps next to the recipe's of the
same seed (target for ``scannet-seg``: ratio >= 1). One torch thread.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from harness import Bench, loadavg

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "real"
SCENE = "scene0000_00"
ANCHOR = {
    "what": "SparseConvNet's ScanNet example (UNet m16, 7 levels, Adam 1e-3 constant, its augmentation), "
    "one scene per step, measured in issue 19 on a different real ScanNet scene (67k vertices, 7 classes)",
    "steps": [25, 50, 100],
    "miou": {"seed a": [0.215, 0.275, 0.404], "seed b": [0.203, 0.327, 0.476]},
}


# ---------------------------------------------------------------------------------------------
# data and the independent evaluation


def load_scene(data: Path, cache: Path):
    """The real scene as the plugin reads it (NYU40 via the tsv), and the dataset kwargs."""
    from fastai_sparse_scannet.dataset import ScanNetScenes

    root = data / "scannet"
    kwargs = {
        "scenes": [SCENE],
        "label_source": "raw-id",
        "label_table": root / "scannetv2-labels.combined.tsv",
        "cache": cache,
    }
    with warnings.catch_warnings():  # 600 vertices carry a raw id absent from the tsv: ignored
        warnings.simplefilter("ignore")
        cloud = ScanNetScenes(root, "train", **kwargs)[0]
    return root, kwargs, cloud


def eval_batch(cloud, scale: float) -> dict:
    """The evaluation input: every vertex, scene centred at the grid's middle, mean colour per
    voxel. Written here with numpy only, independent of the training transforms/voxelizer."""
    import torch

    xyz = cloud.xyz.astype(np.float64)
    v = np.floor((xyz - xyz.mean(0)) * scale).astype(np.int64) + 2048
    keys, inverse, counts = np.unique(v, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    rgb = cloud.attrs["rgb"].astype(np.float64) / 127.5 - 1
    feats = np.stack([np.bincount(inverse, rgb[:, k], len(keys)) for k in range(3)], 1) / counts[:, None]
    coords = np.concatenate([np.zeros((len(keys), 1), np.int64), keys], 1)
    return {
        "coords": torch.from_numpy(coords.astype(np.int32)),
        "feats": torch.from_numpy(feats.astype(np.float32)),
        "inverse": torch.from_numpy(inverse.astype(np.int64)),
        "voxel_offsets": torch.tensor([0, len(keys)]),
        "point_offsets": torch.tensor([0, len(xyz)]),
    }


def scores(pred: np.ndarray, labels: np.ndarray, k: int = 20) -> tuple[float, float, int]:
    """(mIoU over classes with a non-empty union, accuracy over labelled vertices, classes)."""
    keep = labels >= 0
    conf = np.bincount(labels[keep] * k + pred[keep], minlength=k * k).reshape(k, k)
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - tp
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    return float(np.nanmean(iou)), float(tp.sum() / keep.sum()), int((union > 0).sum())


def evaluate(model, batch: dict, labels: np.ndarray, k: int = 20) -> dict:
    """mIoU and accuracy with batch norm in eval mode (running statistics): the figures. Also,
    as a diagnostic, the mIoU of a copy of the model normalising with the evaluated scene's own
    batch statistics (``miou_batch_stats``): the gap between the two is what lagging running
    statistics cost. The model and its buffers are left as they were."""
    import copy

    import torch

    was = model.training
    model.eval()
    with torch.no_grad():
        pred = model(batch).argmax(1).numpy()
        twin = copy.deepcopy(model).train()
        pred_batch = twin(batch).argmax(1).numpy()
    model.train(was)
    miou, acc, classes = scores(pred, labels, k)
    return {
        "miou": round(miou, 4),
        "accuracy": round(acc, 4),
        "classes": classes,
        "miou_batch_stats": round(scores(pred_batch, labels, k)[0], 4),
    }


# ---------------------------------------------------------------------------------------------
# training paths


def train_task_runs(
    task, root, ds_kwargs, steps, seed, batch, labels, tmp, longest_only: bool = False
) -> tuple[dict, float]:
    """The task's own path: fastai Learner + ``schedules.fit`` with ``task.defaults``.

    Returns ``{step: metrics}`` and the training seconds. A flat schedule is one run evaluated at
    every step count; others one run per step count (the schedule depends on the run's length),
    or only the longest with ``longest_only`` (the sweep's economy).
    """
    import torch
    from fastai.callback.core import Callback, CancelValidException

    from fastai_sparse.schedules import fit, schedule_spec

    spec = schedule_spec(task.defaults.get("schedule"))
    anytime = spec["name"] == "flat" and spec["warmup"] == 0
    lengths = [max(steps)] if anytime or longest_only else sorted(steps)
    results, seconds = {}, 0.0

    class EvalAt(Callback):
        order = 50

        def before_validate(self):
            raise CancelValidException()

        def after_batch(self):
            if self.training and self.train_iter in steps and (anytime or self.train_iter == n):
                results[self.train_iter] = evaluate(self.learn.model, batch, labels) | {
                    "loss": round(float(self.learn.loss), 4)
                }

    for n in lengths:
        torch.manual_seed(seed)
        dls = task.dataloaders(root, seed=seed, path=tmp, num_workers=0, **ds_kwargs)
        learn = task.learner(dls, path=tmp)
        learn.metrics = []
        learn.remove_cbs([cb for cb in learn.cbs if type(cb).__name__ == "PerClassTableCallback"])
        learn.recorder.train_metrics = learn.recorder.valid_metrics = False
        t = time.time()
        with learn.no_bar(), learn.no_logging():
            fit(learn, n, task.defaults["lr"], task.defaults.get("schedule"), cbs=[EvalAt()])
        seconds += time.time() - t
    return results, seconds


def train_recipe(task, cloud, steps, seed, batch, labels, output_bn_relu: bool) -> tuple[dict, float]:
    """The reference recipe in a plain PyTorch loop: UNet m16 7 levels, Adam 1e-3 constant, one
    augmented scene per step (the task's training pipeline)."""
    import torch

    from fastai_sparse.batch import collate
    from fastai_sparse.models import SegmentationHead, SparseModel, UNet

    torch.manual_seed(seed)
    model = SparseModel(UNet(3, m=16, levels=7, output_bn_relu=output_bn_relu), SegmentationHead(16, 20))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    pipe, loss_fn = task.pipeline(train=True), task.loss_func()
    results, t = {}, time.time()
    for step in range(1, max(steps) + 1):
        x, y = collate([pipe(cloud, np.random.default_rng([seed, step]))], task.target)
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        if step in steps:
            t_eval = time.time()
            results[step] = evaluate(model, batch, labels) | {"loss": round(float(loss), 4)}
            t += time.time() - t_eval  # evaluation time is not training time
    return results, time.time() - t


def lr_find_suggestion(task, root, ds_kwargs, seed, tmp) -> dict:
    """fastai's lr_find on the one-scene data (one batch per epoch: 100 iterations = 100 steps)."""
    import torch
    from fastai.callback.schedule import minimum, steep, valley

    torch.manual_seed(seed)
    dls = task.dataloaders(root, seed=seed, path=tmp, num_workers=0, **ds_kwargs)
    learn = task.learner(dls, path=tmp)
    learn.metrics = []
    learn.remove_cbs([cb for cb in learn.cbs if type(cb).__name__ == "PerClassTableCallback"])
    with learn.no_bar(), learn.no_logging():
        sug = learn.lr_find(suggest_funcs=(valley, minimum, steep), show_plot=False)
    return {k: float(v) for k, v in sug._asdict().items()}


# ---------------------------------------------------------------------------------------------


def variant(task, lr=None, schedule=None, **model_kwargs):
    defaults = dict(task.defaults)
    if lr is not None:
        defaults["lr"] = lr
    if schedule is not None:
        defaults["schedule"] = schedule
    return dataclasses.replace(task, defaults=defaults, model_kwargs={**task.model_kwargs, **model_kwargs})


def sweep_rows(task) -> list[tuple[str, object]]:
    """The lr / schedule / final-BN sweep (the task's model depth and augmentation), most
    informative first."""
    rows = []
    for bn in (False, True):
        tag = "bn" if bn else "no-bn"
        for lr in (1e-2, 3e-3, 3e-2, 1e-3):
            rows.append(
                (f"sweep one-cycle lr {lr:g} {tag}", variant(task, lr, "one-cycle", output_bn_relu=bn))
            )
    for lr, bn in ((3e-3, False), (1e-2, False), (1e-3, False), (3e-3, True)):
        tag = "bn" if bn else "no-bn"
        rows.append((f"sweep flat lr {lr:g} {tag}", variant(task, lr, "flat", output_bn_relu=bn)))
    rows.append(
        (
            "sweep one-cycle pct 0.1 lr 0.01 no-bn",
            variant(task, 1e-2, {"name": "one-cycle", "pct_start": 0.1}, output_bn_relu=False),
        )
    )
    return rows


def add_figures(bench, runs: list[dict], steps: list[int]) -> None:
    """Every trained configuration's mIoU after each step count next to the recipe's (same seed,
    same run of this script or an earlier one merged into the file)."""
    recipe = {(r["seed"], s): r["by_steps"][str(s)]["miou"] for r in runs if r["config"] == "recipe"
              for s in steps if str(s) in r["by_steps"]}  # fmt: skip
    for r in runs:
        if r["config"] not in ("scannet-seg", "recipe-bn") or "by_steps" not in r:
            continue
        for s in steps:
            got = r["by_steps"].get(str(s))
            base = recipe.get((r["seed"], s))
            if got is None or base is None:
                continue
            bench.figure(
                f"{r['config']}/miou@{s}/seed{r['seed']}",
                got["miou"],
                "mIoU",
                baseline=base,
                baseline_label="recipe (this engine)",
                higher_is_better=True,
                target=1.0 if r["config"] == "scannet-seg" else None,
                label=f"{r['config']}, mIoU after {s} one-scene steps, seed {r['seed']}",
                readme=r["config"] == "scannet-seg" and s == max(steps) and r["seed"] == 0,
                accuracy=got["accuracy"],
            )
    for r in runs:
        if r["config"] == "recipe":
            for i, s in enumerate(ANCHOR["steps"]):
                got = r["by_steps"].get(str(s))
                if got is not None:
                    bench.figure(
                        f"recipe/miou@{s}/seed{r['seed']}",
                        got["miou"],
                        "mIoU",
                        baseline=ANCHOR["miou"]["seed a"][i],
                        baseline_label="SparseConvNet's code, ANOTHER scene",
                        higher_is_better=True,
                        label=f"recipe (this engine), mIoU after {s} steps, seed {r['seed']}",
                        accuracy=got["accuracy"],
                    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the real sample folder")
    ap.add_argument("--steps", type=int, nargs="+", default=[25, 50, 100])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--sweep", action="store_true", help="also the lr / schedule / final-BN sweep")
    ap.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="run only the rows whose name contains one of these; the file's other runs are kept",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "real_scene.json")
    ap.add_argument(
        "--rebuild", action="store_true", help="recompute the figures of --out's runs, no training"
    )
    args = ap.parse_args()
    if args.rebuild:
        args.only = ["\0"]  # matches no row: nothing trains, every earlier run is kept
    warnings.simplefilter("ignore")
    if not (args.data / "scannet" / "scans" / SCENE).is_dir():
        raise SystemExit(f"the real ScanNet scene is not at {args.data / 'scannet' / 'scans' / SCENE}")
    import torch

    torch.set_num_threads(1)
    from fastai_sparse.testing import registry_with

    bench = Bench(
        "real_scene",
        "learning speed per one-scene step on a real ScanNet scan: scannet-seg defaults vs the reference "
        "recipe built with this engine; mIoU/accuracy over all vertices, batch norm in eval mode",
        out=args.out,
    )
    task = registry_with("scannet").get("task", "scannet-seg")
    tmp = Path(tempfile.mkdtemp(prefix="bench-real-scene-"))
    root, ds_kwargs, cloud = load_scene(args.data, tmp / "cache")
    labels = cloud.attrs["labels"].astype(np.int64)
    batch = eval_batch(cloud, task.voxelizer.scale)
    steps = sorted(args.steps)

    rows: list[tuple[str, object]] = [
        ("scannet-seg", task),
        ("recipe", "recipe"),
        ("recipe-bn", "recipe-bn"),
    ]
    seeds_of = {name: args.seeds for name, _ in rows}
    if args.sweep:
        sw = sweep_rows(task)
        rows += sw
        seeds_of.update({name: args.seeds[:1] for name, _ in sw})
        rows.append(("lr_find", "lr_find"))
        seeds_of["lr_find"] = args.seeds[:1]
    if args.only:
        rows = [r for r in rows if any(s in r[0] for s in args.only)]

    runs: list[dict] = []
    if args.only and args.out.exists():  # add to the earlier file instead of replacing it
        old = json.loads(args.out.read_text()).get("info", {}).get("runs", [])
        runs = [r for r in old if not (any(s in r["config"] for s in args.only) and r["seed"] in args.seeds)]
    bench.info.update(
        scene=SCENE,
        scene_note="not the scene of the anchor (issue 19 measured SparseConvNet on another ScanNet scene)",
        vertices=len(cloud),
        labelled_vertices=int((labels >= 0).sum()),
        classes_present=sorted(int(c) for c in np.unique(labels[labels >= 0])),
        eval_voxels=int(batch["coords"].shape[0]),
        task_defaults=dict(task.defaults),
        task_model=[task.model, dict(task.model_kwargs)],
        anchor=ANCHOR,
        runs=runs,
    )
    if args.rebuild:
        bench.info["note"] = (
            "figures rebuilt from runs measured earlier by this script; each run records the load "
            "average at its end (1 torch thread each)"
        )

    def save():
        bench.figures.clear()
        add_figures(bench, runs, steps)
        bench.write()

    print(
        f"{SCENE}: {len(cloud)} vertices, {bench.info['eval_voxels']} voxels at evaluation, "
        f"{len(bench.info['classes_present'])} classes present; 1 thread, load {loadavg()}"
    )
    for name, what in rows:
        for seed in seeds_of[name]:
            t = time.time()
            if what == "lr_find":
                sug = lr_find_suggestion(task, root, ds_kwargs, seed, tmp)
                runs.append({"config": name, "seed": seed, "suggestions": sug, "load": loadavg()})
                print(f"  lr_find (one-scene data: one step per iteration): {sug}", flush=True)
                save()
                continue
            if isinstance(what, str):
                bn = what == "recipe-bn"
                res, secs = train_recipe(task, cloud, steps, seed, batch, labels, output_bn_relu=bn)
                desc = {"model": "UNet m16 L7", "output_bn_relu": bn, "opt": "torch Adam 1e-3 constant"}
            else:
                res, secs = train_task_runs(
                    what,
                    root,
                    ds_kwargs,
                    steps,
                    seed,
                    batch,
                    labels,
                    tmp,
                    longest_only=name.startswith("sweep"),
                )
                desc = {"lr": what.defaults["lr"], "schedule": what.defaults.get("schedule"),
                        "model": what.model, "model_kwargs": dict(what.model_kwargs)}  # fmt: skip
            runs.append({"config": name, "seed": seed, **desc, "train_seconds": round(secs, 1),
                         "wall_seconds": round(time.time() - t, 1), "load": loadavg(),
                         "by_steps": {str(s): res[s] for s in steps if s in res}})  # fmt: skip
            save()
            mious = " / ".join(f"{res[s]['miou']:.3f}" if s in res else "  -  " for s in steps)
            accs = " / ".join(f"{res[s]['accuracy']:.3f}" if s in res else "  -  " for s in steps)
            print(f"  {name:38s} seed {seed}: mIoU {mious}   acc {accs}   ({secs:.0f} s)", flush=True)
    save()
    bench.print_table()
    print(f"anchor (a different scene): {ANCHOR['miou']}")


if __name__ == "__main__":
    main()
