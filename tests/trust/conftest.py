"""Fixtures of the trust tests: plugin sets for the CLI, a CLI runner that keeps stderr apart."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from fastai_sparse import cli as cli_mod
from fastai_sparse import plugins, registry
from fastai_sparse.plugins import discover
from fastai_sparse.registry import Registry


@pytest.fixture
def use_plugins(monkeypatch, fresh_registry):
    """Make the default registry (and the CLI's commands) hold core's built-in plugin plus the
    given test plugins; plugin commands added here are removed afterwards."""
    before = dict(cli_mod.main.commands)

    def install(*mods):
        infos = discover(set(), extra=[(m.__name__, m) for m in mods])
        monkeypatch.setattr(plugins, "discovered", lambda: infos)
        monkeypatch.setattr(registry, "_default", Registry.from_plugins(infos, warn=False))
        monkeypatch.setattr(cli_mod.main, "_plugins_added", False)
        return infos

    yield install
    cli_mod.main.commands.clear()
    cli_mod.main.commands.update(before)


def invoke(*args, env=None):
    """Run ``fastai-sparse ARGS`` in this process; the result has ``stdout``, ``stderr``, ``exit_code``."""
    return CliRunner().invoke(cli_mod.main, [str(a) for a in args], env=env, catch_exceptions=False)
