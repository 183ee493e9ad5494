"""The two extension points for per-sample inputs: ``collate_inputs`` on a target type and
``needs_batch`` heads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastai_sparse import PointCloud, Segmentation, Voxelizer
from fastai_sparse.batch import SamplePipeline, collate
from fastai_sparse.errors import ShapeError
from fastai_sparse.models import SparseModel, UNet


class CategorySegmentation(Segmentation):
    """Segmentation whose batches also carry each sample's category."""

    def collate_inputs(self, clouds):
        return {"category": torch.tensor([c.meta["category"] for c in clouds])}


class MaskedHead(torch.nn.Module):
    """Logits of class ``c`` kept only for samples whose category allows it."""

    per = "voxel"
    needs_batch = True

    def __init__(self, in_channels, allowed):
        super().__init__()
        self.linear = torch.nn.Linear(in_channels, allowed.shape[1])
        self.allowed = allowed  # bool [categories, classes]

    def forward(self, x, batch):
        logits = self.linear(x.feats)
        sample_of_voxel = x.coords[:, 0].long()
        mask = self.allowed[batch["category"][sample_of_voxel]]
        return logits.masked_fill(~mask, float("-inf"))


def clouds():
    rng = np.random.default_rng(0)
    return [
        PointCloud(
            rng.uniform(0, 1, (50, 3)),
            {"labels": rng.integers(0, 2, 50) + 2 * cat, "ones": np.ones((50, 1))},
            meta={"category": cat},
        )
        for cat in (0, 1, 1)
    ]


def test_collate_inputs_join_the_batch_and_needs_batch_heads_receive_it():
    target = CategorySegmentation(4)
    pipe = SamplePipeline(None, Voxelizer(scale=8, features=("ones",)), target)
    x, _ = collate([pipe(c, np.random.default_rng(0)) for c in clouds()], target)
    assert x["category"].tolist() == [0, 1, 1]
    allowed = torch.tensor([[True, True, False, False], [False, False, True, True]])
    model = SparseModel(UNet(1, m=4, levels=2), MaskedHead(4, allowed))
    out = model(x)
    assert out.shape == (150, 4)
    pred = out.argmax(1)
    assert (pred[:50] < 2).all() and (pred[50:] >= 2).all()


def test_collate_inputs_may_not_overwrite_batch_fields():
    class Bad(Segmentation):
        def collate_inputs(self, clouds):
            return {"feats": torch.zeros(1)}

    target = Bad(4)
    pipe = SamplePipeline(None, Voxelizer(scale=8, features=("ones",)), target)
    with pytest.raises(ShapeError, match="'feats', which is already a batch field"):
        collate([pipe(c, np.random.default_rng(0)) for c in clouds()], target)
