"""Shared pytest configuration: paths, plugin isolation, real-data location."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "real"
EXAMPLE_PLUGIN = ROOT / "tests" / "example_plugin"

os.environ.setdefault("MPLBACKEND", "Agg")

# The example plugin's own test file runs against the installed plugin, in a subprocess
# (tests/core/test_conformance.py); it is not collected as part of this tree.
collect_ignore = ["example_plugin"]


@pytest.fixture
def real_data() -> Path:
    """The folder of real sample files (../shared/data/real); skips when it is absent."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real sample data not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture
def fresh_registry(monkeypatch):
    """Reset the process-wide registry before and after a test (env var changes apply)."""
    from fastai_sparse import plugins, registry

    monkeypatch.setattr(registry, "_default", None)
    plugins.forget()
    yield registry
    registry._default = None
    plugins.forget()


@pytest.fixture(scope="session")
def example_plugin_dir(tmp_path_factory) -> Path:
    """The example third-party plugin, pip-installed into a temporary folder (not the venv).

    Add the folder to ``sys.path`` / ``PYTHONPATH`` to make its entry point visible.
    """
    target = tmp_path_factory.mktemp("example-plugin-install")
    build = tmp_path_factory.mktemp("example-plugin-src")
    # copy the sources so the build leaves no files in the repository
    import shutil

    src = build / "example_plugin"
    shutil.copytree(EXAMPLE_PLUGIN, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--target",
        str(target),
        str(src),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"installing the example plugin failed:\n{proc.stdout}\n{proc.stderr}")
    return target


@pytest.fixture
def example_plugin_on_path(example_plugin_dir, monkeypatch, fresh_registry):
    """The example plugin's install folder on sys.path, so its entry point is discovered."""
    import importlib

    monkeypatch.syspath_prepend(str(example_plugin_dir))
    importlib.invalidate_caches()
    yield example_plugin_dir
    sys.modules.pop("fastai_sparse_example", None)


#: The devices the engine, model, learner and prediction tests run on: always the CPU, and
#: CUDA when torch sees a GPU (the ``cuda`` cases skip with the reason otherwise).
DEVICES = ("cpu", "cuda")


def cuda_skip_reason() -> str | None:
    """Why the ``cuda`` cases cannot run here, or None when they can."""
    import torch

    if not torch.cuda.is_available():
        built = torch.version.cuda
        return (
            f"no CUDA device: torch {torch.__version__} (built for CUDA {built}) sees none"
            if built
            else f"no CUDA device: torch {torch.__version__} is a CPU-only build"
        )
    return None


@pytest.fixture(params=DEVICES)
def device(request):
    """``torch.device`` a test runs on: ``cpu``, and ``cuda`` when available (else skipped
    with the reason). A test that takes it builds its inputs and modules on that device."""
    import torch

    if request.param == "cuda":
        reason = cuda_skip_reason()
        if reason:
            pytest.skip(reason)
    return torch.device(request.param)
