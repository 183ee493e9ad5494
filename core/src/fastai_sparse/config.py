"""Configurations: a task and its training settings as one JSON document, and back.

:func:`task_config` (``task.config()``) resolves everything a run depends on into plain JSON:
the dataset with every option its factory takes, each transform with its parameters, the
voxelizer, the model and the head with every keyword argument (the factory's defaults
included), the loss, the metrics, the optimizer and the schedule with their fastai defaults
filled in, the batch size, epochs, learning rate and seed, and the versions of core, the
plugins, torch and fastai. :func:`resolve_config` (``Task.from_config``) reads such a document
back, checking every key and every type, and rebuilds the task through the registry.

Rebuilding constructs only known objects: tasks, datasets, models, heads and metrics by their
registered names, and transforms and voxelizers by class, where the class must be a
:class:`~fastai_sparse.transforms.Transform` (or :class:`~fastai_sparse.voxelize.Voxelizer`)
subclass defined in core or in an installed fastai-sparse plugin. A config never names a
function to call or a module outside those packages. The code of a task (its dataset reader,
its target type and loss) always comes from the installed task: a config chooses among its
parameters, it does not replace it.

A component that a config leaves as the task has it is not rebuilt: the task's own object is
used, so a run started from a task and a run started from that task's config are the same run.
A component that cannot be written as parameters (a plain function used as a transform, a
transform whose constructor takes arguments it does not list in ``_repr_fields``) is written
as ``{"type": ..., "__python__": "<repr>"}``: the config still records it, and rebuilding uses
the task's object, but it cannot be changed from a config.

Overrides use dotted keys (:func:`apply_overrides`): ``lr=0.01``, ``model_kwargs.m=32``,
``train_transforms.2.sigma=0.05``, ``dataset.options.n=16``. Values are read as JSON when they
parse (numbers, ``true``, ``null``, lists, quoted strings), else as text. Changing a name
(``model``, ``head``, ``dataset.name``, ``optimizer.name``, ``schedule.name``, a transform's
``type``) resets what depends on it (the kwargs, the options, the parameters) to the new
object's defaults, unless the same command sets them too.

Why by hand: the checks are what matters here (every key known, every value of its declared
type, only registered objects constructed) and they follow this package's registry and its
transforms' ``_repr_fields``; a general config library (Hydra, OmegaConf, MMEngine's Config)
would add the "config-file indirection" and the arbitrary ``_target_`` construction this
project avoids.
"""

from __future__ import annotations

import collections.abc as cabc
import copy
import dataclasses
import difflib
import importlib
import inspect
import json
import numbers
import os
import sys
import types
import typing
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

from .errors import ConfigError, FastaiSparseError, UnknownNameError

__all__ = [
    "CONFIG_FORMAT",
    "OPTIMIZERS",
    "ConfigVersionWarning",
    "apply_overrides",
    "load_config",
    "optimizer_func",
    "parse_assignment",
    "resolve_config",
    "task_config",
    "versions",
]

CONFIG_FORMAT = "fastai-sparse-config/1"
#: The key that marks a component a config records but cannot rebuild.
OPAQUE = "__python__"
#: fastai optimizers a config may name (fastai's own functions, in ``fastai.optimizer``).
OPTIMIZERS = {
    "adam": "Adam",
    "sgd": "SGD",
    "radam": "RAdam",
    "rmsprop": "RMSProp",
    "lamb": "Lamb",
    "qhadam": "QHAdam",
    "ranger": "ranger",
}

#: Hyper-parameters at the top of a config: type and smallest allowed value (lr: > 0).
_HYPER = {"bs": (int, 1), "epochs": (int, 1), "lr": (float, None), "tta": (int, 0), "num_workers": (int, 0)}
_NOT_EXTRA = (*_HYPER, "optimizer", "schedule")
_TOP = (
    "format",
    "task",
    "target",
    "dataset",
    "train_transforms",
    "valid_transforms",
    "voxelizer",
    "model",
    "model_kwargs",
    "head",
    "head_kwargs",
    "input_stage",
    "loss",
    "metrics",
    "bs",
    "epochs",
    "lr",
    "tta",
    "num_workers",
    "defaults",
    "seed",
    "optimizer",
    "schedule",
    "precision",
    "loggers",
    "grad_accum",
    "versions",
)
#: A change of the key resets the keys that depend on it (see the module docstring).
_DEPENDENTS = {
    "model": "model_kwargs",
    "head": "head_kwargs",
    "dataset.name": "dataset.options",
}


#: Mappings an override may add keys to (the resolved config then checks them).
_OPEN_DICTS = ("dataset.options", "model_kwargs", "head_kwargs")
_SEQUENCES = (cabc.Sequence, cabc.MutableSequence, cabc.Iterable, cabc.Collection)


class ConfigVersionWarning(UserWarning):
    """A config was written by other versions of the packages a run depends on."""


# -- small helpers ---------------------------------------------------------------------------
def _where(source: Any) -> str:
    return f"{source}: " if source else ""


def _err(source: Any, key: str, msg: str) -> ConfigError:
    return ConfigError(f"{_where(source)}{key}: {msg}", key=key, source=source)


def _close(word: str, options: Sequence[str]) -> str:
    near = difflib.get_close_matches(word, list(options), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(repr(n) for n in near)}? " if near else ""
    return f"{hint}known: {', '.join(options) if options else 'none'}"


def _dump(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def versions() -> dict:
    """The versions a run depends on: Python, fastai-sparse, torch, fastai, numpy and every
    installed plugin distribution (read from the installed metadata; nothing is imported)."""
    from importlib import metadata

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    from . import __version__

    out = {
        "python": ".".join(map(str, sys.version_info[:3])),
        "fastai-sparse": __version__,
        "torch": version("torch"),
        "fastai": version("fastai"),
        "numpy": version("numpy"),
    }
    try:
        from .registry import default_registry

        plugins = {
            i.distribution: i.version
            for i in default_registry().plugins
            if i.distribution and i.distribution != "fastai-sparse"
        }
    except Exception:  # pragma: no cover - a registry problem is reported elsewhere
        plugins = {}
    out["plugins"] = dict(sorted(plugins.items()))
    return out


# -- values <-> JSON -----------------------------------------------------------------------------
class _Opaque(Exception):
    pass


def to_json(value: Any, key: str = "") -> Any:
    """``value`` as plain JSON (tuples and arrays become lists, numpy scalars Python numbers,
    paths strings, transforms ``{"type": ..., params}``); raises ``_Opaque`` for anything else."""
    import numpy as np

    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, np.ndarray):
        return to_json(value.tolist(), key)
    if isinstance(value, (list, tuple)):
        return [to_json(v, f"{key}.{i}") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {str(k): to_json(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, PurePath):
        return str(value)
    from .transforms import Transform

    if isinstance(value, Transform):
        entry = component_config(value, key)
        if OPAQUE in entry:
            raise _Opaque(key)
        return entry
    raise _Opaque(key)


def _json_or_opaque(value: Any, key: str) -> Any:
    try:
        return to_json(value, key)
    except _Opaque:
        return {OPAQUE: _short_repr(value)}


def _short_repr(value: Any) -> str:
    r = repr(value)
    return r if len(r) <= 200 else r[:197] + "..."


def from_json(value: Any) -> Any:
    """Python arguments from JSON values: lists become tuples (parameters such as ranges, axes
    and widths are tuples in this package), recursively; dicts stay dicts."""
    if isinstance(value, list):
        return tuple(from_json(v) for v in value)
    if isinstance(value, dict):
        return {k: from_json(v) for k, v in value.items()}
    return value


# -- type checks ---------------------------------------------------------------------------------
def _hints(fn: Callable) -> dict[str, Any]:
    target = fn.__init__ if isinstance(fn, type) else fn
    try:
        return typing.get_type_hints(target)
    except Exception:
        return {}


def _annotation_text(fn: Callable, name: str) -> str | None:
    try:
        ann = inspect.signature(fn).parameters[name].annotation
    except (KeyError, TypeError, ValueError):
        return None
    if ann is inspect.Parameter.empty:
        return None
    return ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _matches(v: Any, hint: Any) -> bool | None:
    """Whether the JSON value ``v`` fits the type ``hint``: True, False, or None (cannot tell)."""
    import numpy as np

    if hint is Any or hint is inspect.Parameter.empty:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        results = [_matches(v, a) for a in args]
        if any(r is True for r in results):
            return True
        return None if any(r is None for r in results) else False
    if origin is typing.Literal:
        return v in args
    if hint is type(None):
        return v is None
    if hint is bool:
        return isinstance(v, bool)
    if hint is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if hint in (float, numbers.Real, numbers.Number):
        return _is_number(v)
    if hint is str:
        return isinstance(v, str)
    if hint in (Path, PurePath, os.PathLike):
        return isinstance(v, str)
    if hint is np.ndarray:
        return isinstance(v, list)
    base = origin or hint
    if base in (list, tuple):
        if not isinstance(v, list):
            return False
        if base is tuple and args and args[-1] is not Ellipsis:
            if len(v) != len(args):
                return False
            results = [_matches(x, a) for x, a in zip(v, args)]
        else:
            results = [_matches(x, args[0]) for x in v] if args else []
        return not any(r is False for r in results)
    if base in _SEQUENCES:
        if isinstance(v, str):  # a str is a sequence of str: accepted where Python accepts it
            return not args or args[0] is str
        if not isinstance(v, list):
            return False
        results = [_matches(x, args[0]) for x in v] if args else []
        return not any(r is False for r in results)
    if base in (dict, cabc.Mapping, cabc.MutableMapping):
        return isinstance(v, dict)
    if base is cabc.Callable:
        return isinstance(v, dict) and "type" in v
    return None


def _wants_float(hint: Any) -> bool:
    if hint is float:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args == [float]
    return False


def _same_kind(v: Any, ref: Any) -> bool | None:
    if ref is None or (isinstance(ref, dict) and OPAQUE in ref):
        return None
    if isinstance(ref, bool):
        return isinstance(v, bool)
    if isinstance(ref, int):
        return isinstance(v, int) and not isinstance(v, bool)
    if isinstance(ref, float):
        return _is_number(v)
    if isinstance(ref, str):
        return isinstance(v, str)
    if isinstance(ref, list):
        return isinstance(v, list)
    if isinstance(ref, dict):
        return isinstance(v, dict)
    return None


_HINT_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _kind_name(ref: Any) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list"}.get(
        type(ref), "a mapping" if isinstance(ref, dict) else type(ref).__name__
    )


def check_value(
    v: Any, key: str, *, hint: Any = None, ref: Any = None, text: str | None = None, source: Any = None
) -> Any:
    """``v`` checked against the declared type ``hint`` (when it tells) or the type of the
    reference value ``ref``; an integer where a float is declared becomes a float."""
    if isinstance(v, dict) and OPAQUE in v:
        raise _err(source, key, "holds a Python object that a config cannot set")
    if isinstance(ref, dict) and OPAQUE in ref and v != ref:
        raise _err(
            source,
            key,
            f"is a Python object ({ref[OPAQUE]}) that a config cannot change; set it in Python",
        )
    ok = _matches(v, hint) if hint is not None else None
    if ok is None:
        ok = _same_kind(v, ref)
        expected = _kind_name(ref)
    else:
        expected = _HINT_NAMES.get(hint) or text or str(hint)
    if ok is False:
        raise _err(source, key, f"expected {expected}, got {_dump(v)}")
    wants_float = (hint is not None and _wants_float(hint)) or (hint is None and isinstance(ref, float))
    if wants_float and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    return v


# -- components (transforms, voxelizers) ---------------------------------------------------------
def _allowed_packages() -> set[str]:
    """Top-level packages whose classes a config may construct: core and the loaded plugins."""
    from .registry import default_registry

    allowed = {"fastai_sparse"}
    for info in default_registry().plugins:
        if info.ok and info.module:
            allowed.add(info.module.split(":")[0].split(".")[0])
    return allowed


def _namespace(base_cls: type) -> Any:
    from .transforms import Transform

    return importlib.import_module(
        "fastai_sparse.transforms" if issubclass(base_cls, Transform) else "fastai_sparse.voxelize"
    )


def _type_name(cls: type, base_cls: type) -> str:
    if getattr(_namespace(base_cls), cls.__name__, None) is cls:
        return cls.__name__
    return f"{cls.__module__}:{cls.__qualname__}"


def _constructor_params(cls: type) -> tuple[list[str], bool]:
    """Named parameters of ``cls(...)`` and whether it takes ``**kwargs``."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return [], True
    named = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return named, any(p.kind is p.VAR_KEYWORD for p in params)


def _fields(obj: Any) -> list[str] | None:
    """The constructor arguments that rebuild ``obj`` (read back as its attributes), or None
    when they are not all known: a transform lists them in ``_repr_fields``; another component
    (a voxelizer) keeps every constructor argument as an attribute of the same name."""
    cls = type(obj)
    named, _ = _constructor_params(cls)
    fields = list(getattr(cls, "_repr_fields", None) or ())
    if not fields and not hasattr(cls, "_repr_fields"):
        fields = named
    if not set(named) <= set(fields) or not all(hasattr(obj, f) for f in fields):
        return None
    return fields


def component_config(obj: Any, key: str, base_cls: type | None = None) -> dict:
    """``{"type": name, **params}`` for a transform or voxelizer, or ``{"type": ...,
    "__python__": repr}`` when it cannot be rebuilt from parameters (see the module docstring)."""
    from .transforms import Transform
    from .voxelize import Voxelizer

    if base_cls is None:
        base_cls = Voxelizer if isinstance(obj, Voxelizer) else Transform
    cls = type(obj)
    if isinstance(obj, type) or not isinstance(obj, base_cls):
        name = getattr(obj, "__qualname__", None) or cls.__qualname__
        module = getattr(obj, "__module__", None) or cls.__module__
        return {"type": f"{module}:{name}", OPAQUE: _short_repr(obj)}
    fields = _fields(obj)
    entry: dict[str, Any] = {"type": _type_name(cls, base_cls)}
    if fields is None:
        entry[OPAQUE] = _short_repr(obj)
        return entry
    try:
        for f in fields:
            entry[f] = to_json(getattr(obj, f), f"{key}.{f}")
    except _Opaque:
        return {"type": entry["type"], OPAQUE: _short_repr(obj)}
    return entry


def _resolve_class(name: Any, key: str, base_cls: type, source: Any) -> type:
    if not isinstance(name, str) or not name:
        raise _err(source, f"{key}.type", f"expected a class name, got {_dump(name)}")
    what = base_cls.__name__
    if ":" not in name:
        ns = _namespace(base_cls)
        try:
            obj = getattr(ns, name)
        except AttributeError:
            known = sorted(
                n
                for n in getattr(ns, "__all__", dir(ns))
                if isinstance(getattr(ns, n, None), type) and issubclass(getattr(ns, n), base_cls)
            )
            raise _err(source, f"{key}.type", f"no {what} named {name!r}; {_close(name, known)}") from None
    else:
        module, _, qual = name.partition(":")
        package = module.split(".")[0]
        allowed = _allowed_packages()
        if package not in allowed:
            raise _err(
                source,
                f"{key}.type",
                f"{name!r} is outside fastai-sparse and its installed plugins ({', '.join(sorted(allowed))}); "
                f"a config constructs only {what} classes from those packages",
            )
        try:
            obj = importlib.import_module(module)
            for part in qual.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as e:
            raise _err(source, f"{key}.type", f"cannot find {name!r} ({e})") from None
    if not (isinstance(obj, type) and issubclass(obj, base_cls)):
        raise _err(source, f"{key}.type", f"{name!r} is not a {what} class; a config constructs only those")
    return obj


def build_component(entry: Any, key: str, base_cls: type, source: Any = None, ref: Any = None) -> Any:
    """Construct a transform or voxelizer from ``{"type": name, **params}`` (see the module
    docstring for what may be constructed). ``ref``: the entry it replaces, for type checks."""
    if not isinstance(entry, dict):
        raise _err(source, key, f"expected {{'type': ..., parameters}}, got {_dump(entry)}")
    if OPAQUE in entry:
        raise _err(
            source,
            key,
            f"{entry.get('type')} ({entry[OPAQUE]}) cannot be rebuilt from a config; "
            "change it in Python or replace it with a fastai-sparse transform",
        )
    if "type" not in entry:
        raise _err(source, key, "missing 'type' (the class name)")
    cls = _resolve_class(entry["type"], key, base_cls, source)
    named, _ = _constructor_params(cls)
    hints = _hints(cls)
    sig = inspect.signature(cls).parameters if named else {}
    same = isinstance(ref, dict) and ref.get("type") == entry["type"]
    kwargs = {}
    for name, value in entry.items():
        if name == "type":
            continue
        k = f"{key}.{name}"
        if name not in named:
            raise _err(source, k, f"{cls.__name__} has no parameter {name!r}; {_close(name, named)}")
        p = sig[name]
        default = None if p.default is p.empty else _json_or_opaque(p.default, k)
        value = check_value(
            value,
            k,
            hint=hints.get(name),
            ref=ref.get(name) if same else default,
            text=_annotation_text(cls, name),
            source=source,
        )
        kwargs[name] = _build_value(value, k, source, ref.get(name) if same else None)
    missing = [n for n in named if n not in kwargs and sig[n].default is inspect.Parameter.empty]
    if missing:
        raise _err(source, f"{key}.{missing[0]}", f"{cls.__name__} needs this parameter")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, FastaiSparseError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise _err(
            source, key, msg if msg.startswith(f"{cls.__name__}:") else f"{cls.__name__}: {msg}"
        ) from e


def _build_value(value: Any, key: str, source: Any, ref: Any) -> Any:
    """A constructor argument from JSON: nested transforms (``{"type": ...}``, alone or in a
    list) are built, lists become tuples."""
    from .transforms import Transform

    if isinstance(value, dict) and "type" in value:
        return build_component(value, key, Transform, source, ref)
    if isinstance(value, list):
        refs = ref if isinstance(ref, list) else []
        return tuple(
            _build_value(v, f"{key}.{i}", source, refs[i] if i < len(refs) else None)
            for i, v in enumerate(value)
        )
    return from_json(value)


# -- callables with options (datasets, models, heads) ---------------------------------------------
@dataclasses.dataclass
class _Options:
    values: dict  # JSON, resolved: signature defaults < factory defaults < explicit
    defaults: dict  # JSON: signature defaults < factory defaults
    fn: Callable | None
    hints: dict
    open: bool  # takes **kwargs: keys beyond the signature are allowed


def _options(
    fn: Callable | None, factory_defaults: Mapping, explicit: Mapping, skip: set, key: str
) -> _Options:
    values: dict[str, Any] = {}
    open_ = fn is None
    if fn is not None:
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            params, open_ = [], True
        for p in params:
            if p.name in skip or p.kind is p.VAR_POSITIONAL:
                continue
            if p.kind is p.VAR_KEYWORD:
                open_ = True
            elif p.default is not p.empty:
                values[p.name] = p.default
    values.update(factory_defaults)
    defaults = {k: _json_or_opaque(v, f"{key}.{k}") for k, v in values.items() if k not in skip}
    values.update(explicit)
    resolved = {k: _json_or_opaque(v, f"{key}.{k}") for k, v in values.items() if k not in skip}
    return _Options(resolved, defaults, fn, _hints(fn) if fn is not None else {}, open_)


def _check_options(given: Any, opts: _Options, key: str, source: Any) -> dict:
    if not isinstance(given, dict):
        raise _err(source, key, f"expected a mapping of names to values, got {_dump(given)}")
    out = dict(opts.values)
    for name, value in given.items():
        k = f"{key}.{name}"
        if name not in opts.values and not opts.open:
            raise _err(source, k, f"unknown key; {_close(name, sorted(opts.values))}")
        text = _annotation_text(opts.fn, name) if opts.fn is not None else None
        out[name] = check_value(
            value, k, hint=opts.hints.get(name), ref=opts.values.get(name), text=text, source=source
        )
    return out


def _changed(values: dict, defaults: dict) -> dict:
    """Python keyword arguments for the values that differ from the defaults."""
    return {k: from_json(v) for k, v in values.items() if k not in defaults or v != defaults[k]}


def _factory_parts(obj: Any) -> tuple[Callable | None, dict]:
    from .registry import Factory, resolve

    if isinstance(obj, Factory):
        try:
            return obj.func, dict(obj.defaults)
        except Exception:
            return None, dict(obj.defaults)
    try:
        return resolve(obj), {}
    except Exception:
        return None, {}


def _model_options(
    reg: Any, kind: str, name: str, explicit: Mapping, key: str, source: Any = None
) -> _Options:
    try:
        factory = reg.get(kind, name)
    except UnknownNameError as e:
        raise _err(source, key.removesuffix("_kwargs"), str(e)) from None
    fn, defaults = _factory_parts(factory)
    skip = {"in_channels"} if kind == "model" else {"in_channels", "num_outputs"}
    return _options(fn, defaults, explicit, skip, key)


def _dataset_parts(task: Any, reg: Any) -> tuple[str, Any, Callable | None, dict]:
    """(name, factory object, function, factory defaults) of a task's dataset."""
    from .registry import Factory

    ds = task.dataset
    if isinstance(ds, str) and ":" not in ds:
        factory = reg.get("dataset", ds)
        fn, defaults = _factory_parts(factory)
        return ds, factory, fn, defaults
    if isinstance(ds, Factory):
        fn, defaults = _factory_parts(ds)
        return ds.name, ds, fn, defaults
    fn, _ = _factory_parts(ds)
    name = (
        ds if isinstance(ds, str) else f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', '?')}"
    )
    return name, ds, fn, {}


# -- optimizer and schedule ------------------------------------------------------------------------
def _optimizer_fn(name: str) -> Callable:
    from . import _fastai  # noqa: F401  (fastai without its import-time deprecation warning: first)

    # isort: split
    import fastai.optimizer

    return getattr(fastai.optimizer, OPTIMIZERS[name])


def _optimizer_options(name: str) -> _Options:
    return _options(_optimizer_fn(name), {}, {}, {"params", "lr"}, "optimizer")


def _schedule_options(name: str) -> _Options:
    from .schedules import SCHEDULES

    params = dict(SCHEDULES[name])
    return _Options(dict(params), dict(params), None, {k: float for k in params}, False)


def _named_section(
    given: Any, ref: Mapping | None, key: str, table: dict, default: str, options: Callable, source: Any
) -> dict:
    """A ``{"name": ..., keywords}`` section: the name (default: ``ref``'s, else ``default``),
    then every keyword, from ``given``, else ``ref`` (same name), else the defaults."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise _err(source, key, f"expected a mapping with a 'name', got {_dump(given)}")
    ref = dict(ref or {})
    name = given.get("name", ref.get("name", default))
    if name not in table:
        raise _err(source, f"{key}.name", f"unknown {key} {name!r}; {_close(str(name), sorted(table))}")
    opts = options(name)
    if ref.get("name") == name:
        opts.values.update({k: v for k, v in ref.items() if k != "name" and k in opts.values})
    rest = {k: v for k, v in given.items() if k != "name"}
    return {"name": name, **_check_options(rest, opts, key, source)}


def resolve_optimizer(spec: Mapping | None = None, source: Any = None, ref: Mapping | None = None) -> dict:
    """``{"name": ..., every keyword of that fastai optimizer}``; default fastai's Adam."""
    return _named_section(spec, ref, "optimizer", OPTIMIZERS, "adam", _optimizer_options, source)


def resolve_schedule(spec: Any = None, source: Any = None, ref: Mapping | None = None) -> dict:
    """``{"name": ..., every parameter}`` of a learning-rate schedule of
    :mod:`fastai_sparse.schedules` (a name, a dict, or None for ``ref``'s, else one-cycle)."""
    from .schedules import SCHEDULES, schedule_spec

    if isinstance(spec, str):
        spec = {"name": spec}
    out = _named_section(spec, ref, "schedule", SCHEDULES, "one-cycle", _schedule_options, source)
    try:
        return schedule_spec(out)
    except FastaiSparseError as e:  # a value out of range
        raise _err(source, "schedule", str(e)) from None


def optimizer_func(spec: Mapping | None) -> Callable:
    """The fastai ``opt_func`` for an optimizer section (only the keywords that differ from
    the optimizer's defaults are bound, so the default section gives fastai's own function)."""
    import functools

    spec = resolve_optimizer(spec)
    fn = _optimizer_fn(spec["name"])
    opts = _optimizer_options(spec["name"])
    kwargs = _changed({k: v for k, v in spec.items() if k != "name"}, opts.defaults)
    return functools.partial(fn, **kwargs) if kwargs else fn


# -- task -> config ---------------------------------------------------------------------------
def _target_config(target: Any) -> dict:
    out: dict[str, Any] = {"type": f"{type(target).__module__}:{type(target).__qualname__}"}
    classes = getattr(target, "classes", None)
    out["classes"] = [str(c) for c in classes] if classes is not None else None
    for attr in ("per", "ignore_index"):
        v = getattr(target, attr, None)
        if isinstance(v, (str, int)) and not isinstance(v, bool):
            out[attr] = v
    return out


def _loss_name(task: Any) -> str:
    try:
        loss = task.loss_func()
    except Exception as e:  # pragma: no cover - a broken target is reported when training
        return f"<unavailable: {type(e).__name__}>"
    cls = loss if inspect.isfunction(loss) else type(loss)
    return f"{cls.__module__}:{cls.__qualname__}"


def task_config(
    task: Any,
    *,
    root: str | os.PathLike | None = None,
    dataset_options: Mapping | None = None,
    seed: int = 0,
    registry: Any = None,
    **settings: Any,
) -> dict:
    """The fully resolved configuration of ``task`` as a JSON-ready dict (see the module
    docstring); ``settings`` (``epochs``, ``bs``, ``lr``, ``tta``, ``num_workers``,
    ``optimizer``, ``schedule``) override the task's defaults, ``dataset_options`` are extra
    keyword arguments of its dataset factory, ``root`` the data folder, ``seed`` the run's seed."""
    from .registry import default_registry

    reg = registry or default_registry()
    defaults = {**task.defaults, **{k: v for k, v in settings.items() if v is not None}}
    name, _, fn, fdefaults = _dataset_parts(task, reg)
    ds_opts = _options(fn, fdefaults, dict(dataset_options or {}), {"split", "root"}, "dataset.options")
    model = _model_options(reg, "model", task.model, task.model_kwargs, "model_kwargs")
    head = _model_options(reg, "head", task.head, task.head_kwargs, "head_kwargs")
    cfg: dict[str, Any] = {
        "format": CONFIG_FORMAT,
        "task": task.name,
        "target": _target_config(task.target),
        "dataset": {
            "name": name,
            "root": str(root) if root is not None else None,
            "splits": list(task.splits),
            "options": ds_opts.values,
        },
        "train_transforms": [
            component_config(t, f"train_transforms.{i}") for i, t in enumerate(task.train_transforms)
        ],
        "valid_transforms": [
            component_config(t, f"valid_transforms.{i}") for i, t in enumerate(task.valid_transforms)
        ],
        "voxelizer": component_config(task.make_voxelizer(), "voxelizer"),
        "model": task.model,
        "model_kwargs": model.values,
        "head": task.head,
        "head_kwargs": head.values,
        "input_stage": task.input_stage,
        "loss": _loss_name(task),
        "metrics": list(task.metric_names),
    }
    for k in _HYPER:
        cfg[k] = to_json(defaults[k])
    cfg["defaults"] = {  # a task's own other defaults (e.g. its output format)
        k: _json_or_opaque(v, f"defaults.{k}") for k, v in defaults.items() if k not in _NOT_EXTRA
    }
    cfg["seed"] = int(seed)
    cfg["optimizer"] = resolve_optimizer(defaults.get("optimizer"))
    cfg["schedule"] = resolve_schedule(defaults.get("schedule"))
    cfg["precision"] = "32"  # fastai_sparse.precision: "32", "bf16" or "fp16"
    cfg["loggers"] = ["csv"]  # fastai_sparse.loggers: what the run logs to
    cfg["grad_accum"] = (
        1  # optimizer step every n batches; bs stays the step's batch (distributed.per_process_bs)
    )
    cfg["versions"] = versions()
    return cfg


# -- config -> task ---------------------------------------------------------------------------
def _check_hyper(cfg: dict, ref: dict, source: Any) -> dict:
    out = {}
    for k, (kind, low) in _HYPER.items():
        v = cfg.get(k, ref[k])
        v = check_value(v, k, hint=kind, source=source)
        if k == "lr":
            if not v > 0:
                raise _err(source, k, f"must be > 0, got {_dump(v)}")
        elif v < low:
            raise _err(source, k, f"must be at least {low}, got {_dump(v)}")
        out[k] = v
    seed = check_value(cfg.get("seed", 0), "seed", hint=int, source=source)
    if seed < 0:
        raise _err(source, "seed", f"must be at least 0, got {seed}")
    out["seed"] = seed
    return out


def _run_settings(cfg: dict, ref: dict, source: Any) -> dict:
    """``precision`` (:mod:`fastai_sparse.precision`), ``loggers`` (:mod:`fastai_sparse.loggers`)
    and ``grad_accum`` (batches per optimizer step, :func:`fastai_sparse.distributed.per_process_bs`):
    how the run trains and what it logs to; they do not change the task."""
    from .loggers import LoggerError, parse_loggers
    from .precision import PRECISIONS

    precision = cfg.get("precision", ref["precision"])
    if precision == 32:
        precision = "32"
    if precision not in PRECISIONS:
        raise _err(source, "precision", f"expected one of {', '.join(PRECISIONS)}, got {_dump(precision)}")
    loggers = cfg.get("loggers", ref["loggers"])
    if not isinstance(loggers, list) or not all(isinstance(v, str) for v in loggers):
        raise _err(source, "loggers", f"expected a list of logger names, got {_dump(loggers)}")
    try:
        loggers = parse_loggers(loggers)
    except LoggerError as e:
        raise _err(source, "loggers", str(e)) from None
    grad_accum = check_value(
        cfg.get("grad_accum", ref.get("grad_accum", 1)), "grad_accum", hint=int, source=source
    )
    if grad_accum < 1:
        raise _err(source, "grad_accum", f"must be at least 1, got {_dump(grad_accum)}")
    return {"precision": precision, "loggers": loggers, "grad_accum": grad_accum}


def _version_check(given: Any, source: Any) -> None:
    if not isinstance(given, dict):
        return
    now = versions()
    diffs = [
        f"{k} {given[k]} (now {now.get(k)})"
        for k in ("fastai-sparse", "torch", "fastai", "numpy")
        if given.get(k) is not None and given.get(k) != now.get(k)
    ]
    plugins_then, plugins_now = given.get("plugins") or {}, now.get("plugins") or {}
    diffs += [
        f"{d} {v} (now {plugins_now.get(d, 'not installed')})"
        for d, v in plugins_then.items()
        if plugins_now.get(d) != v
    ]
    if diffs:
        warnings.warn(
            f"{_where(source)}the config was written with {', '.join(diffs)}: results may differ "
            "from the recorded run",
            ConfigVersionWarning,
            stacklevel=3,
        )


def _transforms(given: Any, ref: list, base_objs: Sequence, key: str, source: Any) -> tuple[list, list]:
    from .transforms import Transform

    if not isinstance(given, list):
        raise _err(source, key, f"expected a list of transforms, got {_dump(given)}")
    doc, objs = [], []
    for i, entry in enumerate(given):
        k = f"{key}.{i}"
        if i < len(ref) and entry == ref[i]:
            doc.append(ref[i])
            objs.append(base_objs[i])
            continue
        obj = build_component(entry, k, Transform, source, ref[i] if i < len(ref) else None)
        doc.append(component_config(obj, k))
        objs.append(obj)
    return doc, objs


def resolve_config(
    cfg: Mapping, *, base: Any = None, registry: Any = None, source: Any = None
) -> tuple[dict, Any]:
    """Check a config and rebuild its task: ``(resolved config, Task)``.

    ``cfg`` may be partial (every key it leaves out takes the task's value) and may come from
    a file (``source`` names it in the messages). The task is ``base`` (a Task object) or the
    registered task named by ``cfg["task"]``; see the module docstring for what is rebuilt.
    Raises :class:`~fastai_sparse.errors.ConfigError` naming the key of the first problem.
    """
    from .registry import Factory, default_registry
    from .voxelize import Voxelizer

    reg = registry or default_registry()
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{_where(source)}a config is a JSON object (a mapping), got {type(cfg).__name__}")
    cfg = dict(cfg)
    fmt = cfg.get("format", CONFIG_FORMAT)
    if fmt != CONFIG_FORMAT:
        raise _err(source, "format", f"expected {CONFIG_FORMAT!r}, got {_dump(fmt)}")
    name = cfg.get("task", getattr(base, "name", None))
    if not isinstance(name, str):
        raise _err(source, "task", f"expected a task name, got {_dump(name)}")
    if base is None:
        try:
            base = reg.get("task", name)
        except UnknownNameError as e:
            raise _err(source, "task", str(e)) from None
    elif base.name != name:
        raise _err(source, "task", f"the config is for task {name!r}, not {base.name!r}")
    for k in cfg:
        if k not in _TOP:
            raise _err(source, k, f"unknown key; {_close(k, list(_TOP))}")
    _version_check(cfg.get("versions"), source)
    ref = task_config(base, registry=reg)
    changes: dict[str, Any] = {}

    # target: fixed by the task, except classes a task takes from its data (with_classes)
    target = cfg.get("target", ref["target"])
    if not isinstance(target, dict):
        raise _err(source, "target", f"expected a mapping, got {_dump(target)}")
    if (
        target != ref["target"]
        and base.class_names is None
        and target.get("classes")
        and hasattr(base, "with_classes")
    ):
        base = base.with_classes(list(target["classes"]))
        ref = task_config(base, registry=reg)
    if target != ref["target"]:
        bad = next(k for k in [*target, *ref["target"]] if target.get(k) != ref["target"].get(k))
        raise _err(
            source,
            f"target.{bad}",
            f"is fixed by task {name!r} ({_dump(ref['target'].get(bad))}); a config cannot change it "
            f"(found {_dump(target.get(bad))})",
        )
    loss = cfg.get("loss", ref["loss"])
    if loss != ref["loss"]:
        raise _err(
            source,
            "loss",
            f"is fixed by task {name!r} ({ref['loss']}); a config cannot change it (found {_dump(loss)})",
        )
    out: dict[str, Any] = {"format": CONFIG_FORMAT, "task": name, "target": ref["target"]}

    # dataset
    ds = cfg.get("dataset", {})
    if not isinstance(ds, dict):
        raise _err(source, "dataset", f"expected a mapping, got {_dump(ds)}")
    for k in ds:
        if k not in ("name", "root", "splits", "options"):
            raise _err(
                source, f"dataset.{k}", f"unknown key; {_close(k, ['name', 'root', 'splits', 'options'])}"
            )
    ds_name = check_value(ds.get("name", ref["dataset"]["name"]), "dataset.name", hint=str, source=source)
    base_name, base_factory, fn, fdefaults = _dataset_parts(base, reg)
    if ds_name != base_name:
        try:
            base_factory = reg.get("dataset", ds_name)
        except UnknownNameError as e:
            raise _err(source, "dataset.name", str(e)) from None
        fn, fdefaults = _factory_parts(base_factory)
    ds_ref = _options(fn, fdefaults, {}, {"split", "root"}, "dataset.options")
    options = _check_options(ds.get("options", {}), ds_ref, "dataset.options", source)
    root = ds.get("root")
    if root is not None and not isinstance(root, str):
        raise _err(source, "dataset.root", f"expected a folder path or null, got {_dump(root)}")
    splits = ds.get("splits", ref["dataset"]["splits"])
    if not (isinstance(splits, list) and len(splits) == 2 and all(isinstance(s, str) for s in splits)):
        raise _err(source, "dataset.splits", f"expected two split names, got {_dump(splits)}")
    out["dataset"] = {"name": ds_name, "root": root, "splits": splits, "options": options}
    if ds_name != base_name or options != ds_ref.values:
        kwargs = {**fdefaults, **_changed(options, ds_ref.defaults)}
        target_fn = base_factory.target if isinstance(base_factory, Factory) else base_factory
        changes["dataset"] = Factory(ds_name, target_fn, **kwargs)
    if tuple(splits) != tuple(base.splits):
        changes["splits"] = tuple(splits)

    # transforms and voxelizer
    for key in ("train_transforms", "valid_transforms"):
        doc, objs = _transforms(cfg.get(key, ref[key]), ref[key], getattr(base, key), key, source)
        out[key] = doc
        if doc != ref[key]:
            changes[key] = objs
    vox = cfg.get("voxelizer", ref["voxelizer"])
    if vox == ref["voxelizer"]:
        out["voxelizer"] = ref["voxelizer"]
    else:
        obj = build_component(vox, "voxelizer", Voxelizer, source, ref["voxelizer"])
        out["voxelizer"] = component_config(obj, "voxelizer")
        changes["voxelizer"] = obj

    # model, head, input stage, metrics
    for part, kind in (("model", "model"), ("head", "head")):
        pname = check_value(cfg.get(part, ref[part]), part, hint=str, source=source)
        kw_key = f"{part}_kwargs"
        if pname == ref[part]:
            opts = _model_options(reg, kind, pname, getattr(base, kw_key), kw_key, source)
        else:
            opts = _model_options(reg, kind, pname, {}, kw_key, source)
        kwargs = _check_options(cfg.get(kw_key, {}), opts, kw_key, source)
        out[part], out[kw_key] = pname, kwargs
        if pname != ref[part]:
            changes[part] = pname
        if pname != ref[part] or kwargs != ref[kw_key]:
            changes[kw_key] = _changed(kwargs, _model_options(reg, kind, pname, {}, kw_key, source).defaults)
    stage = cfg.get("input_stage", ref["input_stage"])
    if stage is not None:
        stage = check_value(stage, "input_stage", hint=str, source=source)
        try:
            reg.get("model", stage)
        except UnknownNameError as e:
            raise _err(source, "input_stage", str(e)) from None
    out["input_stage"] = stage
    if stage != ref["input_stage"]:
        changes["input_stage"] = stage
    out["loss"] = ref["loss"]
    metrics = cfg.get("metrics", ref["metrics"])
    if not isinstance(metrics, list):
        raise _err(source, "metrics", f"expected a list of metric names, got {_dump(metrics)}")
    for i, m in enumerate(metrics):
        check_value(m, f"metrics.{i}", hint=str, source=source)
        try:
            reg.get("metric", m)
        except UnknownNameError as e:
            raise _err(source, f"metrics.{i}", str(e)) from None
    out["metrics"] = list(metrics)
    if metrics != ref["metrics"]:
        changes["metrics"] = list(metrics)

    # hyper-parameters, optimizer, schedule
    hyper = _check_hyper(cfg, ref, source)
    given_extra = cfg.get("defaults", {})
    if not isinstance(given_extra, dict):
        raise _err(source, "defaults", f"expected a mapping, got {_dump(given_extra)}")
    extra = {}
    for k, v in given_extra.items():
        if k not in ref["defaults"]:
            raise _err(source, f"defaults.{k}", f"unknown key; {_close(k, sorted(ref['defaults']))}")
        extra[k] = check_value(v, f"defaults.{k}", ref=ref["defaults"][k], source=source)
    extra = {**ref["defaults"], **extra}
    optimizer = resolve_optimizer(cfg.get("optimizer"), source, ref["optimizer"])
    schedule = resolve_schedule(cfg.get("schedule"), source, ref["schedule"])
    out.update({k: hyper[k] for k in _HYPER})
    out["defaults"] = extra
    out.update({"seed": hyper["seed"], "optimizer": optimizer, "schedule": schedule})
    out.update(_run_settings(cfg, ref, source))
    out["versions"] = versions()
    new_defaults = dict(base.defaults)
    for k in _HYPER:
        if hyper[k] != ref[k]:
            new_defaults[k] = hyper[k]
    for k, v in extra.items():
        if v != ref["defaults"][k]:
            new_defaults[k] = from_json(v)
    for k, section in (("optimizer", optimizer), ("schedule", schedule)):
        if section != ref[k]:
            new_defaults[k] = section
    if new_defaults != dict(base.defaults):
        changes["defaults"] = new_defaults
    task = dataclasses.replace(base, **changes) if changes else base
    return out, task


# -- files and overrides ----------------------------------------------------------------------
def load_config(path: str | os.PathLike) -> dict:
    """Read a config file (JSON): a config, a run's ``run.json`` or a model folder's
    ``config.json`` (both hold one under ``"config"``)."""
    from .errors import InputFileError

    p = Path(path)
    if p.is_dir():
        for name in ("config.json", "run.json"):
            if (p / name).is_file():
                p = p / name
                break
        else:
            raise InputFileError(p, "is a folder without a config.json", "pass the config file itself")
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise InputFileError(p, "no such config file", "check the path") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a text file; a config is JSON") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    if isinstance(doc, dict) and isinstance(doc.get("config"), dict):  # a model's config.json
        doc = doc["config"]
    elif isinstance(doc, dict) and "finished_epochs" in doc:  # a run.json: its config is beside it
        if (p.parent / "config.json").is_file():
            return load_config(p.parent / "config.json")
        raise ConfigError(
            f"{p}: a run record without a config.json beside it (written before configs were "
            "recorded); start from `fastai-sparse config TASK` instead"
        )
    if not isinstance(doc, dict):
        raise ConfigError(f"{p}: a config is a JSON object, found {type(doc).__name__}")
    return doc


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"model_kwargs.m=32"`` -> ``("model_kwargs.m", 32)``: the value is JSON when it parses,
    else the text itself."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE (e.g. lr=0.01 or model_kwargs.m=32)")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def _set_path(doc: dict, key: str, value: Any, source: Any = None) -> None:
    parts = key.split(".")
    node: Any = doc
    for depth, part in enumerate(parts):
        here = ".".join(parts[: depth + 1])
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.lstrip("-").isdigit():
                raise _err(
                    source, here, f"{'.'.join(parts[:depth])} is a list: use an index 0..{len(node) - 1}"
                )
            i = int(part)
            if not 0 <= i < len(node):
                raise _err(source, here, f"index out of range: the list has {len(node)} entries")
            if last:
                node[i] = value
            else:
                node = node[i]
        elif isinstance(node, dict):
            if part not in node and not (last and ".".join(parts[:depth]) in _OPEN_DICTS):
                raise _err(source, here, f"unknown key; {_close(part, sorted(node))}")
            if last:
                node[part] = value
            else:
                node = node[part]
        else:
            raise _err(source, here, f"{'.'.join(parts[:depth])} is {_dump(node)}, which has no keys")


def _is_type_key(key: str) -> bool:
    parts = key.split(".")
    return key in ("voxelizer.type", "optimizer.name", "schedule.name") or (
        len(parts) == 3 and parts[0] in ("train_transforms", "valid_transforms") and parts[2] == "type"
    )


def apply_overrides(
    cfg: Mapping,
    assignments: Sequence[str] | Mapping[str, Any],
    *,
    base: Any = None,
    registry: Any = None,
    source: Any = None,
) -> dict:
    """``cfg`` resolved, with dotted-key overrides applied, resolved again: the new config.

    ``assignments``: ``["lr=0.01", "model_kwargs.m=32"]`` (command-line form, values read as
    JSON) or ``{"lr": 0.01, "model_kwargs.m": 32}`` (Python values). Unknown keys and values of
    the wrong type raise :class:`~fastai_sparse.errors.ConfigError` naming the key.
    """
    if isinstance(assignments, Mapping):
        items = [(k, to_json(v, k)) for k, v in assignments.items()]
    else:
        items = [parse_assignment(a) for a in assignments]
    doc, _ = resolve_config(cfg, base=base, registry=registry, source=source)
    doc = copy.deepcopy(doc)
    set_keys = {k for k, _ in items}
    # names first: a new name resets what depends on it, unless also set here
    for key, value in sorted(items, key=lambda kv: not (kv[0] in _DEPENDENTS or _is_type_key(kv[0]))):
        if _is_type_key(key):  # a new class: its parameters start from its defaults
            _set_path(doc, key, value)
            parent, field = key.rsplit(".", 1)
            _set_path(doc, parent, {field: value})
            continue
        _set_path(doc, key, value)
        dep = _DEPENDENTS.get(key)
        if dep and not any(k == dep or k.startswith(dep + ".") for k in set_keys):
            _set_path(doc, dep, {})
    doc.pop("versions", None)
    try:
        out, _ = resolve_config(doc, base=base, registry=registry, source=source)
    except ConfigError as e:  # a value set here is not the file's fault: name only the key
        if e.key and any(
            e.key == k or e.key.startswith(k + ".") or k.startswith(e.key + ".") for k in set_keys
        ):
            raise ConfigError(str(e).removeprefix(_where(source)), key=e.key) from None
        raise
    return out
