"""Dataset options from the command line: tasks declare them (TaskOption), `-O NAME=VALUE` on
`prepare` and `train` is checked against the declaration, `TASK --help` lists them, `--help`
alone stays light; `prepare --force`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fastai_sparse.errors import OptionError
from fastai_sparse.task import Task, TaskOption

from .conftest import invoke


def _task(**kw):
    return Task(
        name="opt-test",
        target=None,
        dataset="x:y",
        options=[
            TaskOption(
                "label_source", "where labels come from", choices=("nyu40", "raw-id"), default="nyu40"
            ),
            TaskOption("points", "points per shape", type=int),
            TaskOption("scale", "a float", type=float),
            TaskOption("normals", "normals", type=bool, default=False),
            TaskOption("table", "a file", type=Path),
            TaskOption("limit", "train only", type=int, commands=("train",)),
        ],
        **kw,
    )


def test_parse_options_converts_declared_types():
    got = _task().parse_options(
        ["label_source=raw-id", "points=4096", "scale=0.5", "normals=yes", "table=~/t.tsv"], "prepare"
    )
    assert got == {
        "label_source": "raw-id",
        "points": 4096,
        "scale": 0.5,
        "normals": True,
        "table": Path("~/t.tsv").expanduser(),
    }
    assert _task().parse_options(["label-source=nyu40", "limit=3"], "train") == {
        "label_source": "nyu40",
        "limit": 3,
    }


@pytest.mark.parametrize(
    "pairs, command, message",
    [
        (["label_source=raw"], "prepare", r"label_source='raw': expected one of nyu40, raw-id"),
        (["points=many"], "prepare", r"points='many': expected an integer"),
        (["scale=x"], "prepare", r"scale='x': expected a number"),
        (["normals=maybe"], "prepare", r"normals='maybe': expected true or false"),
        (
            ["labelsource=raw-id"],
            "prepare",
            r"unknown option 'labelsource'; the options of 'opt-test' for prepare: label_source=",
        ),
        (["limit=3"], "prepare", r"unknown option 'limit'"),
        (["points"], "prepare", r"option 'points': expected NAME=VALUE"),
        (["points=1", "points=2"], "prepare", r"option 'points' is given twice"),
    ],
)
def test_parse_options_errors(pairs, command, message):
    with pytest.raises(OptionError, match=message):
        _task().parse_options(pairs, command)


def test_task_without_options_says_so():
    with pytest.raises(OptionError, match="declares no dataset options for train"):
        Task(name="plain", target=None, dataset="x:y").parse_options(["a=1"])


# -- the CLI, with the ScanNet plugin (a task that declares options) -------------------------------
scannet = pytest.importorskip("fastai_sparse_scannet", reason="the ScanNet plugin is not installed")


@pytest.fixture
def raw_id_root(tmp_path):
    """A ScanNet root whose labels PLY files hold raw category ids (an older download)."""
    from fastai_sparse_scannet.fixtures import make_fixture, write_ply_mesh
    from fastai_sparse_scannet.reader import read_mesh_ply, scene_files

    root = make_fixture(tmp_path / "root", vertices=600)
    to_raw = {1: 1, 5: 2, 2: 3, 7: 4, 39: 56, 18: 13, 3: 7, 4: 11}
    for d in (root / "scans").iterdir():
        f = scene_files(d)["labels"]
        m = read_mesh_ply(f, labels=True)
        raw = [to_raw.get(int(v), 0) for v in m["label"]]
        write_ply_mesh(f, m["xyz"], m["rgb"], m["faces"], label=raw)
    return root


def test_cli_prepare_raw_id_download(raw_id_root, tmp_path):
    out = tmp_path / "cache"
    r = invoke("prepare", "scannet-seg", "--root", raw_id_root, "--out", out, "-j", "1", "--quiet")
    assert r.exit_code == 1
    assert r.stderr.startswith("Error: ") and "-O label_source=raw-id" in r.stderr
    r = invoke(
        "prepare",
        "scannet-seg",
        "--root",
        raw_id_root,
        "--out",
        out,
        "-j",
        "1",
        "--quiet",
        "-O",
        "label_source=raw-id",
    )
    assert r.exit_code == 0, r.stderr
    s = json.loads(r.stdout)
    assert (s["prepared"], s["options"]["label_source"]) == (4, "raw-id")
    again = json.loads(invoke("prepare", "scannet-seg", "--root", raw_id_root, "--out", out, "-j", "1", "--quiet",
                              "-O", "label_source=raw-id").stdout)  # fmt: skip
    assert (again["prepared"], again["fresh"]) == (0, 4)
    forced = invoke("prepare", "scannet-seg", "--root", raw_id_root, "--out", out, "-j", "1", "--quiet", "--force",
                    "-O", "label_source=raw-id")  # fmt: skip
    assert forced.exit_code == 0 and json.loads(forced.stdout)["prepared"] == 4


@pytest.mark.parametrize(
    "args, message",
    [
        (["-O", "label_source=raw"], "label_source='raw': expected one of nyu40, raw-id, aggregation"),
        (["-O", "label_sauce=raw-id"], "unknown option 'label_sauce'"),
        (["-O", "limit=2"], "unknown option 'limit'"),  # a train-only option
        (["--jobs", "0"], "0 worker processes; expected 1 or more"),
    ],
)
def test_cli_prepare_usage_errors(raw_id_root, tmp_path, args, message):
    r = invoke("prepare", "scannet-seg", "--root", raw_id_root, "--out", tmp_path / "c", *args)
    assert r.exit_code == 2 and message in r.stderr, r.stderr
    assert not (tmp_path / "c").exists()


def test_cli_prepare_help_lists_task_options():
    r = invoke("prepare", "scannet-seg", "--help")
    assert r.exit_code == 0
    assert "label_source=nyu40|raw-id|aggregation" in r.stdout and "check_labels=bool" in r.stdout
    assert "limit=" not in r.stdout  # train only
    assert "limit=int" in invoke("train", "scannet-seg", "--help").stdout
    assert "`fastai-sparse prepare TASK --help` lists" in invoke("prepare", "--help").stdout
    assert "unknown task 'scanet-seg'" in invoke("prepare", "--root", ".", "scanet-seg", "--help").stdout


def test_prepare_help_stays_light():
    code = (
        "import sys; from click.testing import CliRunner; from fastai_sparse.cli import main; "
        "r = CliRunner().invoke(main, ['prepare', '--help']); assert r.exit_code == 0, r.output; "
        "print(sorted(m for m in ('torch', 'fastai', 'fastai_sparse.registry') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_prepare_force_on_a_prepare_without_it(use_plugins, tmp_path):
    import types

    mod = types.ModuleType("noforceplugin")
    exec(
        "from fastai_sparse import hookimpl\n"
        "from fastai_sparse.task import Task\n"
        "def prep(root, out=None, jobs=2, skip_bad=False):\n"
        "    return {'done': True}\n"
        "@hookimpl\n"
        "def register_tasks(register):\n"
        "    register(Task(name='noforce-seg', target=None, dataset='x:y', prepare=prep))\n",
        mod.__dict__,
    )
    sys.modules["noforceplugin"] = mod
    use_plugins(mod)
    r = invoke("prepare", "noforce-seg", "--root", tmp_path)
    assert r.exit_code == 0 and json.loads(r.stdout) == {"done": True}
    r = invoke("prepare", "noforce-seg", "--root", tmp_path, "--force")
    assert r.exit_code == 2 and "its prepare does not support --force" in r.stderr
    r = invoke("prepare", "noforce-seg", "--root", tmp_path, "-O", "a=1")
    assert r.exit_code == 2 and "declares no dataset options for prepare" in r.stderr


@pytest.mark.slow
def test_cli_train_records_dataset_options_and_resume_keeps_them(raw_id_root, tmp_path):
    out = tmp_path / "run"
    args = [
        "train",
        "scannet-seg",
        "--root",
        raw_id_root,
        "--out",
        out,
        "--epochs",
        "1",
        "--bs",
        "2",
        "--quiet",
    ]
    r = invoke(*args[:5], tmp_path / "first", *args[6:])
    assert r.exit_code == 1 and "-O label_source=raw-id" in r.stderr  # read as NYU40: refused
    r = invoke(*args, "-O", "label_source=raw-id", "-O", "limit=1")
    assert r.exit_code == 0, r.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["dataset_options"] == {"label_source": "raw-id", "limit": 1}
    assert invoke(*args, "--resume").exit_code == 0  # the recorded options are used
    clash = invoke(*args, "--resume", "-O", "label_source=nyu40")
    assert clash.exit_code == 1 and "started with dataset options" in clash.stderr
