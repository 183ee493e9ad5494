"""Build throw-away plugin modules for tests."""

from __future__ import annotations

import types
from types import SimpleNamespace

from fastai_sparse import Factory, Task, hookimpl


def make_plugin(name: str, **hooks) -> types.ModuleType:
    """A module object with the given functions marked as hook implementations."""
    mod = types.ModuleType(name)
    for hook, func in hooks.items():
        func.__name__ = hook
        setattr(mod, hook, hookimpl(func))
    return mod


def seg_target(classes=("a", "b")):
    return SimpleNamespace(
        name="segmentation", per="point", classes=list(classes), num_outputs=len(classes), metrics=()
    )


def simple_task(name: str, **kw) -> Task:
    return Task(name=name, target=seg_target(), dataset=lambda split="train", root=None: [], **kw)


def tasks_plugin(plugin_name: str, *task_names: str, datasets=()):
    def register_tasks(register):
        for n in task_names:
            register(simple_task(n))

    hooks = {"register_tasks": register_tasks}
    if datasets:

        def register_datasets(register):
            for d in datasets:
                register(Factory(d, "builtins:list"))

        hooks["register_datasets"] = register_datasets
    return make_plugin(plugin_name, **hooks)
