"""`train --out` and `demo --out` never replace a user's work: a finished run, files with a run's
names and non-report folders are refused without --overwrite; numbers outside their meaning are
errors, never defaults; run.json records the values a run uses; report files get the umask."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fastai_sparse.errors import OptionError, OutputConflictError, OutputExistsError

from .builders import mode_of


@pytest.fixture(scope="module")
def rooms():
    from fastai_sparse import get_task

    return get_task("synthetic-rooms-seg")


TRAINED = b"\x10\0\0\0\0\0\0\0{} two hours of training"


def _finished_run(folder, task="synthetic-rooms-seg"):
    (folder / "model").mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(json.dumps({"task": task, "epochs": 2, "finished_epochs": 2}))
    (folder / "model" / "model.safetensors").write_bytes(TRAINED)
    return folder


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 0}, "epochs=0: expected a whole number of at least 1"),
        ({"epochs": 2.5}, "epochs=2.5"),
        ({"bs": 0}, "bs=0"),
        ({"lr": 0}, "lr=0: expected a finite number above 0"),
        ({"lr": -1e-3}, "lr=-0.001"),
        ({"lr": float("nan")}, "lr=nan"),
        ({"seed": -1}, "seed=-1"),
    ],
)
def test_train_task_refuses_values_outside_their_meaning(rooms, tmp_path, kwargs, message):
    """Issue 13: `epochs or default` turned 0 into the default; now it is an error, before any file."""
    from fastai_sparse.training import train_task

    with pytest.raises(OptionError, match=message.replace(".", r"\.").replace("(", r"\(")):
        train_task(rooms, out=tmp_path / "run", **kwargs)
    assert not (tmp_path / "run").exists()


def test_a_finished_run_is_not_replaced_without_overwrite(rooms, tmp_path):
    from fastai_sparse.training import train_task

    run = _finished_run(tmp_path / "run")
    with pytest.raises(
        OutputExistsError, match=r"holds a finished run of 'synthetic-rooms-seg' \(2/2 epochs"
    ):
        train_task(rooms, out=run, epochs=1)
    assert (run / "model" / "model.safetensors").read_bytes() == TRAINED


def test_files_with_a_runs_names_are_not_replaced(rooms, tmp_path):
    from fastai_sparse.training import train_task

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.safetensors").write_bytes(TRAINED)
    with pytest.raises(OutputExistsError, match=r"holds model but no run"):
        train_task(rooms, out=tmp_path, epochs=1)
    assert (tmp_path / "model" / "model.safetensors").read_bytes() == TRAINED
    (tmp_path / "model").rename(tmp_path / "mine")
    (tmp_path / "history.csv").write_text("mine\n")
    with pytest.raises(OutputExistsError, match=r"holds history\.csv but no run"):
        train_task(rooms, out=tmp_path, epochs=1)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputConflictError, match="is a file, not a folder"):
        train_task(rooms, out=tmp_path / "file", epochs=1)


@pytest.mark.slow
def test_run_json_records_the_values_used_and_overwrite_starts_again(rooms, tmp_path):
    from fastai_sparse.training import train_task

    from ..workflow.conftest import SMALL_ROOMS

    run = _finished_run(tmp_path / "run")
    result = train_task(
        rooms, out=run, epochs=1, quiet=True, overwrite=True, num_workers=0, dataset_kwargs=SMALL_ROOMS
    )
    recorded = json.loads((run / "run.json").read_text())
    assert recorded["epochs"] == 1 and recorded["finished_epochs"] == 1
    assert recorded["bs"] == rooms.defaults["bs"] and recorded["lr"] == rooms.defaults["lr"]
    assert recorded["workers"] == 0 and recorded["seed"] == 0
    assert (run / "model" / "model.safetensors").read_bytes() != TRAINED
    assert json.loads((run / "config.json").read_text())["epochs"] == 1
    assert result["metrics"]


def test_demo_refuses_a_folder_that_is_not_a_report(tmp_path):
    from fastai_sparse.demo import _check_report_folder, run_demo

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("three years\n")
    with pytest.raises(
        OutputExistsError, match=r"is not empty and not a demo report \(it holds thesis.txt\)"
    ):
        run_demo(mine, quick=True, quiet=True)
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.txt"]
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputConflictError, match="is a file, not a folder"):
        run_demo(tmp_path / "f", quick=True, quiet=True)
    # a previous report (its metrics.json says so, nothing else in it) is replaced without asking
    report = tmp_path / "report"
    report.mkdir()
    (report / "metrics.json").write_text(json.dumps({"task": "synthetic-rooms-seg", "report": "x"}))
    (report / "index.html").write_text("<html>")
    _check_report_folder(report, overwrite=False)
    (report / "notes.md").write_text("mine")  # ... but not once a user's file sits in it
    with pytest.raises(OutputExistsError, match=r"notes\.md"):
        _check_report_folder(report, overwrite=False)
    _check_report_folder(report, overwrite=True)
    # a lone model.pth without the report's metrics.json is not a report
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "model.pth").write_bytes(b"PK")
    with pytest.raises(OutputExistsError):
        _check_report_folder(lone, overwrite=False)


def test_report_files_get_the_umask(tmp_path):
    from fastai_sparse import viz

    old = os.umask(0o002)
    try:
        fig = viz.points.new_figure()
        fig.add_subplot(1, 1, 1).plot([0, 1], [1, 0])
        png = viz.points.save_figure(fig, tmp_path / "plot.png")
        html = viz.Report("t").save(tmp_path)
    finally:
        os.umask(old)
    assert mode_of(png) == mode_of(html) == 0o664
    assert png.read_bytes().startswith(b"\x89PNG") and html.read_text().startswith("<")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "plot.png"]


@pytest.mark.slow
def test_demo_report_gets_the_umask_and_leaves_no_temporary(tmp_path):
    """A real `fastai-sparse demo --quick` under umask 027: every file of the report (HTML, PNGs,
    metrics.json, the model folder's files) is 640 and every folder 750, as files the user makes
    by hand; only the report's names are there, no temporary file and no lr_find leftovers."""
    import subprocess
    import sys

    from fastai_sparse.demo import DEMO_FILES

    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "fastai_sparse.cli", "demo", "--quick", "--quiet", "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        preexec_fn=lambda: os.umask(0o027),
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    names = {p.name for p in out.iterdir()}
    assert (
        {"index.html", "metrics.json", "model", "lr_find.png", "losses.png"}
        <= names
        <= DEMO_FILES - {"models"}
    )
    files = [p for p in out.rglob("*") if p.is_file()]
    folders = [out, *(p for p in out.rglob("*") if p.is_dir())]
    assert {p.name for p in (out / "model").iterdir()} >= {"model.safetensors", "config.json"}
    assert {p.relative_to(out).as_posix(): oct(mode_of(p)) for p in files} == {
        p.relative_to(out).as_posix(): oct(0o640) for p in files
    }
    assert {str(p): oct(mode_of(p)) for p in folders} == {str(p): oct(0o750) for p in folders}
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["task"] == "synthetic-rooms-seg" and Path(summary["report"]).name == "index.html"
