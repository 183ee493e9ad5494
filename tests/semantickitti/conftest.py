from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip(
    "fastai_sparse_semantickitti", reason="the fastai-sparse-semantickitti plugin is not installed"
)

#: The real sample folder (../shared/data/real next to the project root; FASTAI_SPARSE_REAL_DATA
#: points elsewhere, e.g. from a worktree).
REAL = Path(
    os.environ.get("FASTAI_SPARSE_REAL_DATA")
    or Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
)
REAL_SCAN = REAL / "kitti" / "000000.bin"
REAL_POINTS = 123_389


@pytest.fixture(scope="session")
def kitti_root(tmp_path_factory) -> Path:
    """A tiny SemanticKITTI root shared by read-only tests: every sequence 00-21, 1 scan each
    (2 in 00, 08 and 11), about 1500 points per scan."""
    from fastai_sparse_semantickitti.fixtures import make_fixture

    return make_fixture(
        tmp_path_factory.mktemp("semantickitti") / "root", scans={"00": 2, "08": 2, "11": 2}, points=1500
    )


@pytest.fixture
def small_root(tmp_path) -> Path:
    """A root a test may damage: sequences 00, 08 and 11 only (pass ``sequences=``), 600 points a scan."""
    from fastai_sparse_semantickitti.fixtures import make_fixture

    return make_fixture(tmp_path / "root", scans={"00": 2}, points=600, sequences=[0, 8, 11])


@pytest.fixture
def real_scan() -> Path:
    if not REAL_SCAN.is_file():
        pytest.skip(f"real KITTI scan not found at {REAL_SCAN}")
    return REAL_SCAN


@pytest.fixture(scope="session")
def small_task():
    """semantickitti-seg with core's small UNet, so CPU tests train in seconds (same data,
    transforms, voxelizer, classes and output format as the registered task)."""
    from fastai_sparse_semantickitti.tasks import seg_task

    return seg_task(model="unet-small")
