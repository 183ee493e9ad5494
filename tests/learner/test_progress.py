"""What training prints: one plain line per epoch in logs, the per-class table once at the end,
lr_find shown as lr_find, fastai's bars kept in a terminal, no deprecation noise."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest

from fastai_sparse.learner import SparseProgressCallback, progress
from fastai_sparse.metrics import confusion_matrix, iou_from_confusion

from .test_learner import make_dls, make_learner


@pytest.fixture
def learn(tmp_path):
    return make_learner(make_dls(tmp_path, n_train=8, n_valid=4, bs=4))


def test_a_log_gets_a_header_one_line_per_epoch_and_one_table(learn, capsys):
    assert isinstance(learn.progress, SparseProgressCallback)
    learn.fit_one_cycle(3, 1e-2)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "\r" not in out and "█" not in out and "Epoch" not in out
    assert lines[0].split() == ["epoch", "train_loss", "valid_loss", "miou", "accuracy", "time"]
    assert [ln.split()[0] for ln in lines[1:4]] == ["0", "1", "2"]
    assert out.count("IoU per class") == 1 and lines[4] == "IoU per class, validation after epoch 2:"
    # the table printed is the last epoch's, and it agrees with the metrics of the final model
    cb = next(c for c in learn.cbs if type(c).__name__ == "PerClassTableCallback")
    preds, targs = learn.get_preds()
    ref = iou_from_confusion(confusion_matrix(preds, targs, 2))
    assert np.allclose([cb.last[c] for c in ("low", "high")], ref)
    assert f"{np.nanmean(ref):.4f}" in out.split("mean")[-1]
    assert capsys.readouterr().out == ""  # get_preds printed nothing


def test_lr_find_says_what_it_is(learn, capsys):
    learn.lr_find(num_it=7, show_plot=False)
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("lr_find: 7 training batches at learning rates from 1e-07 to 1e+01")
    assert out.splitlines()[-1] in ("lr_find: done, 7 batches",) or "stopped after" in out
    assert "Epoch" not in out and "epoch" not in out and "IoU per class" not in out


def test_lr_find_in_a_terminal_is_one_bar(learn, monkeypatch):
    """In a terminal: one bar over the iterations, labelled lr_find (not Epoch 1/4 ... 4/4)."""
    from fastprogress import fastprogress as fp

    buf = io.StringIO()
    monkeypatch.setattr(progress, "interactive", lambda: True)
    monkeypatch.setattr(fp, "printing", lambda: True)
    monkeypatch.setattr(fp, "WRITER_FN", lambda *a, **k: print(*a, **{**k, "file": buf}))
    monkeypatch.setattr(sys, "stdout", buf)
    learn.lr_find(num_it=7, show_plot=False)
    out = buf.getvalue()
    assert "lr_find |" in out and "Epoch" not in out
    assert "7/7" in out or "stopped after" in out
    learn.fit(1, 1e-3)  # and training keeps fastai's bars and table
    assert "Epoch 1/1" in buf.getvalue()


def test_no_bar_silences_and_gives_back_the_same_callback(learn, capsys):
    cb = learn.progress
    with learn.no_bar():
        assert not hasattr(learn, "progress")
        learn.fit(1, 1e-3)
    assert learn.progress is cb
    out = capsys.readouterr().out
    assert "train_loss" not in out and "\r" not in out  # no bars, no table header
    assert out.count("IoU per class") == 1  # the class table still comes once (logging is on)


def test_fastai_imports_without_deprecation_noise():
    """fastai's import calls torch.jit.script (deprecated in torch 2.10+); ours import it quietly,
    and the user's own calls still warn."""
    user_call = (
        "import warnings, torch\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    torch.jit.script(torch.nn.ReLU())\n"
        "print(sum('torch.jit.script' in str(x.message) for x in w))\n"
    )
    for module in ("fastai_sparse.metrics", "fastai_sparse.learner"):
        code = f"import {module}\n" + user_call
        res = subprocess.run(
            [sys.executable, "-W", "error::FutureWarning", "-c", code], capture_output=True, text=True
        )
        assert res.returncode == 0, res.stderr  # the import raised no FutureWarning
        assert int(res.stdout) >= 1, res.stderr
