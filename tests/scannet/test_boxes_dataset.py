"""Instance boxes against a hand-computed scene; the dataset from cache and from raw files."""

from __future__ import annotations

import numpy as np
import pytest

from fastai_sparse.geometry import Boxes, PointCloud
from fastai_sparse_scannet.boxes import align_points, instance_boxes
from fastai_sparse_scannet.dataset import ScanNetScenes
from fastai_sparse_scannet.fixtures import write_label_table, write_scene
from fastai_sparse_scannet.prepare import prepare


@pytest.fixture
def hand_root(tmp_path):
    """One scene: a chair (2 segments), a wall (1 segment, not a detection class), a trash can,
    and a stray vertex in no object; raw coordinates are the aligned ones rotated 90 degrees
    about z and shifted by (10, 20, 0)."""
    aligned = np.array(
        [
            [1, 1, 0], [2, 1, 0], [1, 3, 0], [2, 3, 1.5],  # chair: x 1..2, y 1..3, z 0..1.5
            [0, 0, 0], [0, 5, 0], [0, 5, 2.5],  # wall
            [4, 4, 0], [4.5, 4.25, 0.5],  # trash can: x 4..4.5, y 4..4.25, z 0..0.5
            [3, 3, 3],  # unannotated
        ],
        float,
    )  # fmt: skip
    rot = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], float)
    raw = aligned @ rot.T + [10, 20, 0]
    align = np.eye(4)
    align[:3, :3] = rot.T
    align[:3, 3] = -rot.T @ [10, 20, 0]
    segs = np.array([7, 7, 8, 8, 3, 3, 3, 11, 11, 12])
    nyu40 = np.array([5, 5, 5, 5, 1, 1, 1, 39, 39, 0])
    groups = [
        {"objectId": 0, "label": "wall", "segments": [3]},
        {"objectId": 1, "label": "chair", "segments": [7, 8]},
        {"objectId": 2, "label": "trash can", "segments": [11]},
    ]
    root = tmp_path / "root"
    write_scene(root / "scans" / "scene0042_00", raw, np.full((10, 3), 128, np.uint8),
                np.array([[0, 1, 2], [4, 5, 6]]), nyu40=nyu40, segs=segs, groups=groups, axis_align=align)  # fmt: skip
    write_label_table(root / "scannetv2-labels.combined.tsv")
    (root / "scannetv2_train.txt").write_text("scene0042_00\n")
    (root / "scannetv2_val.txt").write_text("scene0042_00\n")
    return root


def test_boxes_hand_computed(hand_root):
    ds = ScanNetScenes(hand_root, "train", boxes=True)
    cloud = ds[0]
    b = cloud.target
    assert isinstance(b, Boxes) and len(b) == 2  # the wall is not a detection class
    # chair: detection class 2 (cabinet 0, bed 1, chair 2); garbagebin (NYU40 39): class 17
    np.testing.assert_array_equal(b.labels, [2, 17])
    np.testing.assert_allclose(b.centers, [[1.5, 2.0, 0.75], [4.25, 4.125, 0.25]], atol=1e-5)
    np.testing.assert_allclose(b.sizes, [[1.0, 2.0, 1.5], [0.5, 0.25, 0.5]], atol=1e-5)
    np.testing.assert_array_equal(b.yaw, [0, 0])
    np.testing.assert_array_equal(cloud.attrs["instance"], [1, 1, 1, 1, 0, 0, 0, 2, 2, -1])


def test_align_points_and_instance_boxes_direct():
    m = np.eye(4)
    m[:3, 3] = [1, 2, 3]
    np.testing.assert_allclose(align_points(np.zeros((2, 3)), m), [[1, 2, 3], [1, 2, 3]])
    c, s, lab, ids = instance_boxes(np.array([[0, 0, 0], [2, 4, 6.0]]), np.array([5, 5]), {5: 3, 6: 4})
    np.testing.assert_allclose(c, [[1, 2, 3]])
    np.testing.assert_allclose(s, [[2, 4, 6]])
    assert lab.tolist() == [0] and ids.tolist() == [5]  # object 6 has no vertices: no box


def test_fixture_boxes_match_generator(tmp_path):
    from fastai_sparse_scannet.fixtures import make_scene

    root = tmp_path / "r"
    truth = make_scene(root / "scans" / "scene0000_00", vertices=1500, seed=3)
    write_label_table(root / "scannetv2-labels.combined.tsv")
    b = ScanNetScenes(root, "train", scenes=["scene0000_00"], boxes=True)[0].target
    want = {"bed": 1, "table": 4, "chair": 2, "cabinet": 0, "trash can": 17}  # pillow is not a class
    assert sorted(b.labels.tolist()) == sorted(want.values())
    for cat, lo, hi in truth["boxes"]:
        if cat not in want:
            continue
        k = int(np.flatnonzero(b.labels == want[cat])[0])
        np.testing.assert_allclose(b.centers[k], (lo + hi) / 2, atol=1e-4)
        np.testing.assert_allclose(b.sizes[k], hi - lo, atol=1e-4)


def test_dataset_cache_equals_raw(scannet_root, tmp_path):
    raw = ScanNetScenes(scannet_root, "train", cache=tmp_path / "none")
    prepare(scannet_root, out=tmp_path / "c", jobs=1, quiet=True)
    cached = ScanNetScenes(scannet_root, "train", cache=tmp_path / "c")
    assert len(raw) == len(cached) == 2
    for a, b in zip(raw, cached):
        assert isinstance(a, PointCloud) and a.meta["id"] == b.meta["id"]
        assert a.meta["path"].endswith("_vh_clean_2.ply")
        np.testing.assert_array_equal(a.xyz, b.xyz)
        for k in ("rgb", "labels", "instance"):
            np.testing.assert_array_equal(a.attrs[k], b.attrs[k])
        assert a.attrs["labels"].dtype == np.int64 and a.attrs["rgb"].dtype == np.uint8
        assert set(np.unique(a.attrs["labels"])) <= set(range(20)) | {-100}
    valid = ScanNetScenes(scannet_root, "valid")
    assert valid.scenes == ["scene0002_00"]
    test = ScanNetScenes(scannet_root, "test")[0]
    assert "labels" not in test.attrs and test.meta["id"] == "scene0707_00"


def test_dataset_missing_scene_folder(scannet_root, tmp_path):
    from fastai_sparse.errors import DataFormatError

    with pytest.raises(DataFormatError, match="scene0123_00"):
        ScanNetScenes(scannet_root, "train", scenes=["scene0123_00"], cache=tmp_path)
