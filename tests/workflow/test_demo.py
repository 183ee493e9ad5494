"""The demo writes a complete report folder; its model folder loads back."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fastai_sparse.cli import main


@pytest.mark.slow
def test_quick_demo_writes_the_report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative --out, as users type it
    res = CliRunner().invoke(main, ["demo", "--quick", "--quiet", "--out", "report"], catch_exceptions=False)
    out = tmp_path / "report"
    assert res.exit_code == 0, res.output
    assert "report: report/index.html" in res.output
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["model"]  # nothing else, no empty folders
    for name in (
        "index.html",
        "metrics.json",
        "model/model.safetensors",
        "model/config.json",
        "model/README.md",
        "lr_find.png",
        "losses.png",
        "prediction.png",
        "confidence.png",
        "errors.png",
        "kernels.png",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    summary = json.loads((out / "metrics.json").read_text())
    assert {"miou", "miou_tta", "chance_miou", "iou_per_class", "seconds"} <= set(summary)
    assert 0 <= summary["chance_miou"] < 0.2
    html = (out / "index.html").read_text()
    assert "IoU per class" in html and "plotly" in html.lower() and '<script src="http' not in html
    # a smoke run says so wherever its numbers appear: console, metrics.json, report, model card
    assert summary["smoke_run"] is True and summary["note"].startswith("smoke run (--quick")
    assert "smoke run (--quick" in res.output and f"mIoU {summary['miou']:.3f}" in res.output
    assert (
        "demo: synthetic room segmentation (smoke run)" in html
        and "validation (smoke run: not a result)" in html
    )
    assert "miou (smoke run)" in (out / "model" / "README.md").read_text()

    from fastai_sparse import get_task
    from fastai_sparse.builtin.synthetic import SyntheticRooms
    from fastai_sparse.learner import load_learner
    from fastai_sparse.prediction import Predictor

    room = SyntheticRooms(n=1, split="test", points=800)[0]
    a = Predictor.from_weights(get_task("synthetic-rooms-seg"), out / "model").predict(room, tta=1)
    b = load_learner(out / "model").predict(room)
    assert (a.labels == b.labels).all() and len(a.labels) == len(room)


def test_only_quick_demos_are_smoke_runs():
    from fastai_sparse.demo import _settings

    assert _settings(None, True, None)["smoke_run"] is True
    assert "smoke_run" not in _settings(None, False, None)
    assert "smoke_run" not in _settings(3, False, {"n_train": 4})
