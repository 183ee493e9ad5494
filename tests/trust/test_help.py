"""Help text on every option of every command (core's and the installed plugins'), the same
metavar for the same kind of value everywhere, and help that renders."""

from __future__ import annotations

import click
import pytest

from fastai_sparse import cli as cli_mod

from .conftest import invoke

PATH_METAVARS = {"FILE", "DIR", "PATH"}


def _walk(group: click.Group, ctx: click.Context, prefix: tuple[str, ...] = ()):
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _walk(cmd, click.Context(cmd, parent=ctx, info_name=name), (*prefix, name))


def _commands():
    cli_mod.main._add_plugin_commands()
    ctx = click.Context(cli_mod.main, info_name="fastai-sparse")
    return [(" ".join(path), cmd) for path, cmd in _walk(cli_mod.main, ctx)]


COMMANDS = _commands()
EVERY = [("fastai-sparse", cli_mod.main), *COMMANDS]  # the group's own options too


def test_the_tree_holds_core_and_plugin_commands():
    names = {n for n, _ in COMMANDS}
    assert {"demo", "train", "prepare", "predict", "tasks", "plugins", "list", "models"} <= names
    assert len(names) >= 8


@pytest.mark.parametrize("path, cmd", EVERY, ids=[n for n, _ in EVERY])
def test_every_option_has_help_and_a_consistent_metavar(path, cmd):
    assert (cmd.help or "").strip(), f"{path}: the command has no help text"
    ctx = click.Context(cmd, info_name=path)
    for param in cmd.params:
        if isinstance(param, click.Argument):
            if param.name in ("task_name", "task"):
                assert param.make_metavar(ctx) == "TASK", (
                    f"{path}: {param.name} shows {param.make_metavar(ctx)}"
                )
            continue
        if param.hidden:
            continue
        label = "/".join(param.opts)
        assert (param.help or "").strip(), f"{path} {label}: no help text"
        assert param.help.strip()[0].isupper(), (
            f"{path} {label}: help should start with a capital: {param.help!r}"
        )
        if param.is_flag:
            continue
        metavar = param.make_metavar(ctx)
        if isinstance(param.type, (click.Path, cli_mod.InputFile, cli_mod.InputDir)):
            assert metavar in PATH_METAVARS, f"{path} {label}: path metavar {metavar}"
        if isinstance(param.type, click.types.IntParamType):
            assert metavar == "N", f"{path} {label}: integer metavar {metavar}"
        if param.name in ("task_name", "task"):
            assert metavar == "TASK", f"{path} {label}: task metavar {metavar}"


@pytest.mark.parametrize("path", [n for n, _ in COMMANDS])
def test_help_renders(path):
    res = invoke(*path.split(), "--help")
    assert res.exit_code == 0, res.output
    assert "Usage: " in res.output and "TASK_NAME" not in res.output
