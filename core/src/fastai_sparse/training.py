"""Training runs that survive interruption: what ``fastai-sparse train`` runs.

A run folder holds:

* ``run.json``: the task, the hyper-parameters and the number of finished epochs, rewritten
  atomically after every epoch;
* ``checkpoint.pth``: model and optimizer state after the last finished epoch (written to a
  temporary file, then renamed, so an interruption never leaves half a checkpoint);
* ``history.csv``: one line per epoch (fastai's ``CSVLogger``);
* ``model.pth``: the final weights (``learn.save_weights``), loadable with
  ``weights_only=True`` by ``fastai-sparse predict``; ``metrics.json``: the final metrics.

``train_task(..., resume=True)`` reloads the checkpoint and continues the one-cycle schedule
at the first unfinished epoch, with the hyper-parameters recorded in ``run.json``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .errors import FastaiSparseError

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
    """Train ``task`` with one-cycle, checkpointing every epoch in ``out``; returns a summary.

    With ``resume=True`` an interrupted run continues at its first unfinished epoch, with the
    recorded hyper-parameters (passing different ones is an error). Without it, a folder holding
    an unfinished run is an error, so no work is overwritten by accident. ``dataset_kwargs`` go
    to the task's dataset factory; ``cbs`` are extra fastai callbacks.
    """
    from fastai.learner import load_model

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    asked = {"epochs": epochs, "bs": bs, "lr": lr, "seed": seed}
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
        state = previous
    else:
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
                "epochs": int(epochs or task.defaults["epochs"]),
                "bs": int(bs or task.defaults["bs"]),
                "lr": float(lr or task.defaults["lr"]),
                "seed": int(seed),
                "root": str(root) if root is not None else None,
                "finished_epochs": 0,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "history": [],
            },
        )
        state.save()
    d = state.data
    import torch

    torch.manual_seed(d["seed"])  # the same initial weights for the same seed
    dls = task.dataloaders(
        root, bs=d["bs"], num_workers=num_workers, seed=d["seed"], path=out, **(dataset_kwargs or {})
    )
    learn = task.learner(dls, path=out)
    start = state.finished if resume else 0
    run_cbs = _run_callbacks(state, start, append=resume)
    if quiet:  # the CSV logger re-enables fastai's logger, so tables must be told directly
        from .metrics import PerClassTableCallback

        for cb in learn.cbs:
            if isinstance(cb, PerClassTableCallback):
                cb.quiet = True
    if start:
        learn.create_opt()
        load_model(out / CHECKPOINT, learn.model, learn.opt, with_opt=True, device="cpu")
    t0 = time.time()
    if start < d["epochs"]:
        # the run's callbacks live only for this fit: fastai also fires epoch events in get_preds,
        # which must not touch the run folder once training is over
        with learn.added_cbs([*run_cbs, *(cbs or [])]):
            if quiet:
                with learn.no_bar(), learn.no_logging():
                    learn.fit_one_cycle(d["epochs"], d["lr"], start_epoch=start, reset_opt=not start)
            else:
                learn.fit_one_cycle(d["epochs"], d["lr"], start_epoch=start, reset_opt=not start)
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
