"""The registry: every task, dataset, model, head, metric, target type and backend by name.

Lookups load the plugins once, lazily, on first use::

    >>> from fastai_sparse import get_task, list_tasks
    >>> list_tasks("synthetic-*")          # doctest: +SKIP
    ['synthetic-parts', 'synthetic-rooms-seg', ...]

Names are lowercase words joined by dashes. ``get_*`` of an unknown name raises
:class:`~fastai_sparse.errors.UnknownNameError` listing the closest names and any plugin that
failed to load (its original error included, so a broken import is not hidden behind "not
found"). ``list_*`` take shell-style wildcards.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from . import hookspecs, plugins
from .errors import DuplicateNameError, PluginError, UnknownNameError

__all__ = [
    "KINDS",
    "Factory",
    "Registry",
    "default_registry",
    "get_backend",
    "get_dataset",
    "get_head",
    "get_metric",
    "get_model",
    "get_target_type",
    "get_task",
    "list_backends",
    "list_datasets",
    "list_heads",
    "list_metrics",
    "list_models",
    "list_target_types",
    "list_tasks",
    "plugin_infos",
    "reload_plugins",
    "resolve",
]

KINDS = tuple(hookspecs.HOOK_KINDS.values())
_NAME = re.compile(r"^[a-z0-9]+(?:[-.][a-z0-9]+)*$")


def resolve(target: Any) -> Any:
    """Resolve a ``"package.module:attr"`` string to the object; return anything else as is."""
    if not isinstance(target, str):
        return target
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr:
        raise PluginError(f"cannot resolve {target!r}: expected 'package.module:attribute'")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginError(f"cannot resolve {target!r}: {module!r} has no attribute {attr!r}") from None
    return obj


class Factory:
    """A named factory: a callable (or ``"module:attr"`` string, imported on first use) plus
    default keyword arguments.

    >>> f = Factory("unet-m16", "fastai_sparse.models:UNet", m=16)
    >>> f.name, f.defaults
    ('unet-m16', {'m': 16})

    ``f(**kwargs)`` calls the target with ``{**defaults, **kwargs}``.
    """

    def __init__(self, name: str, target: Callable | str, *, description: str = "", **defaults: Any):
        self.name, self.target, self.description, self.defaults = name, target, description, defaults

    @property
    def func(self) -> Callable:
        return resolve(self.target)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **{**self.defaults, **kwargs})

    def __repr__(self) -> str:
        target = (
            self.target if isinstance(self.target, str) else getattr(self.target, "__qualname__", self.target)
        )
        kw = "".join(f", {k}={v!r}" for k, v in self.defaults.items())
        return f"Factory({self.name!r}, {target!r}{kw})"


def _callable_name(func: Any) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


def _takes_one_argument(func: Callable, defaults: dict[str, Any]) -> bool:
    """Whether ``func(x, **defaults)`` binds (True when the signature cannot be read)."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return True
    try:
        sig.bind(None, **defaults)
    except TypeError:
        return False
    return True


def _check_metric_factory(obj: Factory) -> None:
    """A metric factory is called as ``factory(target_type)``: a function of ``(pred, targ)``
    registered in its place would fail only when a task is trained."""
    if isinstance(obj.target, str) or not callable(obj.target):
        return  # "module:attr" strings are resolved (and checked by the conformance kit) later
    if not _takes_one_argument(obj.target, obj.defaults):
        func = _callable_name(obj.target)
        try:
            params = f"({', '.join(inspect.signature(obj.target).parameters)})"
        except (TypeError, ValueError):  # pragma: no cover - _takes_one_argument said readable
            params = "(...)"
        raise PluginError(
            f"metric {obj.name!r}: its factory {func}{params} cannot be called as factory(target_type); "
            "a metric factory takes the task's target type and returns a metric. For a plain function "
            f"of (pred, targ) register Factory({obj.name!r}, fastai_sparse.metrics.function_metric({func}))"
        )


_TASK_CALLABLES = {
    "prepare": "prepare(root, out=None, jobs=2, skip_bad=False, ...)",
    "fixture": "fixture(directory) -> the dataset root",
    "read_input": "read_input(path) -> PointCloud | Mesh",
    "loss": "loss(pred, y) -> scalar tensor",
}


def _check_task(task: Any) -> None:
    """Cheap checks of a Task's fields (nothing is imported or built)."""
    where = f"task {task.name!r}"
    for attr, shape in _TASK_CALLABLES.items():
        value = getattr(task, attr)
        if value is not None and not callable(value):
            raise PluginError(f"{where}: {attr} must be a function {shape}, got {type(value).__name__}")
    splits = task.splits
    if not (
        isinstance(splits, (tuple, list)) and len(splits) == 2 and all(isinstance(x, str) for x in splits)
    ):
        raise PluginError(f"{where}: splits must be two split names (training, validation), got {splits!r}")
    for attr in ("model", "head", "input_stage"):
        value = getattr(task, attr)
        if value is not None and not isinstance(value, str):
            raise PluginError(
                f"{where}: {attr} must be the name of a registered {'head' if attr == 'head' else 'model'}, "
                f"got {type(value).__name__}"
            )
    if task.metrics is not None:
        bad = [m for m in task.metrics if not isinstance(m, str)]
        if isinstance(task.metrics, str) or bad:
            raise PluginError(
                f"{where}: metrics must be a list of registered metric names, got {task.metrics!r}"
            )


def _check_kind(kind: str, obj: Any) -> str:
    """Validate an object registered under ``kind``; return its name."""
    if kind == "task":
        from .task import Task

        if not isinstance(obj, Task):
            raise PluginError(f"register_tasks expects Task objects, got {type(obj).__name__}")
    elif kind in ("dataset", "model", "head", "metric") and not isinstance(obj, Factory):
        raise PluginError(
            f"register_{kind}s expects Factory(name, target, ...) objects, got {type(obj).__name__}"
        )
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise PluginError(
            f"invalid {kind} name {name!r}: use lowercase letters, digits and dashes (e.g. 'my-task')"
        )
    if kind == "metric":
        _check_metric_factory(obj)
    elif kind == "task":
        _check_task(obj)
    elif isinstance(obj, Factory) and not isinstance(obj.target, str) and not callable(obj.target):
        raise PluginError(
            f"{kind} {name!r}: the factory's target must be a callable or a 'module:attr' string, "
            f"got {type(obj.target).__name__}"
        )
    return name


class Registry:
    """Objects of every kind by name, with the plugin that registered each.

    Usually used through :func:`default_registry` and the ``get_*`` / ``list_*`` functions;
    tests and the conformance kit build their own with :meth:`from_plugins`.
    """

    def __init__(self) -> None:
        self._items: dict[str, dict[str, tuple[Any, str]]] = {k: {} for k in KINDS}
        self.plugins: list[plugins.PluginInfo] = []

    # -- building ---------------------------------------------------------------------------
    def add(self, kind: str, obj: Any, plugin: str = "user") -> None:
        """Register ``obj`` under ``kind``; raises DuplicateNameError naming both plugins."""
        if kind not in self._items:
            raise ValueError(f"unknown registry kind {kind!r}; expected one of {', '.join(KINDS)}")
        name = _check_kind(kind, obj)
        if name in self._items[kind]:
            other = self._items[kind][name][1]
            raise DuplicateNameError(
                f"{kind} {name!r} is registered twice: by plugin {other!r} and by plugin {plugin!r}"
            )
        self._items[kind][name] = (obj, plugin)

    def _remove_plugin(self, plugin: str) -> None:
        for items in self._items.values():
            for name in [n for n, (_, p) in items.items() if p == plugin]:
                del items[name]

    @classmethod
    def from_plugins(cls, infos: Iterable[plugins.PluginInfo], warn: bool = True) -> Registry:
        """Run every registration hook of the given plugins, isolating failures per plugin."""
        reg = cls()
        pm = plugins.new_plugin_manager()
        reg.plugins = list(infos)
        usable = []
        for info in reg.plugins:
            if info.ok:
                try:
                    pm.register(info.obj, name=info.name)
                    usable.append(info)
                except Exception as exc:
                    info.error = f"invalid hook implementation: {plugins._format_error(exc)}"
        for info in usable:
            others = [i.obj for i in usable if i is not info]
            try:
                for hook, kind in hookspecs.HOOK_KINDS.items():
                    if hook not in info.hooks:
                        continue
                    added: list[str] = []

                    def register(
                        obj: Any, _kind: str = kind, _added: list = added, _plugin: str = info.name
                    ) -> Any:
                        reg.add(_kind, obj, _plugin)
                        _added.append(obj.name)
                        return obj

                    pm.subset_hook_caller(hook, remove_plugins=others)(register=register)
                    if added:
                        info.registered[kind] = added
            except Exception as exc:
                reg._remove_plugin(info.name)
                info.registered.clear()
                info.error = plugins._format_error(exc)
                info.error_detail = traceback.format_exc()
        if warn:
            for info in reg.plugins:
                if not info.ok:
                    plugins.warn_broken(info)
        return reg

    # -- queries ----------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> Any:
        try:
            obj, plugin = self._items[kind][name]
            if kind == "backend" and isinstance(obj, Factory):
                # a backend registered as a Factory is built on first use (importing its package)
                obj = obj()
                self._items[kind][name] = (obj, plugin)
            return obj
        except KeyError:
            if kind not in self._items:
                raise ValueError(
                    f"unknown registry kind {kind!r}; expected one of {', '.join(KINDS)}"
                ) from None
            broken = {i.name: i.error for i in self.plugins if not i.ok}
            raise UnknownNameError(kind, name, list(self._items[kind]), broken) from None

    def list(self, kind: str, pattern: str = "*") -> list[str]:
        if kind not in self._items:
            raise ValueError(f"unknown registry kind {kind!r}; expected one of {', '.join(KINDS)}")
        return sorted(n for n in self._items[kind] if fnmatch.fnmatchcase(n, pattern))

    def owner(self, kind: str, name: str) -> str:
        """The plugin that registered ``name``."""
        if name not in self._items.get(kind, {}):
            self.get(kind, name)  # raises the usual error
        return self._items[kind][name][1]

    def build_metric(self, name: str, target_type: Any) -> Any:
        """The metric ``name`` for a task's target type: ``factory(target_type)``, a plain function
        it returns wrapped as a :class:`~fastai_sparse.metrics.FunctionMetric` (see
        :func:`~fastai_sparse.metrics.as_metric`). Anything else raises PluginError naming the
        metric and the plugin that registered it."""
        from .metrics import as_metric

        factory = self.get("metric", name)
        try:
            return as_metric(factory(target_type), name)
        except PluginError as exc:
            raise PluginError(f"plugin {self.owner('metric', name)!r}: {exc}") from None

    def _add_backends_to_engine(self) -> None:
        """Add the backends plugins registered to the engine's table (see
        :mod:`fastai_sparse.engine.backends`), each built on first use. Imports the engine (and
        torch) only when a plugin other than the built-in one registered a backend."""
        names = [n for n, (_, p) in self._items["backend"].items() if p != plugins.BUILTIN_NAME]
        if not names:
            return
        from .engine.backends import add_backend

        for name in names:
            add_backend(name, lambda name=name: self.get("backend", name), replace=True)


_lock = threading.RLock()
_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry, built on first use from the selected plugins."""
    global _default
    with _lock:
        if _default is None:
            _default = Registry.from_plugins(plugins.discovered())
            _default._add_backends_to_engine()
        return _default


def reload_plugins() -> Registry:
    """Forget the loaded plugins and load them again (e.g. after changing the env var)."""
    global _default
    with _lock:
        if _default is not None:
            engine_backends = sys.modules.get("fastai_sparse.engine.backends")
            if engine_backends is not None:  # the engine is loaded: drop the old plugin backends
                for name in _default.list("backend"):
                    if _default.owner("backend", name) != plugins.BUILTIN_NAME:
                        engine_backends.remove_backend(name)
        _default = None
        plugins.forget()
        return default_registry()


def plugin_infos() -> list[plugins.PluginInfo]:
    """Every plugin considered by the default registry, broken ones included."""
    return list(default_registry().plugins)


def _pair(kind: str, doc: str):
    def get(name: str):
        return default_registry().get(kind, name)

    def list_(pattern: str = "*") -> list[str]:
        return default_registry().list(kind, pattern)

    get.__doc__ = f"The registered {doc} named ``name``; UnknownNameError with suggestions otherwise."
    list_.__doc__ = f"Sorted names of registered {doc}s matching the wildcard ``pattern``."
    return get, list_


get_task, list_tasks = _pair("task", "task")
get_dataset, list_datasets = _pair("dataset", "dataset factory")
get_model, list_models = _pair("model", "model factory")
get_head, list_heads = _pair("head", "head factory")
get_metric, list_metrics = _pair("metric", "metric factory")
get_backend, list_backends = _pair("backend", "sparse convolution backend")
get_target_type, list_target_types = _pair("target-type", "target type")
for _f, _n in [
    (get_task, "get_task"),
    (list_tasks, "list_tasks"),
    (get_dataset, "get_dataset"),
    (list_datasets, "list_datasets"),
    (get_model, "get_model"),
    (list_models, "list_models"),
    (get_head, "get_head"),
    (list_heads, "list_heads"),
    (get_metric, "get_metric"),
    (list_metrics, "list_metrics"),
    (get_backend, "get_backend"),
    (list_backends, "list_backends"),
    (get_target_type, "get_target_type"),
    (list_target_types, "list_target_types"),
]:
    _f.__name__ = _f.__qualname__ = _n
