"""Training runs that survive interruption: what ``fastai-sparse train`` runs.

A run folder holds:

* ``run.json``: the task, the hyper-parameters and the number of finished epochs, rewritten
  atomically after every epoch;
* ``checkpoint.pth``: model and optimizer state after the last finished epoch (written to a
  temporary file, then renamed, so an interruption never leaves half a checkpoint);
* ``history.csv``: one line per epoch (fastai's ``CSVLogger``);
* ``model.pth``: the final weights (``learn.save_weights``), loadable with
  ``weights_only=True`` by ``fastai-sparse predict``; ``metrics.json``: the final metrics.

``train_task(..., resume=True)`` reloads the checkpoint and continues the schedule (the task's
``defaults["schedule"]``, see :mod:`fastai_sparse.schedules`) at the first unfinished epoch,
with the hyper-parameters recorded in ``run.json``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .errors import FastaiSparseError
from .schedules import fit, schedule_spec

__all__ = ["RunState", "train_task"]

RUN_FILE, CHECKPOINT, HISTORY, WEIGHTS, METRICS = (
    "run.json",
    "checkpoint.pth",
    "history.csv",
    "model.pth",
    "metrics.json",
)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


class RunState:
    """The ``run.json`` of a run folder."""

    def __init__(self, out: Path, data: dict):
        self.out, self.data = out, data

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
        _write_json(self.out / RUN_FILE, self.data)

    @property
    def finished(self) -> int:
        return int(self.data.get("finished_epochs", 0))


def _run_callbacks(state: RunState, start: int, append: bool) -> list:
    """The checkpoint callback and a CSV logger, both silent for the epochs a resumed run skips
    (fastai still calls ``after_epoch`` for them)."""
    from fastai.callback.core import Callback
    from fastai.callback.progress import CSVLogger
    from fastai.learner import save_model

    class ResumableCSVLogger(CSVLogger):
        def _write_line(self, log):
            if self.epoch >= start:
                super()._write_line(log)

    class CheckpointCallback(Callback):
        """After every epoch: model + optimizer to ``checkpoint.pth`` (atomically), then ``run.json``."""

        order = 100  # after the recorder has the epoch's values

        def after_epoch(self):
            if self.epoch < start:
                return
            path = state.out / CHECKPOINT
            tmp = path.with_name(f".{path.name}.tmp")
            save_model(tmp, self.learn.model, getattr(self.learn, "opt", None), with_opt=True)
            os.replace(tmp, path)
            names = list(self.learn.recorder.metric_names[1:-1])
            values = list(self.learn.recorder.log[1:-1])
            state.data["finished_epochs"] = self.epoch + 1
            state.data.setdefault("history", []).append(
                {n: (float(v) if isinstance(v, (int, float)) else str(v)) for n, v in zip(names, values)}
                | {"epoch": self.epoch}
            )
            state.save()

    return [CheckpointCallback(), ResumableCSVLogger(fname=HISTORY, append=append)]


def train_task(
    task,
    root: str | Path | None = None,
    out: str | Path = "runs/run",
    epochs: int | None = None,
    bs: int | None = None,
    lr: float | None = None,
    num_workers: int | None = None,
    seed: int = 0,
    resume: bool = False,
    quiet: bool = False,
    dataset_kwargs: dict | None = None,
    cbs: list | None = None,
) -> dict:
    """Train ``task`` with its schedule (one-cycle by default), checkpointing every epoch in ``out``; returns a summary.

    With ``resume=True`` an interrupted run continues at its first unfinished epoch, with the
    recorded hyper-parameters (passing different ones is an error). Without it, a folder holding
    an unfinished run is an error, so no work is overwritten by accident. ``dataset_kwargs`` go
    to the task's dataset factory; ``cbs`` are extra fastai callbacks.

    Steps: :func:`_run_state` (a new ``run.json``, or the recorded one to resume),
    :func:`_learner_for_run` (seeded data and model, the run's callbacks, the checkpoint
    reloaded), :func:`_fit`, then the final weights and ``metrics.json``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    asked = {"epochs": epochs, "bs": bs, "lr": lr, "seed": seed}
    state = _run_state(task, out, root, asked, resume)
    dataset_kwargs = _dataset_options(state, dataset_kwargs, resume)
    d = state.data
    start = state.finished if resume else 0
    learn, run_cbs = _learner_for_run(task, state, root, num_workers, start, resume, quiet, dataset_kwargs)
    t0 = time.time()
    _fit(learn, d, start, [*run_cbs, *(cbs or [])], quiet)
    weights = learn.save_weights(WEIGHTS)  # relative to learn.path == out
    metrics = d["history"][-1] if d.get("history") else {}
    _write_json(
        out / METRICS,
        {
            "task": task.name,
            "epochs": d["epochs"],
            "metrics": metrics,
            "seconds_this_session": round(time.time() - t0, 1),
        },
    )
    return {"out": out, "weights": weights, "metrics": metrics, "resumed_from": start, "learner": learn}


def _run_state(task, out: Path, root: str | Path | None, asked: dict, resume: bool) -> RunState:
    """The run to continue (checked against ``asked``), or a new one written to ``run.json``;
    refuses to start over an unfinished run."""
    previous = RunState.load(out)
    if resume:
        if previous is None:
            raise FastaiSparseError(f"{out}: nothing to resume (no {RUN_FILE}); start a run without --resume")
        if previous.data.get("task") != task.name:
            raise FastaiSparseError(
                f"{out}: holds a run of task {previous.data.get('task')!r}, not {task.name!r}"
            )
        for key, value in asked.items():
            if value is not None and key != "seed" and value != previous.data[key]:
                raise FastaiSparseError(
                    f"{out}: the run was started with {key}={previous.data[key]!r}; resuming with {key}={value!r} "
                    "would change the schedule (omit the option to keep the recorded value)"
                )
        return previous
    if previous is not None and previous.finished < int(previous.data.get("epochs", 0)):
        raise FastaiSparseError(
            f"{out}: holds an unfinished run of {previous.data.get('task')!r} "
            f"({previous.finished}/{previous.data.get('epochs')} epochs); pass --resume to continue it or "
            "choose another --out"
        )
    state = RunState(
        out,
        {
            "task": task.name,
            "epochs": int(asked["epochs"] or task.defaults["epochs"]),
            "bs": int(asked["bs"] or task.defaults["bs"]),
            "lr": float(asked["lr"] or task.defaults["lr"]),
            "schedule": schedule_spec(task.defaults.get("schedule")),
            "seed": int(asked["seed"]),
            "root": str(root) if root is not None else None,
            "finished_epochs": 0,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "history": [],
        },
    )
    state.save()
    return state


def _dataset_options(state: RunState, given: dict | None, resume: bool) -> dict:
    """The dataset options of the run: recorded in ``run.json`` when it starts; a resumed run
    uses the recorded ones (giving others is an error: the data would change under the run)."""
    given = {k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in (given or {}).items()}
    recorded = state.data.get("dataset_options")
    if resume and recorded is not None:
        if given and given != recorded:
            raise FastaiSparseError(
                f"{state.out}: the run was started with dataset options {recorded}; resuming with {given} "
                "would change its data (omit -O to keep the recorded ones)"
            )
        return dict(recorded)
    if given or recorded is None:
        state.data["dataset_options"] = given
        state.save()
    return given


def _learner_for_run(
    task,
    state: RunState,
    root: str | Path | None,
    num_workers: int | None,
    start: int,
    resume: bool,
    quiet: bool,
    dataset_kwargs: dict | None,
) -> tuple[Any, list]:
    """The seeded loaders and learner of the run, its callbacks, and (from epoch ``start`` > 0)
    the model and optimizer reloaded from the checkpoint."""
    import torch
    from fastai.learner import load_model

    d, out = state.data, state.out
    torch.manual_seed(d["seed"])  # the same initial weights for the same seed
    dls = task.dataloaders(
        root, bs=d["bs"], num_workers=num_workers, seed=d["seed"], path=out, **(dataset_kwargs or {})
    )
    learn = task.learner(dls, path=out)
    run_cbs = _run_callbacks(state, start, append=resume)
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
    # the run's callbacks live only for this fit: fastai also fires epoch events in get_preds,
    # which must not touch the run folder once training is over
    with learn.added_cbs(cbs):
        if quiet:
            with learn.no_bar(), learn.no_logging():
                fit(learn, d["epochs"], d["lr"], d.get("schedule"), start_epoch=start, reset_opt=not start)
        else:
            fit(learn, d["epochs"], d["lr"], d.get("schedule"), start_epoch=start, reset_opt=not start)
