"""Fixtures for the visualisation tests."""

import numpy as np
import pytest

from .viz_helpers import chromium_path


def pytest_runtest_setup(item):
    """``@pytest.mark.chromium`` tests need the browser: without it they are skipped, unless the
    run asked for exactly them (``pytest -m chromium``), which then fails instead of passing
    with nothing checked."""
    if item.get_closest_marker("chromium") is None or chromium_path() is not None:
        return
    message = "chromium not installed (apt-get install -y chromium)"
    if (item.config.getoption("markexpr") or "").strip() == "chromium":
        pytest.fail(f"{message}, but the browser tests were asked for with -m chromium")
    pytest.skip(message)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def batch3():
    """A hand-made collated batch of 3 samples with 4, 2 and 3 voxels and 6, 3 and 5 points.

    Per-point labels are chosen so the majority label of every voxel is known by hand.
    """
    import torch

    vox = [4, 2, 3]
    pts = [6, 3, 5]
    coords, feats, inverse = [], [], []
    voff = [0]
    for b, m in enumerate(vox):
        c = np.c_[np.full(m, b), np.arange(m) * 2, np.arange(m) % 2, np.full(m, b + 1)]
        coords.append(c)
        feats.append(np.linspace(-1, 1, m * 3).reshape(m, 3))
        voff.append(voff[-1] + m)
    # local voxel of each point, per sample
    local = [np.array([0, 0, 1, 2, 3, 3]), np.array([0, 1, 1]), np.array([0, 1, 2, 2, 2])]
    labels = [np.array([1, 1, 2, 0, -100, 3]), np.array([4, 2, 2]), np.array([-100, 1, 0, 0, 1])]
    expected_voxel_labels = [np.array([1, 2, 0, 3]), np.array([4, 2]), np.array([-100, 1, 0])]
    for b in range(3):
        inverse.append(local[b] + voff[b])
    x = {
        "coords": torch.as_tensor(np.concatenate(coords), dtype=torch.int32),
        "feats": torch.as_tensor(np.concatenate(feats), dtype=torch.float32),
        "inverse": torch.as_tensor(np.concatenate(inverse), dtype=torch.int64),
        "voxel_offsets": torch.as_tensor(voff, dtype=torch.int64),
        "point_offsets": torch.as_tensor(np.r_[0, np.cumsum(pts)], dtype=torch.int64),
    }
    y = torch.as_tensor(np.concatenate(labels), dtype=torch.int64)
    return {"x": x, "y": y, "vox": vox, "pts": pts, "voxel_labels": expected_voxel_labels, "local": local}
