"""Registry behaviour: lookups, wildcards, suggestions, duplicates, isolation of broken plugins."""

from __future__ import annotations

import warnings

import pytest

from fastai_sparse import Factory
from fastai_sparse.errors import DuplicateNameError, PluginError, UnknownNameError
from fastai_sparse.plugins import PluginLoadWarning, discover, selected_names
from fastai_sparse.registry import Registry, resolve

from .plugin_factory import make_plugin, simple_task, tasks_plugin


def registry(*plugins, warn=False):
    return Registry.from_plugins(discover(set(), extra=[(p.__name__, p) for p in plugins]), warn=warn)


def info(reg, name):
    return next(i for i in reg.plugins if i.name == name)


def external(reg, kind="task"):
    """Names registered by the test plugins (not core's built-in plugin)."""
    return [n for n in reg.list(kind) if reg.owner(kind, n) != "builtin"]


def test_tasks_are_found_and_listed_with_wildcards():
    reg = registry(tasks_plugin("alpha", "alpha-seg", "alpha-cls", "beta-seg"))
    assert reg.list("task", "alpha-*") == ["alpha-cls", "alpha-seg"]
    assert [n for n in reg.list("task", "*-seg") if reg.owner("task", n) == "alpha"] == [
        "alpha-seg",
        "beta-seg",
    ]
    assert reg.get("task", "beta-seg").name == "beta-seg"
    assert reg.owner("task", "beta-seg") == "alpha"
    assert info(reg, "alpha").registered == {"task": ["alpha-seg", "alpha-cls", "beta-seg"]}


def test_unknown_name_lists_close_matches():
    reg = registry(tasks_plugin("alpha", "scannet-seg", "scannet-det", "shapenet-part"))
    with pytest.raises(UnknownNameError) as exc:
        reg.get("task", "scanet-seg")
    assert exc.value.suggestions[0] == "scannet-seg"
    assert "did you mean 'scannet-seg'" in str(exc.value)
    assert isinstance(exc.value, KeyError)  # dict-like lookups can catch it as KeyError


def test_unknown_name_shows_the_import_error_of_a_broken_plugin():
    broken = make_plugin("broken")

    def register_tasks(register):
        raise ImportError("No module named 'open3d'")

    broken = make_plugin("broken", register_tasks=register_tasks)
    reg = registry(tasks_plugin("ok", "ok-seg"), broken)
    with pytest.raises(UnknownNameError) as exc:
        reg.get("task", "broken-seg")
    assert "plugin 'broken' failed to load" in str(exc.value)
    assert "No module named 'open3d'" in str(exc.value)


def test_duplicate_names_raise_naming_both_plugins():
    reg = registry(tasks_plugin("first", "same-task"), tasks_plugin("second", "same-task", "other-task"))
    assert reg.owner("task", "same-task") == "first"
    second = info(reg, "second")
    assert not second.ok
    assert "'same-task' is registered twice: by plugin 'first' and by plugin 'second'" in second.error
    # the second plugin is rolled back as a whole: its other task is gone too
    assert external(reg) == ["same-task"]
    direct = Registry()
    direct.add("task", simple_task("x-task"), "p1")
    with pytest.raises(DuplicateNameError, match="by plugin 'p1' and by plugin 'p2'"):
        direct.add("task", simple_task("x-task"), "p2")


def test_a_plugin_that_fails_to_import_is_isolated_with_one_warning():
    infos = discover(
        set(),
        extra=[
            ("ghost", "no_such_module_for_fastai_sparse_tests"),
            ("good", tasks_plugin("good", "good-task")),
        ],
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg = Registry.from_plugins(infos)
    ghost = info(reg, "ghost")
    assert "ModuleNotFoundError" in ghost.error and "no_such_module_for_fastai_sparse_tests" in ghost.error
    assert external(reg) == ["good-task"]
    msgs = [str(w.message) for w in caught if issubclass(w.category, PluginLoadWarning)]
    assert len([m for m in msgs if "'ghost'" in m]) == 1


def test_a_plugin_failing_mid_registration_is_rolled_back():
    def register_datasets(register):
        register(Factory("half-data", "builtins:list"))

    def register_tasks(register):
        register(simple_task("half-task"))
        raise RuntimeError("boom while registering")

    reg = registry(make_plugin("half", register_datasets=register_datasets, register_tasks=register_tasks))
    half = info(reg, "half")
    assert "RuntimeError: boom while registering" in half.error
    assert reg.list("task", "half*") == [] and reg.list("dataset", "half*") == []
    assert half.registered == {}


def test_misspelt_hook_is_reported_not_ignored():
    reg = registry(make_plugin("typo", register_task=lambda register: None))
    assert (
        "'register_task', which is not a fastai-sparse hook; did you mean 'register_tasks'?"
        in info(reg, "typo").error
    )


def test_hook_with_wrong_argument_name_is_reported():
    reg = registry(make_plugin("badargs", register_tasks=lambda reg_fn: None))
    assert not info(reg, "badargs").ok
    assert "invalid hook implementation" in info(reg, "badargs").error


@pytest.mark.parametrize("bad", ["Has-Caps", "under_score", "", "trailing-", "spa ce"])
def test_invalid_names_are_rejected(bad):
    reg = registry(tasks_plugin("namer", bad))
    assert "invalid task name" in info(reg, "namer").error


def test_wrong_object_kind_is_rejected():
    reg = registry(make_plugin("wrong", register_models=lambda register: register(lambda: None)))
    assert "register_models expects Factory" in info(reg, "wrong").error


def test_factory_resolves_module_attr_strings_lazily():
    f = Factory("os-join", "os.path:join", description="join")
    assert f("a", "b") == "a/b"
    with pytest.raises(PluginError, match="has no attribute"):
        resolve("os.path:nope")
    with pytest.raises(PluginError, match=r"expected 'package\.module:attribute'"):
        resolve("os.path.join")
    assert repr(f) == "Factory('os-join', 'os.path:join')"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("", None),
        ("  ", None),
        ("none", set()),
        ("NONE", set()),
        ("scannet", {"scannet"}),
        ("scannet, shapenet", {"scannet", "shapenet"}),
    ],
)
def test_env_var_selection(value, expected):
    assert selected_names(value) == expected


def test_kinds_are_validated():
    reg = Registry()
    with pytest.raises(ValueError, match="unknown registry kind"):
        reg.list("widgets")


def test_every_kind_registers_through_its_hook():
    class FakeBackend:
        name = "fake-backend"

        def available(self):
            return True

    class FakeTarget:
        name = "fake-target"

    def register_models(register):
        register(Factory("fake-net", "builtins:dict", depth=3))

    def register_heads(register):
        register(Factory("fake-head", "builtins:dict"))

    def register_metrics(register):
        register(Factory("fake-metric", "builtins:dict"))

    def register_backends(register):
        register(FakeBackend())

    def register_target_types(register):
        register(FakeTarget)

    def register_datasets(register):
        register(Factory("fake-data", "builtins:list"))

    reg = registry(
        make_plugin(
            "kinds",
            register_models=register_models,
            register_heads=register_heads,
            register_metrics=register_metrics,
            register_backends=register_backends,
            register_target_types=register_target_types,
            register_datasets=register_datasets,
        )
    )
    assert info(reg, "kinds").ok, info(reg, "kinds").error
    assert reg.get("model", "fake-net")(width=2) == {"depth": 3, "width": 2}
    assert reg.get("head", "fake-head").name == "fake-head"
    assert reg.get("metric", "fake-metric").name == "fake-metric"
    assert reg.get("backend", "fake-backend").available()
    assert reg.get("target-type", "fake-target") is FakeTarget
    assert reg.get("dataset", "fake-data")() == []
    assert set(info(reg, "kinds").registered) == {
        "model",
        "head",
        "metric",
        "backend",
        "target-type",
        "dataset",
    }
