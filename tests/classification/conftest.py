"""Shared fixtures of the classification plugin tests (skip when the plugin is not installed)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

pytest.importorskip("fastai_sparse_classification", reason="fastai-sparse-classification is not installed")

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "modelnet"


@pytest.fixture
def real_modelnet() -> Path:
    if not REAL.is_dir():
        pytest.skip(f"real ModelNet samples not found at {REAL}")
    return REAL


@pytest.fixture(scope="session")
def fixture_roots(tmp_path_factory) -> dict[str, Path]:
    """One root per fixture layout (written once per session)."""
    from fastai_sparse_classification import make_fixture

    base = tmp_path_factory.mktemp("cls-fixtures")
    roots = {
        "modelnet-off": make_fixture(base / "off", "modelnet-off"),
        "modelnet-normal": make_fixture(base / "normal", "modelnet-normal"),
        "mesh-folder": make_fixture(base / "folder", "mesh-folder"),
        "mesh-folder-split": make_fixture(base / "folder-split", "mesh-folder", split_folders=True),
    }
    make_fixture(base / "off", "modelnet-off", variant="modelnet10")
    return roots


@pytest.fixture(autouse=True)
def _fixtures_hold_3_of_the_40_classes(request):
    """The ModelNet fixtures hold 3 of the ModelNet40 classes on purpose: the warning naming the
    37 others is silenced, except in tests that use ``class_warnings`` to check it."""
    if "class_warnings" in request.fixturenames:
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".* classes have training files")
        yield


@pytest.fixture
def class_warnings():
    """Keep the missing-classes warning (see ``_fixtures_hold_3_of_the_40_classes``)."""
