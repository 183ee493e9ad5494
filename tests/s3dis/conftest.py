from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastai_sparse_s3dis", reason="the fastai-sparse-s3dis plugin is not installed")


@pytest.fixture(scope="session")
def s3dis_root(tmp_path_factory) -> Path:
    """A small S3DIS download shared by read-only tests: nine rooms in the six areas, both known
    defects (the NUL early in hallway_6's ceiling), five uncovered points per room."""
    from fastai_sparse_s3dis.fixtures import make_fixture

    return make_fixture(tmp_path_factory.mktemp("s3dis") / "root", points=1200, hallway6_line=50, extra=5)


@pytest.fixture
def fresh_root(tmp_path) -> Path:
    """A small S3DIS download a test may modify (no defects, no uncovered points)."""
    from fastai_sparse_s3dis.fixtures import make_fixture

    rooms = {"Area_1": ["office_1"], "Area_2": ["office_2"], "Area_5": ["office_5", "hallway_1"]}
    return make_fixture(tmp_path / "root", rooms=rooms, points=600, defects=())


def base(root: Path) -> Path:
    return root / "Stanford3dDataset_v1.2_Aligned_Version"
