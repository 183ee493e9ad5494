from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastai_sparse_scannet", reason="the fastai-sparse-scannet plugin is not installed")

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "scannet"


@pytest.fixture(scope="session")
def scannet_root(tmp_path_factory) -> Path:
    """A tiny ScanNet root shared by read-only tests (2 train, 1 val, 1 test scene)."""
    from fastai_sparse_scannet.fixtures import make_fixture

    return make_fixture(tmp_path_factory.mktemp("scannet") / "root", vertices=1500)


@pytest.fixture
def fresh_root(tmp_path) -> Path:
    """A tiny ScanNet root a test may modify."""
    from fastai_sparse_scannet.fixtures import make_fixture

    return make_fixture(tmp_path / "root", vertices=800)


@pytest.fixture
def real_scannet() -> Path:
    if not (REAL / "scans" / "scene0000_00").is_dir():
        pytest.skip(f"real ScanNet sample not found at {REAL}")
    return REAL
