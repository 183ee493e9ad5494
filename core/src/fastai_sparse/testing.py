"""Conformance kit for plugin authors.

A plugin's whole test file can be::

    from fastai_sparse.testing import check_plugin

    def test_plugin_conforms():
        check_plugin("myplugin")          # the entry-point name, a module name, or a module

:func:`check_plugin` loads the plugin next to core's built-in one, in a registry of its own,
and checks that it loads and registers without error, that every factory it names can be
imported, and that every task it registers builds: datasets with items, samples of the
right dtypes and shapes, a collated batch, a model whose forward pass gives one row per point
(or per sample) and one column per output, a finite loss with gradients, and metrics that
compute. Failures raise :class:`~fastai_sparse.errors.ConformanceError` saying what is wrong.

The module is also a pytest plugin (entry point ``pytest11``) providing the fixtures
``sparse_registry`` (build a registry from given plugins) and ``sparse_task_root`` (a
temporary data root made by a task's ``fixture``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

from . import plugins as _plugins
from .errors import ConformanceError, FastaiSparseError
from .registry import Factory, Registry

__all__ = ["ConformanceError", "check_plugin", "check_task", "registry_with"]


def _fail(where: str, what: str, cause: BaseException | None = None) -> ConformanceError:
    msg = f"{where}: {what}"
    if cause is not None:
        msg += f" ({type(cause).__name__}: {cause})"
    return ConformanceError(msg)


def registry_with(*plugins: str | ModuleType | tuple[str, Any], installed: bool = False) -> Registry:
    """A registry holding core's built-in plugin plus the given ones (no warnings).

    Each plugin is an installed entry-point name, an importable module name, a module
    object, or a ``(name, object)`` pair. With ``installed=True`` every installed plugin is
    loaded too.
    """
    entry_names = {ep.name for ep in _plugins._entry_points()}
    names: set[str] | None = None if installed else set()
    extra = []
    for p in plugins:
        if isinstance(p, tuple):
            extra.append(p)
        elif isinstance(p, str) and p in entry_names:
            if names is not None:
                names.add(p)
        elif isinstance(p, str):
            extra.append((p, p))
        else:
            extra.append((getattr(p, "__name__", repr(p)), p))
    return Registry.from_plugins(_plugins.discover(names, extra=extra), warn=False)


def check_plugin(
    plugin: str | ModuleType | tuple[str, Any],
    *,
    root: str | Path | None = None,
    tasks: Sequence[str] | None = None,
    max_items: int = 2,
) -> dict[str, Any]:
    """Check that a plugin satisfies the fastai-sparse contract; raise ConformanceError if not.

    Args:
        plugin: an installed entry-point name, an importable module name, a module object,
            or a ``(name, object)`` pair.
        root: data root for tasks that need one and ship no ``fixture``.
        tasks: only check these task names (default: every task the plugin registers).
        max_items: samples per split to push through the pipeline.

    Returns a summary: ``{"plugin": name, "registered": {kind: [names]}, "tasks": {name: {...}}}``.
    """
    reg = registry_with(plugin)
    name = (
        plugin[0] if isinstance(plugin, tuple) else (plugin if isinstance(plugin, str) else plugin.__name__)
    )
    info = next((i for i in reg.plugins if i.name == name or i.module == name), None)
    if info is None:
        raise _fail(
            f"plugin {name!r}", "was not found: not an installed entry point nor an importable module"
        )
    if not info.ok:
        raise _fail(f"plugin {name!r}", f"failed to load: {info.error}")
    builtin = next(i for i in reg.plugins if i.name == _plugins.BUILTIN_NAME)
    if not builtin.ok:
        raise _fail("core built-in plugin", f"failed to load: {builtin.error}")
    if not info.registered and "register_commands" not in info.hooks:
        raise _fail(
            f"plugin {name!r}",
            "registered nothing: implement at least one register_* hook "
            f"(it implements {info.hooks or 'no hooks'})",
        )
    for kind, names in info.registered.items():
        for n in names:
            obj = reg.get(kind, n)
            if isinstance(obj, Factory):
                try:
                    _ = obj.func
                except Exception as exc:
                    raise _fail(
                        f"{kind} {n!r}", f"its factory {obj.target!r} cannot be imported", exc
                    ) from exc
    summary: dict[str, Any] = {"plugin": info.name, "registered": dict(info.registered), "tasks": {}}
    for task_name in info.registered.get("task", []):
        if tasks is not None and task_name not in tasks:
            continue
        summary["tasks"][task_name] = check_task(
            reg.get("task", task_name), registry=reg, root=root, max_items=max_items
        )
    return summary


def _task_root(task, root, tmp: Path) -> Path | None:
    if not task.needs_root:
        return None
    if root is not None:
        return Path(root)
    if task.fixture is None:
        raise _fail(
            f"task {task.name!r}",
            "needs a data root but defines no `fixture` to make a small one; "
            "give Task(fixture=...) or pass root=",
        )
    try:
        made = task.fixture(tmp)
    except Exception as exc:
        raise _fail(f"task {task.name!r}", "its fixture failed", exc) from exc
    return Path(made) if made is not None else tmp


def check_task(
    task, *, registry: Registry | None = None, root: str | Path | None = None, max_items: int = 2
) -> dict[str, Any]:
    """Check one task end to end on a couple of samples (see the module docstring)."""
    import numpy as np

    from .batch import collate
    from .geometry import Mesh, PointCloud

    where = f"task {task.name!r}"
    with tempfile.TemporaryDirectory(prefix="fastai-sparse-check-") as tmp:
        data_root = _task_root(task, root, Path(tmp))
        try:
            ds = task.datasets(data_root, registry=registry)
        except Exception as exc:
            raise _fail(where, "building its datasets failed", exc) from exc
        result: dict[str, Any] = {}
        for split, train in (("train", True), ("valid", False)):
            items = ds[split]
            try:
                n = len(items)
            except TypeError as exc:
                raise _fail(
                    where, f"the {split} dataset has no len(); datasets must be sequences", exc
                ) from exc
            if n == 0:
                raise _fail(where, f"the {split} dataset is empty")
            pipeline = task.pipeline(train=train)
            samples = []
            for i in range(min(max_items, n)):
                try:
                    item = items[i]
                except Exception as exc:
                    raise _fail(where, f"reading {split} item {i} failed", exc) from exc
                if not isinstance(item, (PointCloud, Mesh)):
                    raise _fail(
                        where, f"{split} item {i} is a {type(item).__name__}; expected PointCloud or Mesh"
                    )
                try:
                    sample = pipeline(item, np.random.default_rng(i))
                except FastaiSparseError as exc:
                    raise _fail(where, f"{split} item {i} does not pass its pipeline", exc) from exc
                _check_sample(where, f"{split} item {i}", sample)
                samples.append(sample)
            x, y = collate(samples, task.target)
            out = _check_model(where, task, registry, x, y, samples)
            result[split] = {
                "items": n,
                "voxels": int(x["coords"].shape[0]),
                "points": int(x["inverse"].shape[0]),
                "outputs": list(out.shape),
            }
        return result


def _check_sample(where: str, what: str, s) -> None:
    import numpy as np

    coords, feats, inverse = s.coords, s.feats, s.inverse
    if coords.dtype != np.int32 or coords.ndim != 2 or coords.shape[1] != 3:
        raise _fail(where, f"{what}: coords must be int32 [M, 3], got {coords.dtype} {list(coords.shape)}")
    if len(coords) and coords.min() < 0:
        raise _fail(where, f"{what}: coords must be >= 0, found {int(coords.min())}")
    if feats.dtype != np.float32 or feats.ndim != 2 or len(feats) != len(coords):
        raise _fail(
            where,
            f"{what}: feats must be float32 [M, C] with M={len(coords)}, "
            f"got {feats.dtype} {list(feats.shape)}",
        )
    if not np.isfinite(feats).all():
        raise _fail(where, f"{what}: feats contain NaN or inf")
    if len(inverse) != len(s.cloud) or (len(inverse) and (inverse.min() < 0 or inverse.max() >= len(coords))):
        raise _fail(where, f"{what}: inverse must map each of the {len(s.cloud)} points to a voxel row")


def _check_model(where: str, task, registry, x, y, samples) -> Any:
    import torch

    in_ch = int(x["feats"].shape[1])
    try:
        model = task.build_model(in_ch, registry=registry)
    except Exception as exc:
        raise _fail(where, f"building model {task.model!r} + head {task.head!r} failed", exc) from exc
    model.train()
    try:
        out = model(x)
    except Exception as exc:
        raise _fail(where, "the model's forward pass on a collated batch failed", exc) from exc
    per = getattr(task.target, "per", "point")
    rows = int(x["inverse"].shape[0]) if per == "point" else len(samples)
    k = task.target.num_outputs
    check_output = getattr(task.target, "check_output", None)
    if check_output is not None:  # target types with structured outputs (boxes, keypoints) check their own
        try:
            check_output(out, x, y)
        except Exception as exc:
            raise _fail(where, "the model output does not fit the target type", exc) from exc
    elif not isinstance(out, torch.Tensor) or out.ndim != 2 or tuple(out.shape) != (rows, k):
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise _fail(
            where,
            f"model output must be [{rows}, {k}] (one row per {per}, one column per output), got {shape}",
        )
    tensors = out.values() if isinstance(out, dict) else [out]
    if not all(torch.isfinite(t).all() for t in tensors if t.is_floating_point()):
        raise _fail(where, "model output contains NaN or inf")
    try:
        loss = task.loss_func()(out, y)
    except Exception as exc:
        raise _fail(where, "the loss failed on the model output", exc) from exc
    if not (isinstance(loss, torch.Tensor) and loss.ndim == 0 and torch.isfinite(loss)):
        raise _fail(where, f"the loss must be a finite scalar tensor, got {loss!r}")
    loss.backward()
    if not any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()):
        raise _fail(where, "no parameter received a gradient from the loss")
    try:
        metrics = task.build_metrics(registry=registry)
    except Exception as exc:
        raise _fail(where, "building its metrics failed", exc) from exc
    pred = {k_: v.detach() for k_, v in out.items()} if isinstance(out, dict) else out.detach()
    fake = SimpleNamespace(pred=pred, yb=(y,), y=y, xb=(x,), training=False)
    for m in metrics:
        name = getattr(m, "name", type(m).__name__)
        try:
            m.reset()
            m.accumulate(fake)
            value = m.value
        except Exception as exc:
            raise _fail(where, f"metric {name!r} failed", exc) from exc
        if value is None:
            raise _fail(where, f"metric {name!r} returned None")
    return out


# -- pytest plugin ---------------------------------------------------------------------------
try:  # the fixtures are only defined when pytest is importable
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

if pytest is not None:

    @pytest.fixture
    def sparse_registry() -> Callable[..., Registry]:
        """Build a registry from core's built-in plugin plus the given plugins."""
        return registry_with

    @pytest.fixture
    def sparse_task_root(tmp_path) -> Callable[[Any], Path]:
        """Make a task's fixture dataset in a temporary folder and return its root."""

        def make(task) -> Path:
            made = task.fixture(tmp_path) if task.fixture is not None else None
            return Path(made) if made is not None else tmp_path

        return make
