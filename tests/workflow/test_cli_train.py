"""`fastai-sparse train` from the command line: quiet output is JSON, `--resume` of a finished
run trains nothing, and changing the schedule on resume is refused."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fastai_sparse.cli import main


@pytest.mark.slow
def test_cli_train_then_resume(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["train", "synthetic-rooms-seg", "--epochs", "1", "--bs", "8", "--quiet"]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout)  # nothing but the final metrics on stdout
    assert {"train_loss", "valid_loss", "miou"} <= set(metrics)
    out = tmp_path / "runs" / "synthetic-rooms-seg"
    assert json.loads((out / "run.json").read_text())["finished_epochs"] == 1
    again = CliRunner().invoke(main, [*args, "--resume"], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == metrics
    clash = CliRunner().invoke(main, [*args[:2], "--epochs", "3", "--resume"])
    assert (
        clash.exit_code == 1
        and clash.stderr.startswith("Error: ")
        and "started with epochs=1" in clash.stderr
    )
    assert "Traceback" not in clash.output
