"""Learning-rate schedules named in ``Task.defaults["schedule"]`` (fastai_sparse.schedules)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastai_sparse.errors import FastaiSparseError
from fastai_sparse.schedules import SCHEDULES, fit, schedule_spec


def _learner(tmp_path):
    import fastai.callback.progress  # noqa: F401  (Learner.no_bar)
    from fastai.test_utils import synth_learner

    learn = synth_learner(n_trn=1, path=tmp_path)  # one batch per epoch: an epoch is one step
    assert len(learn.dls.train) == 1
    return learn


def _lrs(learn, epochs, lr, schedule, **kw):
    seen = []
    from fastai.callback.core import Callback

    class Spy(Callback):
        order = 70  # after the ParamScheduler has set this step's value

        def before_batch(self):
            if self.training:
                seen.append(self.opt.hypers[-1]["lr"])

    with learn.no_bar(), learn.no_logging():
        fit(learn, epochs, lr, schedule, cbs=[Spy()], **kw)
    return np.array(seen)


def test_spec_defaults_and_errors():
    assert schedule_spec(None) == {"name": "one-cycle", **SCHEDULES["one-cycle"]}
    assert schedule_spec("flat") == {"name": "flat", "warmup": 0.0, "div": 25.0}
    assert schedule_spec({"name": "one-cycle", "pct_start": 0.1})["pct_start"] == 0.1
    with pytest.raises(FastaiSparseError, match="unknown schedule 'cosine'"):
        schedule_spec("cosine")
    with pytest.raises(FastaiSparseError, match="has no parameter 'warmup'"):
        schedule_spec({"name": "one-cycle", "warmup": 0.1})
    with pytest.raises(FastaiSparseError, match="pct_start must be in"):
        schedule_spec({"name": "one-cycle", "pct_start": 1.5})
    with pytest.raises(FastaiSparseError, match="a name or a dict"):
        schedule_spec({"pct_start": 0.1})


def test_flat_is_constant_and_one_step_per_epoch(tmp_path):
    lrs = _lrs(_learner(tmp_path), 12, 3e-3, "flat")
    assert len(lrs) == 12
    np.testing.assert_allclose(lrs, 3e-3)


def test_flat_warmup_is_a_cosine_from_lr_over_div(tmp_path):
    lrs = _lrs(_learner(tmp_path), 20, 1e-2, {"name": "flat", "warmup": 0.25, "div": 10})
    # fastai evaluates the schedule at the fraction of training done before each step
    pct = np.arange(20) / 20
    lo, hi = 1e-3, 1e-2
    expected = np.where(
        pct < 0.25, lo + (hi - lo) * (1 - np.cos(math.pi * np.minimum(pct / 0.25, 1))) / 2, hi
    )
    np.testing.assert_allclose(lrs, expected, rtol=1e-6)


def test_one_cycle_is_fastais(tmp_path):
    lrs = _lrs(_learner(tmp_path), 20, 1e-2, {"name": "one-cycle", "pct_start": 0.1})
    assert lrs[0] == pytest.approx(1e-2 / 25)
    assert lrs.argmax() == 2 and lrs.max() == pytest.approx(1e-2)
    assert lrs[-1] < 1e-3


def test_flat_cos_resumes_where_it_left_off(tmp_path):
    full = _lrs(_learner(tmp_path), 10, 1e-2, "flat-cos")
    rest = _lrs(_learner(tmp_path), 10, 1e-2, "flat-cos", start_epoch=6)
    np.testing.assert_allclose(rest, full[6:], rtol=1e-6)
    assert full[:7] == pytest.approx([1e-2] * 7) and full[-1] < 1e-2


def test_train_task_follows_and_records_the_task_schedule(tmp_path):
    import dataclasses
    import json

    from fastai_sparse import get_task
    from fastai_sparse.training import train_task

    base = get_task("synthetic-rooms-seg")
    task = dataclasses.replace(base, defaults={**base.defaults, "schedule": {"name": "flat", "warmup": 0.5}})
    res = train_task(
        task, out=tmp_path, epochs=2, bs=2, lr=1e-2, quiet=True, dataset_kwargs={"n": 4, "points": 1500}
    )
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["schedule"] == {"name": "flat", "warmup": 0.5, "div": 25.0}
    lrs = np.array(res["learner"].recorder.hps["lr"])  # 2 epochs x 2 batches
    assert len(lrs) == 4
    np.testing.assert_allclose(lrs[2:], 1e-2)  # flat after the warm-up half
    assert lrs[0] == pytest.approx(1e-2 / 25)
