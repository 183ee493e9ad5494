"""``fastai-sparse new-plugin``: the package it writes installs, passes the conformance kit and its
own tests as written, trains and predicts (slow); names, refusals, lint and the public API (fast)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fastai_sparse.cli import main
from fastai_sparse.errors import OptionError, OutputExistsError
from fastai_sparse.scaffold import plugin_names, write_plugin

from .test_public_api import private_references

ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).with_name("ruff")


def new_plugin(*args):
    return CliRunner().invoke(main, ["new-plugin", *map(str, args)])


def test_names_follow_from_name():
    n = plugin_names("my-rooms")
    assert (n.distribution, n.package, n.entry_point, n.dataset, n.task) == (
        "fastai-sparse-my-rooms",
        "fastai_sparse_my_rooms",
        "my_rooms",
        "my-rooms",
        "my-rooms-seg",
    )
    assert plugin_names("fastai_sparse_lidar").task == "lidar-seg"  # the prefix is not repeated
    assert plugin_names("s3dis2").package == "fastai_sparse_s3dis2"


@pytest.mark.parametrize(
    "name, message",
    [
        ("My Rooms", "plugin name 'My Rooms': use lowercase letters and digits, words joined by '-' or '_', starting with a letter, at most 40 characters (e.g. 'my-rooms')"),
        ("3d-rooms", "starting with a letter"),
        ("rooms--big", "words joined by '-' or '_'"),
        ("rooms.v2", "(e.g. 'rooms-v2')"),
        ("x" * 41, "at most 40 characters"),
        ("class", "is a Python keyword"),
        ("scannet", "plugin name 'scannet' is already used by the installed distribution 'fastai-sparse-scannet'"),
    ],
)  # fmt: skip
def test_bad_names_are_usage_errors(name, message, tmp_path):
    if name == "scannet":
        pytest.importorskip("fastai_sparse_scannet", reason="the ScanNet plugin is not installed")
    res = new_plugin(name, "--dir", tmp_path / "out")
    assert res.exit_code == 2, res.output
    assert "Invalid value for NAME" in res.output and message in res.output, res.output
    assert not (tmp_path / "out").exists()


def test_writes_the_package_and_prints_three_next_steps(tmp_path):
    res = new_plugin("my-rooms", "--dir", tmp_path / "plug")
    assert res.exit_code == 0, res.output
    files = sorted(
        str(p.relative_to(tmp_path / "plug")) for p in (tmp_path / "plug").rglob("*") if p.is_file()
    )
    pkg = "src/fastai_sparse_my_rooms/"
    assert files == sorted(
        ["README.md", "pyproject.toml", "tests/test_plugin.py"]
        + [
            pkg + m
            for m in ("__init__.py", "dataset.py", "fixture.py", "prepare.py", "reader.py", "tasks.py")
        ]
    )
    pyproject = (tmp_path / "plug" / "pyproject.toml").read_text()
    assert '[project.entry-points.fastai_sparse]\nmy_rooms = "fastai_sparse_my_rooms"' in pyproject
    assert 'name = "fastai-sparse-my-rooms"' in pyproject and '"fastai-sparse>=0.1"' in pyproject
    assert not any("__" in line for f in files for line in (tmp_path / "plug" / f).read_text().splitlines()
                   if "__PKG__" in line or "__TASK__" in line or "__DATASET__" in line)  # fmt: skip
    steps = [line.strip() for line in res.output.splitlines() if line.strip()[:2] in ("1.", "2.", "3.")]
    assert len(steps) == 3
    assert steps[0].startswith(f"1. pip install -e {tmp_path / 'plug'}")
    assert "python -m pytest" in steps[1] and "fastai-sparse train my-rooms-seg --root" in steps[2]


def test_refuses_a_non_empty_folder_without_overwrite(tmp_path):
    folder = tmp_path / "plug"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    res = new_plugin("my-rooms", "--dir", folder)
    assert res.exit_code == 1
    assert (
        f"Error: {folder}: the folder exists and is not empty; choose another --dir, or pass --overwrite"
        in res.output
    )
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    with pytest.raises(OutputExistsError, match="is a file, not a folder"):
        write_plugin("my-rooms", folder / "notes.txt")


def test_overwrite_replaces_the_scaffold_files_and_keeps_the_rest(tmp_path):
    folder = tmp_path / "plug"
    write_plugin("my-rooms", folder)
    reader = folder / "src" / "fastai_sparse_my_rooms" / "reader.py"
    reader.write_text("edited")
    (folder / "notes.txt").write_text("mine")
    res = new_plugin("my-rooms", "--dir", folder, "--overwrite")
    assert res.exit_code == 0, res.output
    assert "def read_scene(" in reader.read_text()
    assert (folder / "notes.txt").read_text() == "mine"


def test_an_empty_folder_is_used(tmp_path):
    (tmp_path / "plug").mkdir()
    assert len(write_plugin("rooms", tmp_path / "plug").files) == 9
    with pytest.raises(OptionError):
        write_plugin("Rooms", tmp_path / "other")


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scaffold") / "fastai-sparse-scaffolded"
    write_plugin("scaffolded", folder)
    return folder


def test_the_generated_code_is_lint_clean(scaffolded):
    if not RUFF.exists():
        pytest.skip(f"ruff not found next to the interpreter ({RUFF})")
    # the project's rules, with imports grouped as in the plugin's own repository: core third-party
    config = ["--config", str(ROOT / "pyproject.toml")]
    config += ["--config", "lint.isort.known-first-party = ['fastai_sparse_scaffolded']"]
    config += ["--config", "lint.isort.known-third-party = ['fastai_sparse']"]
    for cmd in (["check", *config, "--no-cache"], ["format", "--check", *config, "--no-cache"]):
        proc = subprocess.run([str(RUFF), *cmd, str(scaffolded)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_generated_code_uses_only_the_public_api(scaffolded):
    for path in scaffolded.rglob("*.py"):
        assert private_references(path.read_text()) == [], path


def test_help_loads_no_heavy_module():
    code = (
        "import sys\nfrom fastai_sparse.cli import main\n"
        "try:\n    main(['new-plugin', '--help'], prog_name='fastai-sparse')\nexcept SystemExit:\n    pass\n"
        "print('HEAVY:' + ','.join(m for m in ('torch', 'fastai', 'numpy', 'fastai_sparse.registry') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Write a new plugin package NAME" in proc.stdout
    assert proc.stdout.rsplit("HEAVY:", 1)[1].strip() == ""


@pytest.mark.slow
def test_the_generated_plugin_installs_conforms_trains_and_predicts(tmp_path):
    """As its author would: new-plugin, pip install, its own tests, check_plugin, prepare, train one
    epoch, predict a scene file."""
    res = new_plugin("my-rooms", "--dir", tmp_path / "plug")
    assert res.exit_code == 0, res.output
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    proc = subprocess.run(
        [*pip, "--no-index", "--target", str(target), str(tmp_path / "plug")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}

    def run(*args, cwd=tmp_path):
        proc = subprocess.run(
            [sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=1200
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def cli(*args):
        return run("-W", "ignore", "-c", "from fastai_sparse.cli import run; run()", *map(str, args))

    # its own test file, unchanged, as its author runs it
    out = run("-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=tmp_path / "plug")
    assert "5 passed" in out, out
    out = run(
        "-c",
        "from fastai_sparse.testing import check_plugin; print(sorted(check_plugin('my_rooms')['tasks']))",
    )
    assert "['my-rooms-seg']" in out
    assert "my-rooms-seg" in cli("tasks", "my-rooms*")

    root = Path(run("-c", f"from fastai_sparse_my_rooms.fixture import write_fixture; print(write_fixture({str(tmp_path / 'data')!r}))").strip())  # fmt: skip
    assert '"prepared": 6' in cli("prepare", "my-rooms-seg", "--root", root, "--jobs", "1", "--quiet")
    cli(
        "train",
        "my-rooms-seg",
        "--root",
        root,
        "--epochs",
        "1",
        "--bs",
        "2",
        "--out",
        tmp_path / "run",
        "--quiet",
    )
    scene = root / "scenes" / "valid" / "scene00.txt"
    cli(
        "predict", "my-rooms-seg", "--model", tmp_path / "run" / "model", scene, "-o", tmp_path / "labels.txt"
    )
    labels = (tmp_path / "labels.txt").read_text().split()
    assert len(labels) == len(scene.read_text().splitlines()) and set(labels) <= {"0", "1", "2"}
