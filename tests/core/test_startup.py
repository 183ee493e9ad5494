"""Start-up stays light and the layers stay separate, checked in fresh subprocesses with every
installed plugin:

- ``import fastai_sparse``, ``fastai-sparse --help``, ``tasks``, ``plugins`` and ``list KIND``
  (every kind but ``backends``, whose "available" column imports each backend) load neither
  torch, fastai nor scipy (plugins must import heavy modules lazily);
- building engine layers and models loads nothing from the registry, the plugins, pluggy,
  fastai or scipy.

Speed is measured in ``benchmarks/bench_startup.py``, not here."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = """
import sys
{code}
heavy = sorted(m for m in ("torch", "fastai", "scipy", "plotly", "matplotlib") if m in sys.modules)
print("HEAVY:" + ",".join(heavy))
"""


def run(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", CHECK.format(code=code)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("HEAVY:")[-1].strip()


CLI = """
import sys
from fastai_sparse.cli import main
try:
    main({args!r}, prog_name="fastai-sparse")
except SystemExit as e:
    assert not e.code, f"exit code {{e.code}}"
"""

#: modules a layer or model must not pull in (the registry side and the training side)
NOT_IN_MODELS = (
    "pluggy",
    "scipy",
    "fastai",
    "fastai_sparse.registry",
    "fastai_sparse.plugins",
    "fastai_sparse.hookspecs",
    "fastai_sparse.builtin",
    "fastai_sparse.learner",
)


def loaded(code: str, prefixes: tuple[str, ...], plugins: bool = True) -> list[str]:
    """Modules (or packages) among ``prefixes`` (and, with ``plugins``, from a plugin
    distribution ``fastai_sparse_*``) in ``sys.modules`` after ``code`` ran in a fresh interpreter."""
    check = (
        code
        + "\nimport sys\n"
        + f"bad = sorted(m for m in sys.modules if ({plugins!r} and m.split('.')[0].startswith('fastai_sparse_')) "
        + f"or any(m == p or m.startswith(p + '.') for p in {prefixes!r}))\n"
        + "print('LOADED:' + ','.join(bad))"
    )
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [m for m in proc.stdout.split("LOADED:")[-1].strip().split(",") if m]


def test_import_is_light():
    assert run("import fastai_sparse; fastai_sparse.hookimpl; fastai_sparse.Factory") == ""


def test_help_is_light_with_every_installed_plugin():
    code = (
        "from fastai_sparse.cli import main\n"
        "try:\n    main(['--help'], prog_name='fastai-sparse')\nexcept SystemExit:\n    pass"
    )
    assert run(code) == ""


def test_training_errors_live_in_errors_without_fastai():
    code = (
        "from fastai_sparse.errors import CheckpointError, EmptyDatasetError, NonFiniteLossError\n"
        "from fastai_sparse import CheckpointError as C2, NonFiniteLossError as N2, EmptyDatasetError as E2\n"
        "assert (C2, N2, E2) == (CheckpointError, NonFiniteLossError, EmptyDatasetError)"
    )
    assert run(code) == ""


def test_training_errors_keep_their_learner_import_path():
    from fastai_sparse import errors, learner

    for name in ("CheckpointError", "EmptyDatasetError", "NonFiniteLossError"):
        assert getattr(learner, name) is getattr(errors, name)
        assert issubclass(getattr(errors, name), errors.FastaiSparseError)


LIGHT_COMMANDS = [
    ["tasks"],
    ["plugins"],
    ["plugins", "--json"],
    ["list", "tasks"],
    ["list", "datasets"],
    ["list", "models"],
    ["list", "heads"],
    ["list", "metrics"],
    ["list", "target-types"],
]


@pytest.mark.parametrize("args", LIGHT_COMMANDS, ids=" ".join)
def test_listing_commands_are_light_with_every_installed_plugin(args):
    proc = subprocess.run(
        [sys.executable, "-c", CHECK.format(code=CLI.format(args=args))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    listing, heavy = proc.stdout.split("HEAVY:")
    assert listing.strip(), f"fastai-sparse {' '.join(args)} printed nothing"
    assert heavy.strip() == "", f"fastai-sparse {' '.join(args)} imported {heavy.strip()}"


def test_listing_builds_every_task_without_torch():
    # the registry builds each plugin's Task objects (targets, transforms, voxelizers) here
    code = "from fastai_sparse import list_tasks, get_task\nassert [get_task(n) for n in list_tasks()]"
    assert run(code) == ""


@pytest.mark.parametrize(
    "code",
    [
        "from fastai_sparse.engine import SubMConv3d\nSubMConv3d(3, 4)",
        "from fastai_sparse.engine import SparseConv3d, SparseInverseConv3d\n"
        "SparseConv3d(3, 4, 2, 2)\nSparseInverseConv3d(4, 3, 2, 2)",
        "from fastai_sparse.models import UNet, SparseResNet, SegmentationHead, PoolHead, VFE\n"
        "UNet(3, m=8, levels=3)\nSparseResNet(3)",
        "from fastai_sparse.models.detection import CenterHead\n"
        "from fastai_sparse.models.keypoints import VoteKeypointHead",
    ],
    ids=["submconv", "strided", "models", "spatial-heads"],
)
def test_engine_and_models_stand_on_torch_alone(code):
    assert loaded(code, NOT_IN_MODELS) == []


def test_engine_resolves_backends_without_the_registry():
    # the default, a built-in name and the environment variable all come from the engine's table
    code = (
        "import os\nos.environ['FASTAI_SPARSE_BACKEND'] = 'torch'\n"
        "from fastai_sparse.engine.backends import resolve_backend\n"
        "assert resolve_backend().name == 'torch'\nassert resolve_backend('torch').name == 'torch'"
    )
    assert loaded(code, NOT_IN_MODELS) == []


def test_default_registry_does_not_load_the_engine_without_plugin_backends():
    # the built-in backends are registered as factories, so listing them loads no engine
    code = (
        "from fastai_sparse import list_backends\nassert {'torch', 'spconv', 'scn'} <= set(list_backends())"
    )
    assert loaded(code, ("fastai_sparse.engine", "torch"), plugins=False) == []
