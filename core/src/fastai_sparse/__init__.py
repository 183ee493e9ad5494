"""fastai-sparse: sparse convolutional networks on 3D data with fastai.

The public API. Heavy modules (torch, fastai) are imported on first use of a name that
needs them, so ``import fastai_sparse`` and ``fastai-sparse --help`` stay fast.

What is public (what plugins may use; ``tests/core/test_public_api.py`` checks every
installed plugin's imports against it):

- every name in ``fastai_sparse.__all__`` (``from fastai_sparse import Task, hookimpl``);
- the public modules below, and in each the names that do not start with an underscore:
  ``errors``, ``files``, ``cache``, ``geometry``, ``io``, ``transforms`` (and its modules
  ``transforms.compose``, ``.points``, ``.features``, ``.mesh``), ``voxelize``, ``batch``,
  ``targets``, ``spatial`` (``spatial.targets``, ``spatial.metrics``), ``engine``
  (``engine.backends``), ``models`` (``models.detection``, ``models.keypoints``), ``metrics``,
  ``registry``, ``learner``, ``prediction``, ``training``, ``testing``, ``threads``, ``viz``,
  ``config``, ``weights``, ``hub``, and ``clitypes`` for plugin subcommands (the parameter types
  ``InputFile``, ``WeightsFile``, ``ModelSource``, ``InputDir``, ``PositiveFloat`` and the options
  ``overwrite_option()``, ``threads_option()`` check inputs and outputs as core's commands do).

Everything else is private and may change without notice: ``builtin`` (core's own plugin:
use its registered datasets through ``get_dataset``), ``task`` (use ``fastai_sparse.Task``),
``hookspecs`` (use ``fastai_sparse.hookimpl``), ``plugins``, ``cli`` (the command itself: use
``clitypes`` to build a subcommand), the modules inside the
``io`` and ``learner`` packages (import their names from the package), and any name that
starts with an underscore.

Layers, lowest first (nothing imports upward): errors -> geometry, io -> transforms,
voxelize, batch -> engine -> models -> targets, spatial, metrics -> task, registry,
plugins -> learner, prediction, training -> cli. The engine and models need torch alone;
listing tasks and plugins needs neither torch nor fastai.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# OpenMP reads its wait policy once, when torch loads: on a busy machine waiting threads that
# sleep instead of spinning keep training from slowing tenfold; on an idle one they would only
# slow it (fastai_sparse.threads.wants_passive_wait). Before torch loads; a set value is kept;
# the load average alone (no measuring: importing does not wait).
from .threads import apply_wait_policy as _apply_wait_policy  # stdlib only: torch stays unloaded

_apply_wait_policy(measure=False)

# public name -> module that defines it
_LAZY = {
    # plugin system and registry
    "hookimpl": "hookspecs",
    "Factory": "registry",
    "get_task": "registry",
    "list_tasks": "registry",
    "get_dataset": "registry",
    "list_datasets": "registry",
    "get_model": "registry",
    "list_models": "registry",
    "get_head": "registry",
    "list_heads": "registry",
    "get_metric": "registry",
    "list_metrics": "registry",
    "get_backend": "registry",
    "list_backends": "registry",
    "get_target_type": "registry",
    "list_target_types": "registry",
    "reload_plugins": "registry",
    "Task": "task",
    "TaskOption": "task",
    # errors
    "FastaiSparseError": "errors",
    "UnknownNameError": "errors",
    "DuplicateNameError": "errors",
    "PluginError": "errors",
    "DataFormatError": "errors",
    "ShapeError": "errors",
    "ConformanceError": "errors",
    "CheckpointError": "errors",
    "UnsafeFileError": "errors",
    "ConfigError": "errors",
    "NonFiniteLossError": "errors",
    "EmptyDatasetError": "errors",
    "StaleCacheError": "errors",
    "OptionError": "errors",
    # data
    "PointCloud": "geometry",
    "Mesh": "geometry",
    "Boxes": "geometry",
    "Keypoints": "geometry",
    "load": "io",
    "save": "io",
    "Segmentation": "targets",
    "Classification": "targets",
    "Regression": "targets",
    "BoundingBoxes": "spatial.targets",
    "KeypointTarget": "spatial.targets",
    "Voxelizer": "voxelize",
    "SparseSample": "batch",
    "SamplePipeline": "batch",
    "collate": "batch",
    "VectorTarget": "spatial.targets",
    "unvoxelize": "voxelize",
    "split_batch": "batch",
    # fastai glue
    "sparse_dataloaders": "learner",
    "sparse_learner": "learner",
    "SparseLearner": "learner",
    "load_learner": "learner",
    "Prediction": "learner",
    "write_prediction": "learner",
    "Predictor": "prediction",
    "predict_files": "prediction",
    "train_task": "training",
    "from_pretrained": "hub",
    "run_demo": "demo",
    "set_threads": "threads",
}

# public submodules, importable as attributes (``fastai_sparse.viz``)
_SUBMODULES = {
    "errors",
    "files",
    "cache",
    "io",
    "viz",
    "transforms",
    "targets",
    "spatial",
    "engine",
    "models",
    "metrics",
    "learner",
    "testing",
    "voxelize",
    "batch",
    "geometry",
    "registry",
    "prediction",
    "training",
    "config",
    "weights",
    "hub",
    "threads",
    "clitypes",
}

__all__ = ["__version__", *_LAZY]


#: every public module (see the module docstring), relative to ``fastai_sparse``
_PUBLIC_MODULES = frozenset(
    _SUBMODULES
    | {
        "transforms.compose",
        "transforms.points",
        "transforms.features",
        "transforms.mesh",
        "spatial.targets",
        "spatial.metrics",
        "engine.backends",
        "models.detection",
        "models.keypoints",
    }
)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fastai_sparse' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)
