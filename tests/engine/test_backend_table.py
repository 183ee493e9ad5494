"""The engine's backend table: built-ins, backends added by the registry from plugins, errors."""

from __future__ import annotations

import pytest

from fastai_sparse import Factory
from fastai_sparse.engine import SubMConv3d
from fastai_sparse.engine.backends import (
    TorchBackend,
    add_backend,
    backend_names,
    remove_backend,
    resolve_backend,
)
from fastai_sparse.errors import UnknownNameError
from fastai_sparse.plugins import discover
from fastai_sparse.registry import Registry

from ..core.plugin_factory import make_plugin


class PluginTorch(TorchBackend):
    """The torch backend under another name, as a plugin would register it."""

    name = "plugin-torch"
    built = 0

    def __init__(self):
        type(self).built += 1


def registry(*plugins):
    return Registry.from_plugins(discover(set(), extra=[(p.__name__, p) for p in plugins]), warn=False)


@pytest.fixture
def clean_table():
    yield
    for name in ("plugin-torch", "lazy-torch"):
        remove_backend(name)


def test_builtins_are_in_the_table_and_cannot_be_replaced():
    assert {"torch", "spconv", "scn"} <= set(backend_names())
    assert isinstance(resolve_backend("torch"), TorchBackend)
    with pytest.raises(ValueError, match="built in"):
        add_backend("torch", PluginTorch())


def test_unknown_name_lists_the_table_and_says_how_plugin_backends_arrive():
    with pytest.raises(UnknownNameError, match=r"unknown backend 'nope'.*torch.*plugins are loaded"):
        resolve_backend("nope")


def test_a_plugin_backend_reaches_the_engine_through_the_registry(clean_table):
    def register_backends(register):
        register(PluginTorch())

    reg = registry(make_plugin("bk", register_backends=register_backends))
    with pytest.raises(UnknownNameError):
        resolve_backend("plugin-torch")  # the engine never asks the registry
    reg._add_backends_to_engine()
    assert resolve_backend("plugin-torch") is reg.get("backend", "plugin-torch")
    assert SubMConv3d(2, 2, backend="plugin-torch").backend.name == "plugin-torch"
    # the built-in plugin's backends are not pushed again (they are the engine's own)
    assert "torch" in backend_names() and reg.owner("backend", "torch") == "builtin"


def test_a_backend_registered_as_factory_is_built_on_first_use_only(clean_table):
    class LazyTorch(PluginTorch):
        name = "lazy-torch"
        built = 0

    def register_backends(register):
        register(Factory("lazy-torch", LazyTorch))

    reg = registry(make_plugin("lazy", register_backends=register_backends))
    reg._add_backends_to_engine()
    assert LazyTorch.built == 0  # registering and adding to the table built nothing
    first = resolve_backend("lazy-torch")
    assert isinstance(first, LazyTorch) and LazyTorch.built == 1
    assert resolve_backend("lazy-torch") is first and reg.get("backend", "lazy-torch") is first
    assert LazyTorch.built == 1


def test_adding_a_taken_name_needs_replace(clean_table):
    add_backend("plugin-torch", PluginTorch())
    with pytest.raises(ValueError, match="replace=True"):
        add_backend("plugin-torch", PluginTorch())
    other = PluginTorch()
    add_backend("plugin-torch", other, replace=True)
    assert resolve_backend("plugin-torch") is other
    remove_backend("plugin-torch")
    assert "plugin-torch" not in backend_names()
