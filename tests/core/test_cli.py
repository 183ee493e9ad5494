"""The fastai-sparse command: listings in text and JSON, plugin commands, broken plugins."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from fastai_sparse import cli as cli_mod
from fastai_sparse import plugins, registry
from fastai_sparse.plugins import discover
from fastai_sparse.registry import Registry

from .plugin_factory import make_plugin, tasks_plugin


@pytest.fixture
def use_plugins(monkeypatch, fresh_registry):
    """Make the default registry hold core's built-in plugin plus the given test plugins."""

    def install(*mods):
        infos = discover(set(), extra=[(m.__name__, m) for m in mods])
        monkeypatch.setattr(plugins, "discovered", lambda: infos)
        monkeypatch.setattr(registry, "_default", Registry.from_plugins(infos, warn=False))
        return infos

    return install


def run(*args):
    # a fresh group each time, so plugin commands from one test don't leak into another
    result = CliRunner().invoke(cli_mod.main, list(args), catch_exceptions=False)
    return result


def test_tasks_text_and_json(use_plugins):
    use_plugins(tasks_plugin("alpha", "alpha-seg", "alpha-cls"))
    out = run("tasks", "alpha-*")
    assert out.exit_code == 0
    lines = out.output.splitlines()
    assert lines[0].split() == ["task", "plugin", "target", "description"]
    assert [line.split()[0] for line in lines[2:]] == ["alpha-cls", "alpha-seg"]
    rows = json.loads(run("tasks", "--json").output)
    alpha = {r["name"]: r for r in rows if r["plugin"] == "alpha"}
    assert set(alpha) == {"alpha-cls", "alpha-seg"}
    assert alpha["alpha-seg"]["target"] == "segmentation" and alpha["alpha-seg"]["head"] == "seg-linear"
    assert "no task matches" in run("tasks", "zzz*").output


def test_plugins_shows_versions_hooks_and_broken_ones(use_plugins):
    def register_tasks(register):
        raise ImportError("No module named 'open3d'")

    use_plugins(tasks_plugin("alpha", "alpha-seg"), make_plugin("broken", register_tasks=register_tasks))
    text = run("plugins").output
    assert "alpha" in text and "tasks" in text and "1 task" in text and "1 tasks" not in text
    assert "BROKEN" in text
    assert "plugin 'broken' (broken) is broken: ImportError: No module named 'open3d'" in text
    rows = {r["name"]: r for r in json.loads(run("plugins", "--json").output)}
    assert rows["alpha"]["ok"] is True and rows["alpha"]["registered"] == {"task": ["alpha-seg"]}
    assert rows["broken"]["ok"] is False and "open3d" in rows["broken"]["error"]
    assert rows["builtin"]["distribution"] == "fastai-sparse"
    reqs = run("plugins", "--requirements").output.splitlines()
    assert any(line.startswith("fastai-sparse==") for line in reqs)


def test_plugins_add_subcommands_and_a_failing_one_is_isolated(use_plugins, monkeypatch):
    def register_commands(cli):
        @cli.command(name="hello")
        def hello():
            """Say hello."""
            click.echo("hello from a plugin")

    def bad_commands(cli):
        @cli.command(name="half")
        def half():
            pass

        raise RuntimeError("cannot build commands")

    use_plugins(
        make_plugin("greeter", register_commands=register_commands),
        make_plugin("badcli", register_commands=bad_commands),
    )
    monkeypatch.setattr(cli_mod.main, "_plugins_added", False)
    with pytest.warns(plugins.PluginLoadWarning, match="badcli"):
        help_text = run("--help").output
    assert "hello" in help_text and "half" not in help_text
    assert run("hello").output.strip() == "hello from a plugin"
    for name in ("hello", "half"):
        cli_mod.main.commands.pop(name, None)


@pytest.mark.parametrize(
    "command", ["tasks", "plugins", "demo", "train", "prepare", "predict", "models", "list"]
)
def test_every_command_has_help(command):
    out = run(command, "--help")
    assert out.exit_code == 0, out.output
    assert "Usage: main " + command in out.output or f"Usage: main {command}" in out.output


def test_list_kinds_json(use_plugins):
    use_plugins(tasks_plugin("alpha", "alpha-seg", datasets=("alpha-data",)))
    rows = json.loads(run("list", "datasets", "alpha*", "--json").output)
    assert rows == [{"name": "alpha-data", "plugin": "alpha", "description": ""}]
