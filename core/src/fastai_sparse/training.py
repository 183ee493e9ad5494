"""Training runs that survive interruption: what ``fastai-sparse train`` runs.

A run folder holds:

* ``config.json``: the run's fully resolved configuration (:mod:`fastai_sparse.config`): the
  task with every dataset option, transform, voxelizer, model and head argument, the loss,
  metrics, optimizer, schedule, batch size, epochs, learning rate, seed and the versions of
  every package involved, written before training starts. ``fastai-sparse train --config
  runs/x/config.json`` (or ``train_task(config=...)``) runs it again: on the CPU with one
  thread, the same weights bit for bit;
* ``run.json``: the run's progress (finished epochs, per-epoch metrics), rewritten atomically
  after every epoch, and the CPU threads of the latest session and why
  (:mod:`fastai_sparse.threads`);
* ``checkpoint.pth``: model and optimizer state after the last finished epoch (written to a
  temporary file, then renamed, so an interruption never leaves half a checkpoint);
* ``history.csv``: one line per epoch (fastai's ``CSVLogger``), ``schedule.csv`` and
  ``iou_per_class.csv``, and with ``loggers=["tensorboard"]`` / ``["wandb"]`` their logs
  (:mod:`fastai_sparse.loggers`; ``run.json`` records which ran); for tasks with classes,
  ``run.json``'s history also holds the IoU of every class after every epoch (the last one
  in ``metrics.json``);
* ``model/``: the final model folder (``model.safetensors``, ``config.json``, ``README.md``
  model card; see :mod:`fastai_sparse.weights`) for ``fastai-sparse predict --model`` and
  :func:`fastai_sparse.from_pretrained`; ``metrics.json``: the final metrics.

``train_task(..., resume=True)`` reloads the checkpoint and continues the schedule (the task's
``defaults["schedule"]``, see :mod:`fastai_sparse.schedules`) at the first unfinished epoch,
with the configuration recorded in ``config.json``; options given again must agree with it.

Every file is written atomically with the user's permissions (:mod:`fastai_sparse.files`).
Starting a run in a folder that holds a finished run, or files with the names above but no
run, is refused unless ``overwrite=True`` (``--overwrite``): a trained model is never replaced
by accident. ``epochs``, ``bs``, ``lr`` and ``seed`` outside their meaning (0 epochs, a
learning rate of 0) are an :class:`~fastai_sparse.errors.OptionError`, never a default, and
``run.json`` records the values the run actually uses (the DataLoader workers too).
"""

from __future__ import annotations

import json
import math
import numbers
import sys
import time
from pathlib import Path
from typing import Any

from .errors import FastaiSparseError, OptionError, OutputConflictError, OutputExistsError
from .schedules import fit
from .threads import current as current_threads

__all__ = ["RunState", "train_task"]

RUN_FILE, CONFIG, CHECKPOINT, HISTORY, MODEL, METRICS = (
    "run.json",
    "config.json",
    "checkpoint.pth",
    "history.csv",
    "model",
    "metrics.json",
)
#: Keys of a config that a resumed run may change: they do not change what is computed.
_RESUME_FREE = ("versions", "num_workers", "dataset.root", "loggers")
#: What a run folder holds: a folder with any of these but no run is not started over unasked.
RUN_FILES = (RUN_FILE, CONFIG, CHECKPOINT, HISTORY, MODEL, METRICS)


def _write_json(path: Path, obj: Any) -> None:
    from .files import write_text

    write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


class RunState:
    """The ``run.json`` of a run folder."""

    def __init__(self, out: Path, data: dict, write: bool = True):
        # write=False: a DDP process other than rank 0 keeps the state without writing it
        self.out, self.data, self.write = out, data, write

    @classmethod
    def load(cls, out: Path) -> RunState | None:
        path = out / RUN_FILE
        if not path.exists():
            return None
        try:
            return cls(out, json.loads(path.read_text()))
        except json.JSONDecodeError as e:
            raise FastaiSparseError(f"{path}: not a readable run file ({e})") from e

    def save(self) -> None:
        if self.write:
            _write_json(self.out / RUN_FILE, self.data)

    @property
    def finished(self) -> int:
        return int(self.data.get("finished_epochs", 0))


def _class_table(learn, epoch: int) -> dict | None:
    """This epoch's IoU per class from the learner's PerClassTableCallback (None without one);
    NaN (a class absent from truth and prediction) as None, so run.json stays JSON."""
    from .metrics import PerClassTableCallback

    for cb in learn.cbs:
        if isinstance(cb, PerClassTableCallback) and cb.epochs and cb.epochs[-1] == epoch:
            return {k: (None if v != v else float(v)) for k, v in cb.tables[-1].items()}
    return None


def _run_callbacks(state: RunState, start: int) -> list:
    """The checkpoint callback, silent for the epochs a resumed run skips (fastai still calls
    ``after_epoch`` for them)."""
    from fastai.callback.core import Callback
    from fastai.learner import save_model

    class CheckpointCallback(Callback):
        """After every epoch: model + optimizer to ``checkpoint.pth`` (atomically), then ``run.json``."""

        order = 100  # after the recorder has the epoch's values

        def after_epoch(self):
            if self.epoch < start:
                return
            if state.write:  # rank 0 only under DDP
                from .files import atomic_path

                with atomic_path(state.out / CHECKPOINT) as tmp:
                    save_model(tmp, self.learn.model, getattr(self.learn, "opt", None), with_opt=True)
            names = list(self.learn.recorder.metric_names[1:-1])
            values = list(self.learn.recorder.log[1:-1])
            state.data["finished_epochs"] = self.epoch + 1
            entry = {n: (float(v) if isinstance(v, (int, float)) else str(v)) for n, v in zip(names, values)}
            table = _class_table(self.learn, self.epoch)
            if table is not None:
                entry["iou_per_class"] = table
            state.data.setdefault("history", []).append(entry | {"epoch": self.epoch})
            state.save()

    return [CheckpointCallback()]


def train_task(
    task=None,
    root: str | Path | None = None,
    out: str | Path = "runs/run",
    epochs: int | None = None,
    bs: int | None = None,
    lr: float | None = None,
    num_workers: int | None = None,
    seed: int | None = None,
    resume: bool = False,
    quiet: bool = False,
    dataset_kwargs: dict | None = None,
    cbs: list | None = None,
    config: dict | str | Path | None = None,
    overrides: list[str] | dict | None = None,
    precision: str | None = None,
    loggers: str | list[str] | None = None,
    overwrite: bool = False,
) -> dict:
    """Train ``task`` (or the task of ``config``) with its schedule, checkpointing every epoch in
    ``out``; returns a summary.

    ``config``: a configuration (a dict, or a file such as another run's ``config.json``) to
    run instead of the task's defaults; ``overrides``: dotted-key changes on top of it
    (``["lr=0.01", "model_kwargs.m=32"]``, see :func:`fastai_sparse.config.apply_overrides`).
    ``root``, ``epochs``, ``bs``, ``lr``, ``num_workers``, ``seed`` and ``dataset_kwargs`` (the
    dataset factory's options), when given, are overrides too. With ``resume=True`` an
    interrupted run continues at its first unfinished epoch with its recorded configuration
    (anything given that disagrees with it is an error). Without it, a folder holding an
    unfinished run is an error, so no work is overwritten by accident; so is a folder holding a
    finished run or files with a run's names, unless ``overwrite=True``. ``epochs``, ``bs``,
    ``lr`` and ``seed`` outside their meaning (0 or negative epochs or batch size, a learning
    rate that is not a finite number above 0, a negative seed) are an
    :class:`~fastai_sparse.errors.OptionError` (a
    :class:`~fastai_sparse.errors.ConfigError` when they come from ``config`` or ``overrides``),
    never a default. ``cbs`` are extra fastai callbacks. ``precision``: ``"32"``, ``"bf16"`` or
    ``"fp16"`` (:mod:`fastai_sparse.precision`); ``loggers``: ``"csv,tensorboard,wandb"`` or a
    list (:mod:`fastai_sparse.loggers`); both are overrides too (config keys ``precision`` and
    ``loggers``), checked before anything is written.

    Steps: :func:`_run_config` (the configuration and the task it describes), :func:`_run_state`
    (a new ``run.json`` and ``config.json``, or the recorded ones to resume), :func:`_learner_for_run`
    (seeded data and model, the run's callbacks, the checkpoint reloaded), :func:`_fit`, then the
    final model folder and ``metrics.json``.
    """
    from .distributed import per_process_bs, world

    out = Path(out)
    _check_options({"epochs": epochs, "bs": bs, "lr": lr, "seed": seed})
    rank, n_proc = world()  # under torchrun: rank 0 checks and writes the run folder, the others only train
    if rank == 0:
        _check_run_folder(out, resume, overwrite)
    asked = _asked(root, epochs, bs, lr, num_workers, seed, dataset_kwargs, overrides)
    if precision is not None:
        asked["precision"] = str(precision)
    if loggers is not None:
        from .loggers import parse_loggers

        asked["loggers"] = parse_loggers(loggers)
    previous = None if (overwrite or rank != 0) and not resume else RunState.load(out)
    if resume:
        cfg, task = _resume_config(task, config, asked, out, previous)
    else:
        cfg, task = _run_config(task, config, asked)
    _check_run_settings(cfg)
    bs_here = per_process_bs(cfg["bs"], n_proc, cfg.get("grad_accum", 1))  # before anything is written
    out.mkdir(parents=True, exist_ok=True)
    state = _run_state(task, out, cfg, resume, previous, dataset_kwargs, write=rank == 0)
    d = state.data
    d.update(processes=n_proc, grad_accum=cfg.get("grad_accum", 1), bs_per_process=bs_here)
    start = state.finished if resume else 0
    learn, run_cbs = _learner_for_run(task, state, cfg, start, resume, quiet)
    threads = current_threads()
    state.data["threads"] = threads.as_dict()  # this session's count and why
    state.save()
    print(threads.line, file=sys.stderr, flush=True)
    t0 = time.time()
    _fit(learn, d, start, [*run_cbs, *(cbs or [])], quiet)
    state.save()
    metrics = d["history"][-1] if d.get("history") else {}
    if rank != 0:
        return {
            "out": out,
            "weights": None,
            "config": cfg,
            "metrics": metrics,
            "resumed_from": start,
            "learner": learn,
        }
    weights = learn.save_pretrained(MODEL, overwrite=True, config=cfg, metrics=metrics)
    _write_json(
        out / METRICS,
        {
            "task": task.name,
            "epochs": d["epochs"],
            "metrics": metrics,
            "seconds_this_session": round(time.time() - t0, 1),
        },
    )
    return {
        "out": out,
        "weights": weights,
        "config": cfg,
        "metrics": metrics,
        "resumed_from": start,
        "learner": learn,
    }


def _check_run_settings(cfg: dict) -> None:
    """The run's loggers are installed and its precision runs on the training device (before
    anything is written)."""
    from . import _fastai  # noqa: F401  (fastai without its import-time deprecation warning: first)

    # isort: split
    from fastai.torch_core import default_device

    from .loggers import check_loggers
    from .precision import check_precision

    check_loggers(cfg.get("loggers") or [])
    check_precision(cfg.get("precision", "32"), default_device())


def _check_options(values: dict) -> None:
    """epochs and bs are whole numbers of at least 1, lr a finite number above 0, seed >= 0
    (``None``: the task's or the config's). Values from a config or ``overrides`` are checked by
    :func:`fastai_sparse.config.resolve_config`."""
    for key in ("epochs", "bs", "seed"):
        value, low = values[key], 0 if key == "seed" else 1
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low
        ):
            hint = (
                "pass another seed" if key == "seed" else f"pass another value, or None for the task's {key}"
            )
            raise OptionError(f"{key}={value!r}: expected a whole number of at least {low}; {hint}")
    lr = values["lr"]
    if lr is not None and (
        isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(lr) or lr <= 0
    ):
        raise OptionError(
            f"lr={lr!r}: expected a finite number above 0; pass another value, or None for the task's lr"
        )


def _check_run_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse ``out`` when it is a file, holds a finished run, or holds files with a run's names
    but no run, unless ``overwrite`` (an unfinished run is :func:`_run_state`'s to refuse)."""
    if out.exists() and not out.is_dir():
        raise OutputConflictError(out, "is a file, not a folder", "choose another --out")
    if resume or overwrite or not out.is_dir():
        return
    previous = RunState.load(out)
    if previous is not None:
        done, total = previous.finished, int(previous.data.get("epochs", 0))
        if done >= total:
            raise OutputExistsError(
                out,
                f"holds a finished run of {previous.data.get('task')!r} ({done}/{total} epochs, its {MODEL}/)",
                "pass --overwrite to train again in its place, or choose another --out",
            )
        return
    clash = [name for name in RUN_FILES if (out / name).exists()]
    if clash:
        raise OutputExistsError(
            out,
            f"holds {', '.join(clash)} but no run ({RUN_FILE})",
            "pass --overwrite to replace them, or choose another --out",
        )


def _asked(root, epochs, bs, lr, num_workers, seed, dataset_kwargs, overrides) -> dict:
    """The caller's explicit choices as dotted-key overrides (options left None are not)."""
    asked: dict[str, Any] = {}
    for key, value in (
        ("epochs", epochs),
        ("bs", bs),
        ("lr", lr),
        ("num_workers", num_workers),
        ("seed", seed),
    ):
        if value is not None:
            asked[key] = value
    if root is not None:
        asked["dataset.root"] = str(root)
    for key, value in (dataset_kwargs or {}).items():
        asked[f"dataset.options.{key}"] = value
    if isinstance(overrides, dict):
        asked.update(overrides)
    else:
        from .config import parse_assignment

        asked.update(dict(parse_assignment(a) for a in overrides or []))
    return asked


def _start(task, config) -> tuple[dict, Any, Any]:
    """(config, base task, source) for ``task`` and/or ``config``."""
    from .config import load_config

    if config is None:
        if task is None:
            raise FastaiSparseError("train_task: pass a task or a config")
        return task.config(), task, None
    source = None
    if isinstance(config, (str, Path)):
        source, config = config, load_config(config)
    return dict(config), task, source


def _run_config(task, config, asked: dict) -> tuple[dict, Any]:
    """The run's resolved configuration and the task it describes."""
    from .config import apply_overrides, resolve_config

    cfg, base, source = _start(task, config)
    if asked:
        cfg = apply_overrides(cfg, asked, base=base, source=source)
    return resolve_config(cfg, base=base, source=source)


def _first_difference(a: Any, b: Any, key: str = "") -> str | None:
    """The dotted key of the first difference between two JSON documents, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in [*a, *(k for k in b if k not in a)]:
            sub = f"{key}.{k}" if key else str(k)
            if sub in _RESUME_FREE:
                continue
            found = _first_difference(a.get(k), b.get(k), sub)
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, f"{key}.{i}")
            if found:
                return found
        return None
    return None if a == b else key or "config"


def _lookup(doc: Any, key: str) -> Any:
    for part in key.split("."):
        doc = doc[int(part)] if isinstance(doc, list) else (doc or {}).get(part)
    return doc


def _resume_config(task, config, asked: dict, out: Path, previous: RunState | None) -> tuple[dict, Any]:
    """The recorded configuration of the run in ``out``, checked against what the caller gave."""
    from .config import apply_overrides, load_config, resolve_config

    if previous is None:
        raise FastaiSparseError(f"{out}: nothing to resume (no {RUN_FILE}); start a run without --resume")
    name = previous.data.get("task")
    if task is not None and name != task.name:
        raise FastaiSparseError(f"{out}: holds a run of task {name!r}, not {task.name!r}")
    if (out / CONFIG).is_file():
        recorded = load_config(out / CONFIG)
        base = task
    else:  # a run from before configs were recorded: its task and run.json's hyper-parameters
        from .registry import get_task

        base = task or get_task(name)
        recorded = base.config(
            **{k: previous.data[k] for k in ("epochs", "bs", "lr", "seed") if k in previous.data}
        )
    recorded, rebuilt = resolve_config(recorded, base=base, source=out / CONFIG)
    if config is not None:
        wanted, _ = _run_config(task, config, asked)
    elif asked:
        wanted = apply_overrides(recorded, asked, base=base)
    else:
        wanted = recorded
    key = _first_difference(recorded, wanted)
    if key is not None and key.startswith("dataset.options."):
        was, now = recorded["dataset"]["options"], wanted["dataset"]["options"]
        diff = sorted(k for k in {*was, *now} if was.get(k) != now.get(k))
        raise FastaiSparseError(
            f"{out}: the run was started with dataset options { ({k: was.get(k) for k in diff}) }; resuming "
            f"with { ({k: now.get(k) for k in diff}) } would change its data (omit -O / --set to keep the "
            "recorded ones)"
        )
    if key is not None:
        raise FastaiSparseError(
            f"{out}: the run was started with {key}={json.dumps(_lookup(recorded, key), default=str)}; resuming "
            f"with {key}={json.dumps(_lookup(wanted, key), default=str)} would change the run (omit the option "
            "to keep the recorded value)"
        )
    if wanted is not recorded:  # keys a resumed run may change (the data folder, the workers)
        wanted, rebuilt = resolve_config(wanted, base=base)
    return wanted, rebuilt


def _run_state(
    task,
    out: Path,
    cfg: dict,
    resume: bool,
    previous: RunState | None,
    dataset_kwargs: dict | None,
    write: bool = True,
) -> RunState:
    """The run to continue, or a new one (``run.json`` and ``config.json``); refuses to start
    over an unfinished run. ``run.json`` also lists the dataset options the caller gave (``-O``)."""
    from .config import to_json

    if resume:
        assert previous is not None
        previous.write = write
        return previous
    if previous is not None and previous.finished < int(previous.data.get("epochs", 0)):
        raise FastaiSparseError(
            f"{out}: holds an unfinished run of {previous.data.get('task')!r} "
            f"({previous.finished}/{previous.data.get('epochs')} epochs); pass --resume to continue it, "
            "--overwrite to start over, or choose another --out"
        )
    if write:
        _write_json(out / CONFIG, cfg)
    state = RunState(
        out,
        {
            "task": task.name,
            "config": CONFIG,
            "epochs": cfg["epochs"],
            "bs": cfg["bs"],
            "lr": cfg["lr"],
            "schedule": cfg["schedule"],
            "seed": cfg["seed"],
            "root": cfg["dataset"]["root"],
            "dataset_options": to_json(dict(dataset_kwargs or {})),
            "finished_epochs": 0,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "history": [],
        },
        write=write,
    )
    state.save()
    return state


def _learner_for_run(
    task, state: RunState, cfg: dict, start: int, resume: bool, quiet: bool
) -> tuple[Any, list]:
    """The seeded loaders and learner of the run, its callbacks, and (from epoch ``start`` > 0)
    the model and optimizer reloaded from the checkpoint."""
    import torch

    from . import _fastai  # noqa: F401  (fastai without its import-time deprecation warning: first)

    # isort: split
    from fastai.learner import load_model

    from .loggers import logger_callbacks
    from .precision import set_precision

    out = state.out
    torch.manual_seed(cfg["seed"])  # the same initial weights for the same seed
    bs = state.data.get("bs_per_process", cfg["bs"])  # cfg["bs"] split over processes and grad_accum
    dls = task.dataloaders(
        cfg["dataset"]["root"], bs=bs, num_workers=cfg["num_workers"], seed=cfg["seed"], path=out
    )
    learn = task.learner(dls, path=out)
    set_precision(learn, cfg.get("precision", "32"))
    log_cbs, record = logger_callbacks(
        cfg.get("loggers"), out, config=cfg, start=start, resume=resume, record=state.data.get("loggers")
    )
    state.data["loggers"] = {**(state.data.get("loggers") or {}), **record}
    state.data["precision"] = cfg.get("precision", "32")
    loader = getattr(dls.train, "fake_l", dls.train)  # fastai's DataLoader runs workers through fake_l
    state.data["workers"] = int(getattr(loader, "num_workers", 0) or 0)  # what the loaders use
    state.save()
    run_cbs = [*_run_callbacks(state, start), *log_cbs]
    if quiet:  # the CSV logger re-enables fastai's logger, so tables must be told directly
        from .metrics import PerClassTableCallback

        for cb in learn.cbs:
            if isinstance(cb, PerClassTableCallback):
                cb.quiet = True
    if start:
        learn.create_opt()
        load_model(out / CHECKPOINT, learn.model, learn.opt, with_opt=True, device="cpu")
    return learn, run_cbs


def _fit(learn: Any, d: dict, start: int, cbs: list, quiet: bool) -> None:
    """The run's schedule (``d["schedule"]``, one-cycle for runs that recorded none) from epoch
    ``start`` to ``d["epochs"]`` with the run's callbacks."""
    if start >= d["epochs"]:
        return
    from .distributed import GradientAccumulation, distrib_ctx

    # the run's callbacks live only for this fit: fastai also fires epoch events in get_preds,
    # which must not touch the run folder once training is over. Under torchrun the fit is
    # data-parallel (distrib_ctx; a no-op in a single process).
    accum = GradientAccumulation(d.get("grad_accum", 1))
    with learn.added_cbs([*cbs, accum]), distrib_ctx(learn):
        if quiet:
            with learn.no_bar(), learn.no_logging():
                fit(learn, d["epochs"], d["lr"], d.get("schedule"), start_epoch=start, reset_opt=not start)
        else:
            fit(learn, d["epochs"], d["lr"], d.get("schedule"), start_epoch=start, reset_opt=not start)
    d["optimizer_steps"] = int(d.get("optimizer_steps", 0)) + accum.steps
