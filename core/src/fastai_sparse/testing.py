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

Every message names the plugin and the object: ``plugin 'myplugin': task 'my-seg': backbone
'my-net' (plugin 'myplugin') returned 812 voxels at stride 4 for 5815 input voxels; ...``.
Besides what runs, the kit checks the contracts that otherwise break later and far away: a
backbone returns a SparseTensor with its declared ``out_channels`` and, under a per-voxel head,
the input's voxels at stride 1; every metric has the metric interface; a fixture returns the
root of the dataset it wrote.

The module is also a pytest plugin (entry point ``pytest11``, active once fastai-sparse is
installed) providing two fixtures:

- ``sparse_registry(*plugins)``: a registry of core's built-in plugin plus the given ones,
  private to the test (:func:`registry_with`);
- ``sparse_task_root(task)``: the dataset root a task's ``fixture`` writes into a fresh
  temporary folder (``task`` a Task or a task name).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

from . import plugins as _plugins
from .errors import ConformanceError, FastaiSparseError
from .registry import Factory, Registry

__all__ = ["ConformanceError", "check_plugin", "check_task", "fixture_root", "registry_with"]


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
                        f"plugin {info.name!r}: {kind} {n!r}",
                        f"its factory {obj.target!r} cannot be imported",
                        exc,
                    ) from exc
    _check_unused_metrics(info, reg)
    summary: dict[str, Any] = {"plugin": info.name, "registered": dict(info.registered), "tasks": {}}
    for task_name in info.registered.get("task", []):
        if tasks is not None and task_name not in tasks:
            continue
        summary["tasks"][task_name] = check_task(
            reg.get("task", task_name), registry=reg, root=root, max_items=max_items, plugin=info.name
        )
    return summary


def _check_unused_metrics(info, reg: Registry) -> None:
    """Metrics the plugin registers that none of its tasks uses are built here (the tasks'
    metrics are built with their own target types by :func:`check_task`): with the first of a
    segmentation, classification or regression target type they accept, and must have the
    metric interface."""
    from .targets import Classification, Regression, Segmentation

    used = {m for t in info.registered.get("task", []) for m in reg.get("task", t).metric_names}
    targets = [Segmentation(["a", "b"]), Classification(["a", "b"]), Regression(["v"])]
    for name in info.registered.get("metric", []):
        if name in used:
            continue
        factory, errors = reg.get("metric", name), []
        for target in targets:
            try:
                made = factory(target)
            except Exception as exc:
                errors.append(exc)
                continue
            try:
                from .metrics import as_metric

                as_metric(made, name)
            except FastaiSparseError as exc:
                raise _fail(f"plugin {info.name!r}", str(exc)) from exc
            break
        else:
            raise _fail(
                f"plugin {info.name!r}",
                f"metric {name!r} could not be built for a segmentation, classification or regression "
                "target type; use it in one of the plugin's tasks so the kit builds it with that task's "
                "target type",
                errors[0],
            )


def fixture_root(task, directory: str | Path, where: str | None = None) -> Path:
    """Run ``task.fixture(directory)`` and return the dataset root it made; ConformanceError
    when the task has no fixture, the fixture fails, returns nothing, or returns a path that is
    not a folder (``where`` names the plugin and task in the message)."""
    where = where or f"task {task.name!r}"
    if task.fixture is None:
        raise _fail(
            where,
            "defines no `fixture` to make a small dataset; give Task(fixture=...), a function "
            "fixture(directory) -> root that writes files in the real layout",
        )
    name = getattr(task.fixture, "__qualname__", None) or repr(task.fixture)
    try:
        made = task.fixture(Path(directory))
    except Exception as exc:
        raise _fail(where, f"its fixture {name} failed", exc) from exc
    if made is None:
        raise _fail(
            where,
            f"its fixture {name} returned None; a fixture writes a small dataset into the folder "
            "it is given and returns the dataset root (what --root / root= would be)",
        )
    if not isinstance(made, (str, os.PathLike)) or not Path(made).is_dir():
        shown = repr(os.fspath(made)) if isinstance(made, (str, os.PathLike)) else type(made).__name__
        raise _fail(
            where, f"its fixture {name} returned {shown}, which is not a folder; return the dataset root"
        )
    return Path(made)


def _task_root(task, root, tmp: Path, where: str) -> Path | None:
    if not task.needs_root:
        return None
    if root is not None:
        return Path(root)
    if task.fixture is None:
        raise _fail(
            where,
            "needs a data root but defines no `fixture` to make a small one; "
            "give Task(fixture=...) or pass root=",
        )
    return fixture_root(task, tmp, where)


def _owner(registry: Registry | None, kind: str, name: str) -> str | None:
    try:
        return registry.owner(kind, name) if registry is not None else None
    except Exception:
        return None


def check_task(
    task,
    *,
    registry: Registry | None = None,
    root: str | Path | None = None,
    max_items: int = 2,
    plugin: str | None = None,
) -> dict[str, Any]:
    """Check one task end to end on a couple of samples (see the module docstring).

    task: a Task, or the name of a task in ``registry`` (default: the installed plugins).
    plugin: the plugin named in error messages (default: the task's owner in ``registry``).
    """
    import numpy as np

    from .batch import collate
    from .geometry import Mesh, PointCloud

    task = _as_task(task, registry)
    plugin = plugin or _owner(registry, "task", task.name)
    where = (f"plugin {plugin!r}: " if plugin else "") + f"task {task.name!r}"
    with tempfile.TemporaryDirectory(prefix="fastai-sparse-check-") as tmp:
        data_root = _task_root(task, root, Path(tmp), where)
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


def _named(registry, kind: str, name: str, label: str | None = None) -> str:
    """``metric 'miou' (plugin 'builtin')``: an object and the plugin that registered it."""
    owner = _owner(registry, kind, name)
    return f"{label or kind} {name!r}" + (f" (plugin {owner!r})" if owner else "")


def _check_backbone(where: str, task, registry, model, x) -> None:
    """The backbone's contract: a SparseTensor with ``out_channels`` channels, and for a
    per-voxel head the input's voxels (same coordinates, same order) at stride 1."""
    import torch

    from .engine import SparseTensor

    what = _named(registry, "model", task.model, "backbone")
    inp = model.sparse_input(x)
    try:
        out = model.backbone(inp)
    except Exception as exc:
        raise _fail(where, f"the forward pass of {what} failed", exc) from exc
    if not isinstance(out, SparseTensor):
        raise _fail(where, f"{what} returned {type(out).__name__}; a backbone returns a SparseTensor")
    declared = getattr(model.backbone, "out_channels", None)
    if declared != out.num_channels:
        raise _fail(
            where,
            f"{what} declares out_channels={declared} but returned {out.num_channels} channels; "
            "the head is built for out_channels",
        )
    if getattr(model.head, "per", "voxel") != "voxel":
        return
    same = (
        out.stride == 1
        and out.coords.shape == inp.coords.shape
        and torch.equal(out.coords.to(inp.coords.dtype), inp.coords)
    )
    if not same:
        raise _fail(
            where,
            f"{what} returned {len(out.coords)} voxels at stride {out.stride} for "
            f"{len(inp.coords)} input voxels; with the per-voxel head {task.head!r} a backbone must "
            "return the input's voxels, in their order, at stride 1 (an encoder-decoder such as "
            "UNet), so that every point gets its voxel's output",
        )


def _check_model(where: str, task, registry, x, y, samples) -> Any:
    import torch

    in_ch = int(x["feats"].shape[1])
    try:
        model = task.build_model(in_ch, registry=registry)
    except Exception as exc:
        raise _fail(where, f"building model {task.model!r} + head {task.head!r} failed", exc) from exc
    model.train()
    _check_backbone(where, task, registry, model, x)
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
            f"model output must be [{rows}, {k}] (one row per {per}, one column per output), got {shape} "
            f"from {_named(registry, 'head', task.head)}",
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
    pred = {k_: v.detach() for k_, v in out.items()} if isinstance(out, dict) else out.detach()
    fake = SimpleNamespace(pred=pred, yb=(y,), y=y, xb=(x,), training=False)
    reg = registry
    if reg is None:
        from .registry import default_registry

        reg = default_registry()
    for name in task.metric_names:
        what = _named(reg, "metric", name)
        try:
            m = reg.build_metric(name, task.target)
        except Exception as exc:
            raise _fail(where, f"building its metrics failed: {what}", exc) from exc
        try:
            m.reset()
            m.accumulate(fake)
            value = m.value
        except Exception as exc:
            raise _fail(where, f"{what} failed", exc) from exc
        if value is None:
            raise _fail(where, f"{what} returned None")
    return out


def _as_task(task: Any, registry: Registry | None = None):
    """A Task from a Task or a task name (looked up in ``registry``, default the installed
    plugins'); a clear error for anything else."""
    from .task import Task

    if isinstance(task, Task):
        return task
    if isinstance(task, str):
        if registry is None:
            from .registry import default_registry

            registry = default_registry()
        return registry.get("task", task)
    raise TypeError(f"expected a Task or a task name, got {type(task).__name__}")


# -- pytest plugin ---------------------------------------------------------------------------
try:  # the fixtures are only defined when pytest is importable
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

if pytest is not None:

    @pytest.fixture
    def sparse_registry() -> Callable[..., Registry]:
        """``sparse_registry(*plugins, installed=False)``: a registry of core's built-in plugin plus
        the given ones (entry-point names, module names, modules or ``(name, object)`` pairs),
        built for the test alone (the process-wide registry is not touched). See
        :func:`registry_with`."""
        return registry_with

    @pytest.fixture
    def sparse_task_root(tmp_path) -> Callable[..., Path]:
        """``sparse_task_root(task)``: the dataset root made by a task's ``fixture`` in a fresh
        temporary folder. ``task`` is a Task or a task name (looked up among the installed
        plugins, or in ``registry=``). ConformanceError when the task has no fixture, or its
        fixture fails or returns no folder."""
        made: list[int] = []

        def make(task, registry: Registry | None = None) -> Path:
            task = _as_task(task, registry)
            folder = tmp_path / f"{task.name}-{len(made)}"
            folder.mkdir()
            made.append(1)
            return fixture_root(task, folder)

        return make
