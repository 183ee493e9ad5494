"""Learning-rate schedules a task names in ``Task.defaults["schedule"]``.

A schedule is a name or a dict ``{"name": ..., **parameters}``:

* ``"one-cycle"`` (default): fastai's ``fit_one_cycle``: a cosine warm-up from ``lr / div``
  to ``lr`` over the first ``pct_start`` of the steps, then a cosine decay to
  ``lr / div_final``; momentum cycles 0.95 -> 0.85 -> 0.95. Parameters ``pct_start`` (0.25),
  ``div`` (25), ``div_final`` (1e5).
* ``"flat"``: a constant ``lr`` (and momentum), after an optional cosine warm-up from
  ``lr / div`` over the first ``warmup`` fraction of the steps. Parameters ``warmup`` (0),
  ``div`` (25). A flat schedule does not depend on the run's length, so the weights after
  ``k`` steps are the same whether the run is ``k`` or ``10 k`` steps long.
* ``"flat-cos"``: constant ``lr`` for the first ``pct_start`` (0.75) of the steps, then a
  cosine decay to ``lr / div_final`` (1e5) (fastai's ``fit_flat_cos``, which also resumes).

Every schedule is a function of the fraction of training done, so a resumed run continues it
exactly. With one batch per epoch (a single training scene) an "epoch" is one step:
``fit(learn, 100, lr)`` is 100 steps, and a 25% warm-up is 25 of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import FastaiSparseError

__all__ = ["SCHEDULES", "fit", "schedule_spec"]

#: Schedule names and their parameters with default values.
SCHEDULES: dict[str, dict[str, float]] = {
    "one-cycle": {"pct_start": 0.25, "div": 25.0, "div_final": 1e5},
    "flat": {"warmup": 0.0, "div": 25.0},
    "flat-cos": {"pct_start": 0.75, "div_final": 1e5},
}


def schedule_spec(schedule: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """The full spec ``{"name": ..., every parameter}`` of ``schedule`` (a name, a dict with
    ``"name"`` and some parameters, or None for ``"one-cycle"``). Unknown names or parameters
    raise :class:`~fastai_sparse.errors.FastaiSparseError`."""
    if schedule is None:
        schedule = "one-cycle"
    if isinstance(schedule, str):
        schedule = {"name": schedule}
    if not isinstance(schedule, Mapping) or "name" not in schedule:
        raise FastaiSparseError(
            f"schedule must be a name or a dict with a 'name', got {schedule!r}; names: {sorted(SCHEDULES)}"
        )
    name = schedule["name"]
    if name not in SCHEDULES:
        raise FastaiSparseError(f"unknown schedule {name!r}; expected one of {sorted(SCHEDULES)}")
    params = {k: v for k, v in schedule.items() if k != "name"}
    unknown = sorted(set(params) - set(SCHEDULES[name]))
    if unknown:
        raise FastaiSparseError(
            f"schedule {name!r} has no parameter {unknown[0]!r}; its parameters: {sorted(SCHEDULES[name])}"
        )
    spec = {"name": name, **SCHEDULES[name], **{k: float(v) for k, v in params.items()}}
    for key in ("pct_start", "warmup"):
        if key in spec and not 0 <= spec[key] <= 1:
            raise FastaiSparseError(f"schedule {name!r}: {key} must be in [0, 1], got {spec[key]}")
    for key in ("div", "div_final"):
        if key in spec and not spec[key] > 0:
            raise FastaiSparseError(f"schedule {name!r}: {key} must be > 0, got {spec[key]}")
    return spec


def fit(
    learn,
    epochs: int,
    lr: float,
    schedule: str | Mapping[str, Any] | None = None,
    *,
    cbs: list | None = None,
    start_epoch: int = 0,
    reset_opt: bool = False,
    wd: float | None = None,
) -> None:
    """Train ``learn`` (a fastai Learner) for ``epochs`` with peak learning rate ``lr`` under
    ``schedule`` (see the module docstring). ``start_epoch`` resumes a run at that epoch."""
    import numpy as np
    from fastai.callback.schedule import ParamScheduler, SchedCos, SchedNo, combine_scheds, combined_cos

    spec = schedule_spec(schedule)
    name = spec["name"]
    if name == "one-cycle":
        learn.fit_one_cycle(
            epochs,
            lr,
            div=spec["div"],
            div_final=spec["div_final"],
            pct_start=spec["pct_start"],
            cbs=cbs,
            start_epoch=start_epoch,
            reset_opt=reset_opt,
            wd=wd,
        )
        return
    if learn.opt is None:
        learn.create_opt()
    learn.opt.set_hyper("lr", lr)
    lrs = np.array([h["lr"] for h in learn.opt.hypers])
    if name == "flat":
        w = spec["warmup"]
        if w >= 1:
            sched = SchedCos(lrs / spec["div"], lrs)
        elif w > 0:
            sched = combine_scheds([w, 1 - w], [SchedCos(lrs / spec["div"], lrs), SchedNo(lrs, lrs)])
        else:
            sched = SchedNo(lrs, lrs)
    else:  # flat-cos
        sched = combined_cos(spec["pct_start"], lrs, lrs, lrs / spec["div_final"])
    learn.fit(
        epochs,
        cbs=[ParamScheduler({"lr": sched}), *(cbs or [])],
        reset_opt=reset_opt,
        wd=wd,
        start_epoch=start_epoch,
    )
