"""The plugin contract of fastai-sparse: every hook a plugin may implement.

A plugin is a module (or any object) whose functions are decorated with
:data:`hookimpl`, exposed through the ``fastai_sparse`` entry-point group::

    # pyproject.toml
    [project.entry-points.fastai_sparse]
    myplugin = "my_plugin"

    # my_plugin.py
    from fastai_sparse import hookimpl, Task

    @hookimpl
    def register_tasks(register):
        register(Task(name="mydata-seg", ...))

Every hook except ``register_commands`` receives one argument, ``register``, a callback
the plugin calls once per object it contributes. Rules shared by all of them:

* Names are lowercase words joined by dashes (``scannet-seg``, ``unet-m16``). A name is unique
  within its kind across all plugins; registering a name that another plugin already holds
  raises :class:`~fastai_sparse.errors.DuplicateNameError` naming both plugins.
* Hooks are called once per process, lazily, the first time a registry is queried (or a
  CLI command runs). Keep them cheap: import heavy modules (torch, spconv, data readers)
  inside factories, or name factories as ``"module:attr"`` strings resolved on first use.
* If a hook raises, or registers something invalid, the plugin is rolled back as a whole
  (nothing it registered stays), recorded as broken with the original exception, and a
  single warning is issued; core and the other plugins keep working.
  ``fastai-sparse plugins`` shows broken plugins with their error.
* pluggy does not pass hook arguments that have default values, and it ignores functions
  whose names are not hooks; fastai-sparse reports a misspelt hook name as a plugin error.

The built-in plugin (:mod:`fastai_sparse.builtin.plugin`) registers core's own models,
heads, metrics, backends, target types and synthetic tasks through these same hooks.

The reference of every hook, with a tested example and the messages of what goes wrong, is
``docs/hooks.md``; ``tests/core/test_docs.py`` checks its signatures against this module.
"""

from __future__ import annotations

import pluggy

__all__ = ["HOOK_KINDS", "PROJECT", "hookimpl", "hookspec"]

PROJECT = "fastai_sparse"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: hook name -> registry kind it fills (``register_commands`` fills none).
HOOK_KINDS = {
    "register_tasks": "task",
    "register_datasets": "dataset",
    "register_target_types": "target-type",
    "register_models": "model",
    "register_heads": "head",
    "register_metrics": "metric",
    "register_backends": "backend",
}


@hookspec
def register_tasks(register):
    """Register tasks: ``register(task)`` with a :class:`fastai_sparse.Task`.

    A task ties a dataset factory, a target type, transforms, a voxelizer, a model and head
    (registered names), a loss and metrics; ``get_task(name)`` returns it and
    ``task.dataloaders(...)`` / ``task.learner(...)`` build the fastai objects. Building the
    Task is part of ``fastai-sparse tasks``: it must not import torch.

    Checked at registration (PluginError, the plugin is skipped): the object is a Task, its
    name is valid and free, ``prepare`` / ``fixture`` / ``read_input`` / ``loss`` are callables,
    ``splits`` are two split names, ``model`` / ``head`` / ``input_stage`` and ``metrics`` are
    registered names (strings). The conformance kit builds the task end to end.
    Reference with examples and messages: ``docs/hooks.md``.
    """


@hookspec
def register_datasets(register):
    """Register dataset factories: ``register(Factory(name, target, description=..., **defaults))``.

    ``target`` is a callable or a ``"module:attr"`` string; called as
    ``factory(split=..., root=None, **kwargs)`` (``split`` one of the task's ``splits``, ``root``
    the ``--root`` folder, ``kwargs`` the task's dataset options) it returns a sequence
    (``len`` and indexing) of :class:`~fastai_sparse.geometry.PointCloud` or
    :class:`~fastai_sparse.geometry.Mesh`, read lazily for data on disk.
    ``get_dataset(name)`` returns the :class:`~fastai_sparse.registry.Factory`; a task names it
    with ``Task(dataset="name")``. See ``docs/disk-datasets.md``.
    """


@hookspec
def register_target_types(register):
    """Register target types beyond the built-in ones: ``register(TargetTypeClass)``.

    The class has a valid, unique ``name`` attribute (e.g. ``"instance-masks"``) and implements
    the :class:`fastai_sparse.targets.TargetType` interface: ``per`` (``"point"`` or
    ``"sample"``), ``num_outputs``, ``check(cloud)``, ``collate(clouds)``, ``loss_func()``,
    ``metrics`` (registered names) and ``decode(pred)``; optionally ``collate_inputs(clouds)``,
    ``check_output(out, x, y)`` and ``result_json(pred)``. ``get_target_type(name)`` returns the
    class; tasks hold instances. See ``docs/plugin-authoring.md`` (target types).
    """


@hookspec
def register_models(register):
    """Register model (backbone) factories: ``register(Factory("unet-m16", "pkg.mod:UNet", m=16))``.

    Called as ``factory(in_channels=C, **defaults, **task.model_kwargs)``, the factory returns a
    ``torch.nn.Module`` mapping a :class:`~fastai_sparse.engine.SparseTensor` to a SparseTensor,
    with an ``out_channels`` attribute equal to its output's channels. Under a per-voxel head
    (segmentation) the output must hold the input's voxels, in their order, at stride 1: the
    conformance kit checks it, and a model that breaks it stops with a ShapeError naming the
    backbone. ``fastai-sparse models`` lists them with parameter counts. See ``docs/plugin-authoring.md`` (backbones and heads).
    """


@hookspec
def register_heads(register):
    """Register heads: ``register(Factory("seg-linear", "pkg.mod:SegmentationHead"))``.

    Called as ``factory(in_channels=C, num_outputs=K, **defaults, **task.head_kwargs)`` (``C`` the
    backbone's ``out_channels``, ``K`` the target type's ``num_outputs``), the head maps the
    backbone's SparseTensor to per-voxel outputs [M, K] (attribute ``per = "voxel"``, mapped to
    every point by the model) or per-sample outputs [B, K] (``per = "sample"``); with
    ``needs_batch = True`` it is called as ``head(x, batch)``. See ``docs/plugin-authoring.md`` (backbones and heads).
    """


@hookspec
def register_metrics(register):
    """Register metric factories: ``register(Factory("miou", "pkg.mod:miou"))``.

    Called as ``factory(target_type)``, the factory returns a fastai ``Metric`` that
    accumulates over the whole epoch (``reset()``, ``accumulate(learn)``, ``value``; never a
    mean of per-batch values), e.g. a :class:`fastai_sparse.metrics.ConfusionMetric` subclass
    with ``compute(cm)``, or a plain function ``f(pred, targ)``, which becomes a
    :class:`~fastai_sparse.metrics.FunctionMetric`. A function of ``(pred, targ)`` registered as
    the factory itself is refused at registration; wrap it with
    :func:`fastai_sparse.metrics.function_metric`. See ``docs/plugin-authoring.md`` (metrics).
    """


@hookspec
def register_backends(register):
    """Register sparse convolution backends: ``register(backend)``.

    ``backend`` is a :class:`fastai_sparse.engine.backends.Backend` instance with a unique
    ``name`` (``torch``, ``spconv``, ``scn``) and an ``available()`` method, or a
    ``Factory(name, "module:BackendClass")`` that builds one on first use (so registering
    does not import torch); it is chosen with ``backend=`` arguments or the
    ``FASTAI_SPARSE_BACKEND`` environment variable. The registry adds plugin backends to the
    engine's table (:func:`fastai_sparse.engine.backends.add_backend`) when it loads the
    plugins. See ``docs/plugin-authoring.md`` (backbones and heads).
    """


@hookspec
def register_commands(cli):
    """Add subcommands to the ``fastai-sparse`` command: ``cli`` is its ``click.Group``.

    Example::

        @hookimpl
        def register_commands(cli):
            @cli.group()
            def scannet():
                "ScanNet tools."

    Called when the command line is built. A plugin whose hook raises is reported by
    ``fastai-sparse plugins`` and its commands are missing; the rest of the CLI works. Import
    heavy modules inside the commands, so ``fastai-sparse --help`` stays fast.
    """
