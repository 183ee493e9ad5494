"""A plugin's subcommand built from ``fastai_sparse.clitypes`` (the public building blocks) is
as safe as core's ``predict``: its inputs are checked before any work, its outputs never
replace an input or each other, an existing output needs ``--overwrite``, and its errors are
one line. The plugin is the example of docs/errors-and-safety.md, run as written."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from .conftest import invoke

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors-and-safety.md"


def _upper_plugin() -> types.ModuleType:
    """The example plugin of docs/errors-and-safety.md ("Safe commands in a plugin"), run as
    written: ``fastai-sparse upper INPUTS... [-o PATH] [--overwrite]`` writes each text input
    upper-cased to ``INPUT.upper.txt`` (or ``-o``)."""
    text = DOC.read_text().split("### Safe commands in a plugin", 1)[1]
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    mod = types.ModuleType("fs_test_upper_plugin")
    exec(compile(code, f"{DOC}:upper", "exec"), mod.__dict__)
    return mod


@pytest.fixture
def upper(use_plugins):
    use_plugins(_upper_plugin())


def test_a_plugin_command_works_and_keeps_the_whole_stem(upper, tmp_path):
    (tmp_path / "a.v1.txt").write_text("one\n")
    (tmp_path / "a.v2.txt").write_text("two\n")
    r = invoke("upper", tmp_path / "a.v1.txt", tmp_path / "a.v2.txt")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "a.v1.upper.txt").read_text() == "ONE\n"
    assert (tmp_path / "a.v2.upper.txt").read_text() == "TWO\n"


@pytest.mark.parametrize(
    "case, code, fragment",
    [
        ("fifo", 2, "pipe.txt: is a FIFO (named pipe), not a regular file"),
        ("empty", 2, "empty.txt: the input file is empty (0 bytes)"),
        ("folder", 2, "is a folder, not a file"),
        ("binary", 2, "data.txt"),
        ("output-is-input", 1, "notes.txt: the output would replace the input"),
        ("two-inputs-one-output", 1, "notes.txt"),
        ("existing-output", 1, "the output already exists; pass --overwrite"),
    ],
)
def test_a_plugin_command_refuses_what_predict_refuses(upper, tmp_path, case, code, fragment):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    other = tmp_path / "b" / "notes.txt"
    other.parent.mkdir()
    other.write_text("other\n")
    old = tmp_path / "old.txt"
    old.write_text("an earlier output\n")
    args = {
        "fifo": lambda: (os.mkfifo(tmp_path / "pipe.txt"), [tmp_path / "pipe.txt"])[1],
        "empty": lambda: ((tmp_path / "empty.txt").write_text(""), [tmp_path / "empty.txt"])[1],
        "folder": lambda: ((tmp_path / "dir.txt").mkdir(), [tmp_path / "dir.txt"])[1],
        "binary": lambda: ((tmp_path / "data.txt").write_bytes(b"\0\1\2" * 10), [tmp_path / "data.txt"])[1],
        "output-is-input": lambda: [notes, "-o", notes],
        "two-inputs-one-output": lambda: [notes, other, "-o", tmp_path / "out"],
        "existing-output": lambda: [notes, "-o", old],
    }[case]()
    r = invoke("upper", *args)
    assert r.exit_code == code, r.output
    assert fragment in r.stderr, r.stderr
    assert "Traceback" not in r.output
    assert len([ln for ln in r.stderr.splitlines() if ln.startswith("Error: ")]) == 1, r.stderr
    assert notes.read_text() == "mine\n" and other.read_text() == "other\n"
    assert old.read_text() == "an earlier output\n"
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.rglob(".*.tmp"))


def test_overwrite_replaces_an_earlier_output_but_never_an_input(upper, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    old = tmp_path / "old.txt"
    old.write_text("an earlier output\n")
    assert invoke("upper", notes, "-o", old, "--overwrite").exit_code == 0
    assert old.read_text() == "MINE\n"
    r = invoke("upper", notes, "-o", notes, "--overwrite")
    assert r.exit_code == 1 and "would replace the input" in r.stderr
    assert notes.read_text() == "mine\n"


def test_clitypes_loads_neither_torch_nor_fastai():
    code = (
        "import sys, fastai_sparse.clitypes as c; "
        "c.InputFile(), c.WeightsFile(), c.ModelSource(), c.InputDir(), c.PositiveFloat(); "
        "print(sorted(m for m in ('torch', 'fastai') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_plugins_build_their_commands_from_clitypes_not_from_the_cli_module():
    """The CLI module is not public: the plugins' command modules import the building blocks
    from ``fastai_sparse.clitypes``."""
    import fastai_sparse

    assert "clitypes" in fastai_sparse._PUBLIC_MODULES and "cli" not in fastai_sparse._PUBLIC_MODULES
    from fastai_sparse import cli, clitypes

    params = {p.name: p for p in cli.main.commands["predict"].params}  # core uses the same types
    assert isinstance(params["inputs"].type, clitypes.InputFile)
    assert isinstance(params["model_path"].type, clitypes.ModelSource)
    assert params["overwrite"].is_flag and params["threads"].type.min == 1
