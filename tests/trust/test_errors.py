"""One-line CLI errors: errors raised on purpose and file-system errors end the command with
``Error: ...`` and exit code 1, without a traceback, in core's commands and in plugin commands
alike; ``--traceback`` and ``FASTAI_SPARSE_DEBUG`` bring the stack back; a bug keeps its
traceback and says where to report it; Ctrl-C ends with exit code 130."""

from __future__ import annotations

import sys
import types

import click
import pytest

from fastai_sparse.cli import BUG_REPORT_URL, error_line, plural
from fastai_sparse.errors import DataFormatError, InputFileError
from fastai_sparse.files import check_input_file

from .conftest import invoke


def _commands_plugin(raise_what):
    """A plugin module (real module, so its frames name it) with a command raising ``raise_what()``."""
    mod = types.ModuleType("boomplugin")
    mod.__dict__.update(click=click, raise_what=raise_what)
    exec(
        "from fastai_sparse import hookimpl\n"
        "@hookimpl\n"
        "def register_commands(cli):\n"
        "    @cli.command(name='boom')\n"
        "    def boom():\n"
        "        '''Fail on purpose.'''\n"
        "        raise raise_what()\n",
        mod.__dict__,
    )
    sys.modules["boomplugin"] = mod
    return mod


@pytest.mark.parametrize(
    "exc, line",
    [
        (
            lambda: DataFormatError("3 values, expected 6", path="a.ply", field="vertex"),
            "a.ply: field 'vertex'",
        ),
        (lambda: FileNotFoundError(2, "No such file or directory", "/x/y.ply"), "/x/y.ply: no such file"),
        (
            lambda: PermissionError(13, "Permission denied", "/root/o.ply"),
            "/root/o.ply: permission denied; check",
        ),
        (lambda: IsADirectoryError(21, "Is a directory", "runs"), "runs: is a directory; pass a file"),
        (lambda: OSError(28, "No space left on device", "big.ply"), "big.ply: no space left on device; free"),
    ],
)
def test_plugin_command_errors_are_one_line(use_plugins, exc, line):
    use_plugins(_commands_plugin(exc))
    res = invoke("boom")
    assert res.exit_code == 1
    assert res.stderr.startswith("Error: " + line), res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.output


def test_traceback_flag_anywhere_and_debug_variable_let_the_exception_through(use_plugins):
    use_plugins(_commands_plugin(lambda: DataFormatError("bad", path="a.ply")))
    for args, env in [
        (["--traceback", "boom"], None),
        (["boom", "--traceback"], None),
        (["boom"], {"FASTAI_SPARSE_DEBUG": "1"}),
    ]:
        with pytest.raises(DataFormatError, match=r"a\.ply: bad"):
            invoke(*args, env=env)
    assert invoke("boom", env={"FASTAI_SPARSE_DEBUG": "0"}).exit_code == 1


def test_a_bug_shows_its_traceback_and_where_to_report_it(use_plugins):
    use_plugins(_commands_plugin(lambda: ZeroDivisionError("division by zero")))
    res = invoke("boom")
    assert res.exit_code == 1
    assert "Traceback (most recent call last)" in res.stderr and "ZeroDivisionError" in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("This is a bug in the plugin 'boomplugin' (ZeroDivisionError)"), last


def test_a_bug_in_core_names_the_issue_tracker(monkeypatch):
    from fastai_sparse import cli as cli_mod

    def broken_registry():
        raise RuntimeError("registry exploded")

    monkeypatch.setattr(cli_mod, "_registry", broken_registry)
    res = invoke("tasks")
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines()[-1].startswith("This is a bug in fastai-sparse (RuntimeError)")
    assert BUG_REPORT_URL in res.stderr


def test_ctrl_c_ends_with_130_and_a_short_message(use_plugins):
    use_plugins(_commands_plugin(KeyboardInterrupt))
    res = invoke("boom")
    assert res.exit_code == 130
    assert res.stderr.strip() == "Interrupted: files being written were discarded; finished ones are kept."


def test_error_line_of_input_checks(tmp_path):
    with pytest.raises(InputFileError) as e:
        check_input_file(tmp_path)
    assert error_line(e.value) == f"{tmp_path}: is a folder, not a file; pass the input file itself"


def test_plural():
    assert (
        plural(1, "epoch") == "1 epoch"
        and plural(2, "epoch") == "2 epochs"
        and plural(0, "thread") == "0 threads"
    )
    assert plural(1, "class", "classes") == "1 class" and plural(3, "class", "classes") == "3 classes"
