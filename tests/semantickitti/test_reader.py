"""Scan and label files: exact round trips, the real KITTI scan, fixture scans that look like it,
and the voxelizer on sensor-frame coordinates (negative, 160 m across)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastai_sparse import DataFormatError, Voxelizer
from fastai_sparse.geometry import PointCloud
from fastai_sparse_semantickitti.fixtures import SENSOR_HEIGHT, synthetic_scan
from fastai_sparse_semantickitti.reader import (
    SPLITS,
    list_scans,
    pack_labels,
    read_label,
    read_scan,
    split_sequences,
    unpack_labels,
    write_label,
    write_scan,
)

from .conftest import REAL_POINTS


def test_splits_are_the_official_ones():
    assert split_sequences("train") == ("00", "01", "02", "03", "04", "05", "06", "07", "09", "10")
    assert split_sequences("valid") == split_sequences("val") == ("08",)
    assert split_sequences("test") == tuple(f"{i}" for i in range(11, 22))
    assert sorted(sum(SPLITS.values(), ())) == list(range(22))
    with pytest.raises(ValueError, match="unknown SemanticKITTI split"):
        split_sequences("training")


def test_label_packing_round_trip():
    rng = np.random.default_rng(0)
    sem = np.concatenate([[0, 65535, 252, 40], rng.integers(0, 65536, 1000)])
    inst = np.concatenate([[65535, 0, 7, 1], rng.integers(0, 65536, 1000)])
    packed = pack_labels(sem, inst)
    assert packed.dtype == np.uint32
    # the documented layout: semantic in the lower 16 bits, instance in the upper 16
    assert packed[0] == 0xFFFF0000 and packed[1] == 0x0000FFFF and packed[2] == (7 << 16) + 252
    s, i = unpack_labels(packed)
    np.testing.assert_array_equal(s, sem)
    np.testing.assert_array_equal(i, inst)
    with pytest.raises(DataFormatError, match=r"semantic ids span 0..65536"):
        pack_labels(np.array([0, 65536]))
    with pytest.raises(DataFormatError, match=r"instance ids span -1..0"):
        pack_labels(np.array([1, 2]), np.array([-1, 0]))


def test_scan_and_label_files_are_bit_exact(tmp_path):
    xyz, rem, sem, inst = synthetic_scan(3, points=800)
    f = write_scan(tmp_path / "velodyne" / "000000.bin", xyz, rem)
    g = write_label(tmp_path / "labels" / "000000.label", sem, inst)
    # the files are exactly the arrays: float32 x, y, z, remission rows; uint32 labels
    raw = np.fromfile(f, dtype="<f4").reshape(-1, 4)
    np.testing.assert_array_equal(raw[:, :3], xyz)
    np.testing.assert_array_equal(raw[:, 3], rem)
    assert f.stat().st_size == 16 * len(xyz) and g.stat().st_size == 4 * len(xyz)
    np.testing.assert_array_equal(np.fromfile(g, dtype="<u4"), (inst.astype(np.uint32) << 16) | sem)
    x2, r2 = read_scan(f)
    s2, i2 = read_label(g, len(x2), scan=f)
    np.testing.assert_array_equal(x2, xyz)
    np.testing.assert_array_equal(r2, rem)
    np.testing.assert_array_equal(s2, sem)
    np.testing.assert_array_equal(i2, inst)
    assert x2.dtype == r2.dtype == np.float32 and s2.dtype == i2.dtype == np.uint16


def test_real_scan_reads(real_scan):
    xyz, rem = read_scan(real_scan)
    assert xyz.shape == (REAL_POINTS, 3) and rem.shape == (REAL_POINTS,)
    ref = np.fromfile(real_scan, dtype=np.float32).reshape(-1, 4)
    np.testing.assert_array_equal(xyz, ref[:, :3])
    np.testing.assert_array_equal(rem, ref[:, 3])


def _stats(xyz, rem):
    r = np.linalg.norm(xyz[:, :2], axis=1)
    hist, edges = np.histogram(xyz[:, 2], bins=np.arange(-3.0, 1.0, 0.05))
    return {
        "negative_on_every_axis": bool((xyz.min(0) < 0).all()),
        "max_range": float(r.max()),
        "ground_z": float(edges[hist.argmax()]),
        "remission_range": (float(rem.min()), float(rem.max())),
        "remission_steps": bool(np.allclose(rem * 100, np.round(rem * 100), atol=1e-3)),
    }


def test_fixture_scans_look_like_the_real_one(real_scan):
    real = _stats(*read_scan(real_scan))
    fake = _stats(*synthetic_scan(0, points=20000)[:2])
    for s in (real, fake):
        assert s["negative_on_every_axis"]
        assert 60 < s["max_range"] <= 80.5  # KITTI keeps returns up to 80 m
        assert abs(s["ground_z"] - (-SENSOR_HEIGHT)) < 0.2  # most returns from the road, 1.73 m below
        assert s["remission_range"][0] >= 0 and s["remission_range"][1] <= np.float32(0.99)
        assert s["remission_steps"]  # remission comes in steps of 0.01


def test_list_scans_pairs_scans_and_labels(kitti_root):
    scans = list_scans(kitti_root, ["00", "08"], labels=True)
    assert [s.id for s in scans] == ["00/000000", "00/000001", "08/000000", "08/000001"]
    assert scans[0].label == kitti_root / "sequences" / "00" / "labels" / "000000.label"
    test = list_scans(kitti_root, ["11"], labels=False)
    assert [s.label for s in test] == [None, None]
    # the root may also be the sequences folder itself
    assert list_scans(kitti_root / "sequences", ["08"], labels=True) == scans[2:]


# -- the voxelizer on sensor-frame coordinates ----------------------------------------------------
def _reference_voxels(xyz: np.ndarray, scale: float) -> np.ndarray:
    """floor(x * scale) of every coordinate, one Python float at a time (no numpy rounding)."""
    return np.array([[math.floor(float(v) * scale) for v in p] for p in xyz.astype(np.float64)], np.int64)


def test_voxelizer_handles_negative_coordinates_exactly():
    # points on both sides of 0 and of voxel borders, at 5 cm voxels: -0.01 and +0.01 must land in
    # different voxels (truncation toward zero would merge them), -0.051 and -0.049 too
    xyz = np.array(
        [[-0.01, 0.01, 0.0], [0.01, 0.01, 0.0], [-0.051, -0.049, -1.73], [-0.049, -0.051, -1.73],
         [-79.99, 79.99, -27.6], [79.99, -79.99, 2.9], [-0.0, 0.0, 0.0]],
        np.float32,
    )  # fmt: skip
    vox = Voxelizer(scale=20, features=("ones",), full_scale=8192, origin="min")
    sample = vox(PointCloud(xyz))
    ref = _reference_voxels(xyz, 20)
    shifted = ref - ref.min(0)
    np.testing.assert_array_equal(sample.coords[sample.inverse], shifted)
    assert len({tuple(r) for r in ref}) == len(sample.coords) == 6  # -0.0 and 0.0 share a voxel
    assert sample.inverse[0] != sample.inverse[1]


def test_voxelizer_on_random_outdoor_points_matches_a_reference():
    rng = np.random.default_rng(0)
    n = 3000
    ang, r = rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 80, n)
    xyz = np.stack([r * np.cos(ang), r * np.sin(ang), rng.uniform(-28, 3, n)], 1).astype(np.float32)
    xyz[:50] = np.round(xyz[:50] * 20) / 20  # exactly on voxel borders
    sample = Voxelizer(scale=20, features=(), full_scale=8192, origin="min")(PointCloud(xyz))
    ref = _reference_voxels(xyz, 20)
    np.testing.assert_array_equal(sample.coords[sample.inverse], ref - ref.min(0))
    assert sample.coords.min() >= 0 and sample.coords.max() < 8192
    assert len(sample.coords) == len(np.unique(ref, axis=0))


def test_voxelizer_extent_limits():
    # 400 m across at 5 cm is 8000 voxels: inside the task's 8192 grid, outside a 4096 one
    xyz = np.array([[-200, -1, -2], [199.9, 1, 2]], np.float32)
    sample = Voxelizer(scale=20, features=(), full_scale=8192, origin="min")(PointCloud(xyz))
    assert sample.coords[:, 0].tolist() == [0, 7997]
    with pytest.raises(DataFormatError, match=r"along x span 0..7997 at scale 20"):
        Voxelizer(scale=20, features=(), full_scale=4096, origin="min")(PointCloud(xyz))


def test_task_pipeline_keeps_every_point_of_the_real_scan(real_scan):
    from fastai_sparse_semantickitti.dataset import read_input
    from fastai_sparse_semantickitti.tasks import seg_task

    task = seg_task(model="unet-small")
    cloud = read_input(real_scan)
    ref = _reference_voxels(cloud.xyz, 20)
    n_vox = len(np.unique(ref, axis=0))
    v = task.pipeline(train=False)
    v.target_type = None  # no labels: prediction
    s = v(cloud, np.random.default_rng(0))
    assert len(s.inverse) == REAL_POINTS and len(s.coords) == n_vox
    np.testing.assert_array_equal(s.coords[s.inverse], ref - ref.min(0))
    assert s.feats.shape == (n_vox, 4) and np.isfinite(s.feats).all()
    # a training view (rotated, mirrored, scaled, jittered) of 160 m of scan stays in the grid
    t = task.pipeline(train=True)
    t.target_type = None
    for seed in range(3):
        s = t(cloud, np.random.default_rng(seed))
        assert len(s.inverse) == REAL_POINTS and s.coords.min() >= 0 and s.coords.max() < 8192
