"""SparseSample, SamplePipeline, collate and split_batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastai_sparse.batch import SamplePipeline, SparseSample, collate, split_batch
from fastai_sparse.errors import DataFormatError, ShapeError
from fastai_sparse.geometry import PointCloud
from fastai_sparse.targets import Segmentation
from fastai_sparse.transforms import Compose, ElasticDistortion, FitToGrid, RandomRotate, Scale, sample_rng
from fastai_sparse.voxelize import Voxelizer


def seg_cloud(n, seed, k=4):
    rng = np.random.default_rng(seed)
    return PointCloud(
        rng.uniform(0, 3, size=(n, 3)), {"rgb": rng.uniform(0, 255, (n, 3)), "labels": rng.integers(0, k, n)}
    )


def test_collate_offsets_and_batch_index_on_three_samples_including_a_single_point():
    vox = Voxelizer(scale=2.0, features=("rgb",))
    samples = [vox(seg_cloud(50, 0)), vox(seg_cloud(1, 1)), vox(seg_cloud(30, 2))]
    x, y = collate(samples, Segmentation(4))
    m = [s.num_voxels for s in samples]
    n = [s.num_points for s in samples]
    assert m[1] == 1 and n[1] == 1
    assert x["voxel_offsets"].tolist() == [0, m[0], m[0] + 1, sum(m)]
    assert x["point_offsets"].tolist() == [0, 50, 51, 81]
    assert x["coords"].dtype == torch.int32 and x["coords"].shape == (sum(m), 4)
    assert x["coords"][:, 0].tolist() == [0] * m[0] + [1] + [2] * m[2]
    assert x["feats"].dtype == torch.float32 and x["inverse"].dtype == torch.int64
    # global inverse: each point's row holds its own voxel's coords and batch index
    for b, s in enumerate(samples):
        rows = x["inverse"][x["point_offsets"][b] : x["point_offsets"][b + 1]]
        np.testing.assert_array_equal(x["coords"][rows, 1:].numpy(), s.coords[s.inverse])
        assert (x["coords"][rows, 0] == b).all()
    assert y.dtype == torch.int64 and y.shape == (81,)
    np.testing.assert_array_equal(y[50:51].numpy(), samples[1].cloud.attrs["labels"])
    assert "point_feats" not in x


def test_split_batch_per_point_voxel_and_sample():
    vox = Voxelizer(scale=2.0, features=("rgb",))
    samples = [vox(seg_cloud(50, 0)), vox(seg_cloud(1, 1)), vox(seg_cloud(30, 2))]
    x, _ = collate(samples)
    pts = split_batch(x, torch.arange(81))
    assert [len(p) for p in pts] == [50, 1, 30] and pts[1].tolist() == [50]
    vx = split_batch(x, x["feats"])
    for s, v in zip(samples, vx):
        np.testing.assert_array_equal(v.numpy(), s.feats)
    assert len(split_batch(x, torch.zeros(3, 5))) == 3
    with pytest.raises(ShapeError, match="rows"):
        split_batch(x, torch.zeros(7, 2))


def test_pipeline_reproducible_and_checks_targets():
    pipe = SamplePipeline(
        Compose([Scale(20), RandomRotate(), ElasticDistortion(2, 4), FitToGrid(4096)]),
        Voxelizer(scale=1.0, features=("rgb",), origin="none"),
        Segmentation(4),
        point_features=("rgb", "ones"),
    )
    c = seg_cloud(500, 0)
    a, b, other = pipe(c, sample_rng(1, 2, 3)), pipe(c, sample_rng(1, 2, 3)), pipe(c, sample_rng(1, 2, 4))
    np.testing.assert_array_equal(a.coords, b.coords)
    np.testing.assert_array_equal(a.feats, b.feats)
    np.testing.assert_array_equal(a.inverse, b.inverse)
    assert a.coords.shape != other.coords.shape or not np.array_equal(a.coords, other.coords)
    assert a.point_feats.shape == (500, 4)
    x, _ = collate([a, other], pipe.target_type)
    assert x["point_feats"].shape == (1000, 4)
    bad = c.with_attrs(labels=np.full(500, 9))
    with pytest.raises(DataFormatError, match="label 9"):
        pipe(bad, sample_rng(0))
    assert "SamplePipeline(" in repr(pipe) and "Voxelizer(" in repr(pipe)


def test_sparse_sample_shape_checks_and_collate_errors():
    c = seg_cloud(3, 0)
    with pytest.raises(ShapeError, match="inverse"):
        SparseSample(np.zeros((1, 3), np.int32), np.zeros((1, 3), np.float32), np.zeros(2, np.int64), c)
    a = Voxelizer(features=("rgb",))(c)
    b = Voxelizer(features=("ones",))(c)
    with pytest.raises(ShapeError, match="feature widths"):
        collate([a, b])
    with pytest.raises(ValueError):
        collate([])
