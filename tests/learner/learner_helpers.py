"""Small hand-made data, pipelines and models for the learner tests (importable, so exported
learners can pickle references to them)."""

from __future__ import annotations

import numpy as np
import torch

from fastai_sparse.batch import SamplePipeline
from fastai_sparse.geometry import PointCloud
from fastai_sparse.targets import Segmentation
from fastai_sparse.voxelize import Voxelizer

CLASSES = ["low", "high"]


def seg_target():
    """The real segmentation target type: a broken ``fastai_sparse.targets`` fails these tests."""
    return Segmentation(CLASSES)


def make_cloud(seed: int, n: int = 300, labels: bool = True, rgb: bool = True) -> PointCloud:
    """Points in a 1 m box; label 1 above z = 0.5, and a colour telling the label apart."""
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(0, 1, (n, 3)).astype(np.float32)
    lab = (xyz[:, 2] > 0.5).astype(np.int64)
    attrs = {}
    if rgb:
        attrs["rgb"] = np.where(lab[:, None] == 1, [200.0, 40.0, 40.0], [40.0, 40.0, 200.0]).astype(
            np.float32
        )
        attrs["rgb"] += rng.normal(0, 10, (n, 3)).astype(np.float32)
    if labels:
        attrs["labels"] = lab
    return PointCloud(xyz, attrs, meta={"id": f"cloud{seed}"})


class Jitter:
    """Training noise: Gaussian jitter of the coordinates (draws only from rng)."""

    def __init__(self, sigma=0.01):
        self.sigma = sigma

    def __call__(self, cloud, rng=None):
        rng = np.random.default_rng() if rng is None else rng
        d = rng.normal(0, self.sigma, (1, 3))
        return cloud.map_points(lambda p: p + d, np.eye(3))


class ScaleColours:
    """Colours to [-1, 1] (needs "rgb")."""

    def __call__(self, cloud, rng=None):
        return cloud.with_attrs(rgb=cloud.attrs["rgb"] / 127.5 - 1)


class Chain:
    def __init__(self, *tfms):
        self.tfms = tfms

    def __call__(self, cloud, rng=None):
        for t in self.tfms:
            cloud = t(cloud, rng)
        return cloud


def pipelines(target, scale=8.0):
    vox = Voxelizer(scale=scale, features=("rgb",))
    train = SamplePipeline(Chain(Jitter(), ScaleColours()), vox, target)
    valid = SamplePipeline(Chain(ScaleColours()), vox, target)
    return train, valid


class PointMLP(torch.nn.Module):
    """Stand-in model: per-voxel MLP on the features, mapped to every point through inverse."""

    per = "voxel"

    def __init__(self, c_in=3, k=2):
        super().__init__()
        self.mlp = torch.nn.Sequential(torch.nn.Linear(c_in, 16), torch.nn.ReLU(), torch.nn.Linear(16, k))

    def forward(self, x):
        return self.mlp(x["feats"])[x["inverse"]]


def tiny_model(c_in=3, k=2, real=True):
    if not real:
        return PointMLP(c_in, k)
    from fastai_sparse.models import SegmentationHead, SparseModel, UNet

    return SparseModel(UNet(in_channels=c_in, m=8, levels=2), SegmentationHead(8, k))
