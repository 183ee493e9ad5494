"""``fastai-sparse demo``: the first thing to run.

Trains the built-in ``synthetic-rooms-seg`` task on the CPU (embedded procedural rooms, no
downloads): ``lr_find``, one-cycle training, validation with and without test-time
augmentation, and a report folder:

* ``index.html``: self-contained report (metrics, per-class IoU, interactive 3D views,
  plots), opens offline;
* ``*.png``: lr_find, loss curves, ground truth vs prediction, confidence and error maps,
  first-layer kernels;
* ``metrics.json``: mIoU with and without TTA, per-class IoU, chance level, timings;
* ``model/``: the model folder (``model.safetensors``, ``config.json``, ``README.md`` model
  card; see :mod:`fastai_sparse.weights`), loaded without pickle by ``fastai-sparse predict
  --model``, :func:`fastai_sparse.from_pretrained` and :func:`fastai_sparse.load_learner`.

The report folder must be empty, new, or a previous demo report (its ``metrics.json`` says so
and it holds nothing but the report's files), which is replaced; any other folder is refused
before the demo starts unless ``overwrite=True`` (``--overwrite``), so the demo never replaces
a user's files by accident.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .threads import current as current_threads

__all__ = ["DEMO", "DEMO_FILES", "run_demo"]

#: How the numbers of a ``--quick`` run are labelled wherever they appear (console, report,
#: metrics.json, model card): they show that the pipeline runs, not how well the model learns.
SMOKE = "smoke run"
SMOKE_NOTE = (
    "smoke run (--quick: 8 training rooms, 1 epoch): its numbers check that the pipeline runs; "
    "they are not a result (an mIoU below the chance level is normal here)"
)

#: The demo's settings: about 0.92 mIoU in 2.5 minutes on 2 idle CPU cores (benchmarks/bench_demo.py).
DEMO: dict[str, Any] = {
    "task": "synthetic-rooms-seg",
    "n_train": 48,
    "n_valid": 8,
    "bs": 4,
    "epochs": 40,
    "lr": 1e-2,  # tuned for this task; lr_find's suggestion is reported next to it
    "tta": 4,
    "lr_find_iters": 40,
}


#: Every name the demo writes in its report folder (``models`` is lr_find's temporary folder).
DEMO_FILES = frozenset(
    {
        "index.html",
        "metrics.json",
        "model",
        "lr_find.png",
        "losses.png",
        "prediction.png",
        "confidence.png",
        "errors.png",
        "kernels.png",
        "models",
    }
)


def _is_demo_report(out: Path) -> bool:
    try:
        summary = json.loads((out / "metrics.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and summary.get("task") == DEMO["task"] and "report" in summary


def _check_report_folder(out: Path, overwrite: bool) -> None:
    """Refuse a report folder that is a file, or a non-empty folder that is not a previous demo
    report (unless ``overwrite``)."""
    from .errors import OutputConflictError, OutputExistsError

    if out.exists() and not out.is_dir():
        raise OutputConflictError(out, "is a file, not a folder", "choose another --out")
    if overwrite or not out.is_dir():
        return
    names = sorted(p.name for p in out.iterdir() if not (p.name.startswith(".") and p.name.endswith(".tmp")))
    if not names or (set(names) <= DEMO_FILES and _is_demo_report(out)):
        return
    others = [n for n in names if n not in DEMO_FILES] or names
    shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
    raise OutputExistsError(
        out,
        f"is not empty and not a demo report (it holds {shown})",
        "choose another --out, or pass --overwrite to write the report into it",
    )


def _miou(pred: Any, targ: Any, k: int, ignore_index: int) -> tuple[float, np.ndarray]:
    from .metrics import confusion_matrix, iou_from_confusion

    iou = iou_from_confusion(confusion_matrix(pred, targ, k, ignore_index))
    return float(np.nanmean(iou)), iou


def _chance(targ: Any, k: int, ignore_index: int) -> float:
    """mIoU of predicting the most frequent class everywhere (measured on the validation set)."""
    import torch

    t = targ[targ != ignore_index]
    majority = int(torch.bincount(t, minlength=k).argmax())
    return _miou(torch.full_like(targ, majority), targ, k, ignore_index)[0]


def run_demo(
    out: str | Path = "demo-report",
    epochs: int | None = None,
    seed: int = 0,
    quick: bool = False,
    quiet: bool = False,
    settings: dict | None = None,
    overwrite: bool = False,
) -> dict:
    """Train the demo, write the report folder ``out``, return the summary (also in metrics.json).

    Steps: :func:`_settings`, :func:`_setup` (data, learner), :func:`_find_lr`, :func:`_train`,
    :func:`_validate` (with and without TTA), :func:`_pictures` (one validation room),
    :func:`_save_model`, then ``metrics.json`` and :func:`_write_report`.
    """
    import torch

    run = _Run(Path(out), quiet, time.time())
    cfg = _settings(epochs, quick, settings)
    _check_report_folder(run.out, overwrite)
    run.out.mkdir(parents=True, exist_ok=True)
    from .files import write_text

    # marks the folder as the demo's at once, so that an interrupted demo can be run again in it
    started = {"task": DEMO["task"], "report": str(run.out / "index.html"), "finished": False}
    write_text(run.out / "metrics.json", json.dumps(started, indent=2) + "\n")
    torch.manual_seed(seed)
    if cfg.get("smoke_run"):
        run.say(SMOKE_NOTE)
    task, train_ds, valid_ds, dls, learn = _setup(run, cfg, seed)
    n_params = sum(p.numel() for p in learn.model.parameters())
    threads = current_threads()
    run.say(
        f"model {task.model} + {task.head}: {n_params:,} parameters, backend torch, "
        f"{_plural(threads.threads, 'thread')}"
    )
    timings: dict[str, float] = {}
    sug, lr = _find_lr(run, cfg, task, learn, timings)
    _train(run, cfg, learn, lr, timings)
    val = _validate(run, cfg, task, dls, learn, timings)
    t = time.time()
    best, html_pred = _pictures(run, task, dls, learn, val)
    weights = _save_model(run, cfg, learn, val, lr, seed)
    timings["report"] = time.time() - t
    timings["total"] = time.time() - run.t_start
    summary = {
        "task": task.name,
        "smoke_run": bool(cfg.get("smoke_run")),
        **({"note": SMOKE_NOTE} if cfg.get("smoke_run") else {}),
        "settings": cfg,
        "parameters": n_params,
        "lr": lr,
        "miou": val["miou"],
        "miou_tta": val["miou_tta"],
        "accuracy": val["acc"],
        "chance_miou": val["chance"],
        "iou_per_class": dict(zip(task.class_names, [float(v) for v in val["iou"]])),
        "iou_per_class_tta": dict(zip(task.class_names, [float(v) for v in val["iou_tta"]])),
        "seconds": {k_: round(v, 1) for k_, v in timings.items()},
        "threads": threads.threads,
        "thread_choice": threads.as_dict(),
        "weights": str(weights),
        "report": str(run.out / "index.html"),
    }
    write_text(run.out / "metrics.json", json.dumps(summary, indent=2) + "\n")
    _write_report(
        run, cfg, task, (len(train_ds), len(valid_ds)), n_params, sug, lr, val, timings, best, html_pred
    )
    run.say(f"report written to {run.out / 'index.html'}")
    return summary


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


@dataclass
class _Run:
    """Where the demo writes, whether it talks, and when it started."""

    out: Path
    quiet: bool
    t_start: float
    learn: Any = None

    def say(self, msg: str) -> None:
        if not self.quiet:
            print(f"[demo {time.time() - self.t_start:5.1f}s] {msg}", flush=True)

    def quietly(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)``, without fastai's bars and tables in quiet mode."""
        if self.quiet:
            with self.learn.no_bar(), self.learn.no_logging():
                return fn(*args, **kwargs)
        return fn(*args, **kwargs)


def _settings(epochs: int | None, quick: bool, settings: dict | None) -> dict:
    """:data:`DEMO` updated by ``settings``, the quick preset and ``epochs``."""
    cfg = {**DEMO, **(settings or {})}
    if quick:
        cfg.update(n_train=8, n_valid=2, bs=4, epochs=1, tta=2, lr_find_iters=10, lr=None, smoke_run=True)
    if epochs is not None:
        cfg["epochs"] = int(epochs)
    return cfg


def _setup(run: _Run, cfg: dict, seed: int):
    """The task, its training and validation rooms, the loaders and the learner."""
    from . import _fastai  # noqa: F401  (fastai, quietly; its import cost counted in setup)
    from .learner import sparse_dataloaders
    from .registry import get_task

    task = get_task(cfg["task"])
    factory = task.dataset_factory()
    train_ds = factory(split="train", n=cfg["n_train"], seed=seed)
    valid_ds = factory(split="valid", n=cfg["n_valid"], seed=seed)
    run.say(
        f"task {task.name}: {len(train_ds)} training rooms, {len(valid_ds)} validation rooms, "
        f"{len(task.class_names)} classes ({', '.join(task.class_names)})"
    )
    dls = sparse_dataloaders(
        train_ds,
        valid_ds,
        task.pipeline(train=True),
        task.pipeline(train=False),
        task.target,
        bs=cfg["bs"],
        seed=seed,
        path=run.out,
    )
    learn = task.learner(dls, path=run.out)
    run.learn = learn
    return task, train_ds, valid_ds, dls, learn


def _find_lr(run: _Run, cfg: dict, task: Any, learn: Any, timings: dict) -> tuple[Any, float]:
    """Run lr_find and plot it; the learning rate is the configured one, else the clipped valley."""
    from . import viz

    t = time.time()
    sug = run.quietly(learn.lr_find, num_it=cfg["lr_find_iters"], show_plot=False)
    lrs, losses = [float(v) for v in learn.recorder.lrs], [float(v) for v in learn.recorder.losses]
    valley = getattr(sug, "valley", None)
    lr = cfg.get("lr") or float(np.clip(valley or task.defaults["lr"], 1e-3, 2e-2))
    timings["lr_find"] = time.time() - t
    why = "the demo's tuned lr" if cfg.get("lr") else "lr_find's valley clipped to [1e-3, 2e-2]"
    run.say(
        f"lr_find suggests {valley if valley is not None else float('nan'):.2g}; training at {lr:.2g} ({why})"
    )
    viz.plot_lr_find(
        lrs,
        losses,
        suggestion={"valley": valley} if valley is not None else None,
        lr_used=lr,
        title=f"lr_find ({SMOKE}, {len(lrs)} iterations)" if cfg.get("smoke_run") else "lr_find",
        path=run.out / "lr_find.png",
    )
    return sug, lr


def _train(run: _Run, cfg: dict, learn: Any, lr: float, timings: dict) -> None:
    """One-cycle training, then the loss curves."""
    from . import viz

    t = time.time()
    run.say(f"fit_one_cycle({cfg['epochs']}, {lr:.2g}) ...")
    run.quietly(learn.fit_one_cycle, cfg["epochs"], lr)
    timings["train"] = time.time() - t
    viz.plot_recorder(learn.recorder, path=run.out / "losses.png")


def _validate(run: _Run, cfg: dict, task: Any, dls: Any, learn: Any, timings: dict) -> dict:
    """mIoU and per-class IoU with and without TTA, accuracy and the majority-class chance level."""
    k, ignore = len(task.class_names), task.target.ignore_index
    t = time.time()
    preds, targs = run.quietly(learn.get_preds, dl=dls.valid)
    miou, iou = _miou(preds, targs, k, ignore)
    timings["validate"] = time.time() - t
    t = time.time()
    tta_preds, _ = run.quietly(learn.tta, n=cfg["tta"], dl=dls.valid)
    miou_tta, iou_tta = _miou(tta_preds, targs, k, ignore)
    timings["validate_tta"] = time.time() - t
    chance = _chance(targs, k, ignore)
    acc = float((preds.argmax(1) == targs)[targs != ignore].float().mean())
    run.say(
        f"{SMOKE + ': ' if cfg.get('smoke_run') else ''}validation mIoU {miou:.3f} (TTA x{cfg['tta']}: {miou_tta:.3f}; chance {chance:.3f}), accuracy {acc:.3f}"
    )
    return {
        "miou": miou,
        "iou": iou,
        "miou_tta": miou_tta,
        "iou_tta": iou_tta,
        "chance": chance,
        "acc": acc,
        "targs": targs,
        "tta_preds": tta_preds,
    }


def _pictures(run: _Run, task: Any, dls: Any, learn: Any, val: dict) -> tuple[int, Any]:
    """PNGs of the validation room with the most classes (prediction, confidence, errors) and of
    the first-layer kernels; returns the room's index and its interactive 3D view."""
    from . import viz

    targs, tta_preds, out = val["targs"], val["tta_preds"], run.out
    vds = dls.valid.dataset
    counts = [len(vds.cloud(i)) for i in range(len(vds))]
    starts = np.concatenate([[0], np.cumsum(counts)])
    best = int(np.argmax([len(np.unique(targs[starts[i] : starts[i + 1]])) for i in range(len(vds))]))
    room, rows = vds.cloud(best), slice(int(starts[best]), int(starts[best + 1]))
    p0, t0 = tta_preds[rows].argmax(1).numpy(), targs[rows].numpy()
    viz.show_results([room], [p0], [t0], class_names=task.class_names, path=out / "prediction.png")
    conf = tta_preds[rows].max(1).values.numpy()
    viz.confidence_heatmap(room.xyz, conf, path=out / "confidence.png")
    viz.error_map(room.xyz, p0, t0, path=out / "errors.png")
    first = next(
        m for m in learn.model.modules() if getattr(m, "weight", None) is not None and m.weight.ndim == 3
    )
    viz.kernel_slices(first.weight.detach(), path=out / "kernels.png")
    html_pred = viz.show_results([room], [p0], [t0], class_names=task.class_names, html=True)
    return best, html_pred


def _save_model(run: _Run, cfg: dict, learn: Any, val: dict, lr: float, seed: int) -> Path:
    """The model folder ``model/`` (with the demo's settings and validation metrics in its card);
    removes the empty ``models`` folder lr_find leaves."""
    config = learn.task.config(
        epochs=cfg["epochs"],
        bs=cfg["bs"],
        lr=lr,
        seed=seed,
        dataset_options={"n": cfg["n_train"], "seed": seed},
    )
    metrics = {"miou": val["miou"], f"miou_tta{cfg['tta']}": val["miou_tta"], "accuracy": val["acc"]}
    if cfg.get("smoke_run"):  # the model card says so next to the numbers
        metrics = {f"{k} ({SMOKE})": v for k, v in metrics.items()}
    # a name relative to learn.path (== out): fastai joins it to it
    weights = learn.save_pretrained("model", overwrite=True, config=config, metrics=metrics)
    models_dir = run.out / "models"  # lr_find's temporary checkpoint folder, left empty by fastai
    if models_dir.is_dir() and not any(models_dir.iterdir()):
        models_dir.rmdir()
    return weights


def _write_report(
    run: _Run,
    cfg: dict,
    task: Any,
    sizes: tuple[int, int],
    n_params: int,
    sug: Any,
    lr: float,
    val: dict,
    timings: dict,
    best: int,
    html_pred: Any,
) -> None:
    """``index.html``: the run in words, the validation tables, the 3D view and every PNG."""
    import torch

    from . import viz

    k = len(task.class_names)
    smoke = bool(cfg.get("smoke_run"))
    title = "fastai-sparse demo: synthetic room segmentation"
    report = viz.Report(f"{title} ({SMOKE})" if smoke else title)
    if smoke:
        report.add_text(SMOKE_NOTE[0].upper() + SMOKE_NOTE[1:] + ".")
    report.add_text(
        f"Task {task.name}: {sizes[0]} training rooms, {sizes[1]} validation rooms, "
        f"{k} classes. Model {task.model} + {task.head} ({n_params:,} parameters), trained "
        f"{_plural(cfg['epochs'], 'epoch')} with one-cycle at lr {lr:.2g} (lr_find's valley: "
        f"{getattr(sug, 'valley', float('nan')):.2g}) on {_plural(torch.get_num_threads(), 'CPU thread')} "
        f"in {timings['train']:.0f} s ({timings['total']:.0f} s end to end)."
    )
    report.add_table(
        {
            "mIoU": val["miou"],
            f"mIoU, TTA x{cfg['tta']}": val["miou_tta"],
            "accuracy": val["acc"],
            "chance mIoU (majority class)": val["chance"],
        },
        caption=f"validation ({SMOKE}: not a result)" if smoke else "validation",
    )
    report.add_table(
        {
            n: {"IoU": float(a), "IoU (TTA)": float(b)}
            for n, a, b in zip(task.class_names, val["iou"], val["iou_tta"])
        },
        caption=f"IoU per class ({SMOKE})" if smoke else "IoU per class",
    )
    report.add_figure(
        html_pred, caption=f"validation room {best}: ground truth | prediction (drag to rotate)"
    )
    for name, caption in [
        ("prediction", "ground truth | prediction"),
        ("confidence", "confidence (TTA)"),
        ("errors", "errors (red)"),
        (
            "lr_find",
            "lr_find: loss against learning rate; dot: lr_find's suggestion (valley), dashed line: the lr used for training",
        ),
        ("losses", "losses and metrics"),
        ("kernels", "first-layer kernels, one row per output channel, slices along z"),
    ]:
        report.add_image(run.out / f"{name}.png", caption=caption)
    report.add_table({k_: round(v, 1) for k_, v in timings.items()}, caption="seconds")
    report.save(run.out)
