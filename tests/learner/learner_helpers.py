"""Small hand-made data, pipelines and models for the learner tests (importable, so exported
learners can pickle references to them)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fastai_sparse.batch import SamplePipeline
from fastai_sparse.errors import DataFormatError
from fastai_sparse.geometry import PointCloud
from fastai_sparse.voxelize import Voxelizer

CLASSES = ["low", "high"]


class StandInSegmentation:
    """Stand-in for fastai_sparse.targets.Segmentation (per-point labels in attrs["labels"])."""

    name, per = "segmentation", "point"
    metrics = ("miou", "accuracy")

    def __init__(self, classes, ignore_index=-100):
        self.classes, self.ignore_index = list(classes), ignore_index
        self.num_outputs = len(self.classes)

    def check(self, cloud):
        if "labels" not in cloud.attrs:
            raise DataFormatError("no per-point labels", path=cloud.meta.get("path"), field="labels")

    def collate(self, clouds):
        return torch.from_numpy(np.concatenate([c.attrs["labels"] for c in clouds]).astype(np.int64))

    def loss_func(self):
        return SegLoss(self.ignore_index)

    def decode(self, pred):
        return pred.argmax(-1)


class SegLoss:
    def __init__(self, ignore_index=-100):
        self.ignore_index = ignore_index

    def __call__(self, pred, y):
        return F.cross_entropy(pred, y, ignore_index=self.ignore_index)


def seg_target():
    try:
        from fastai_sparse.targets import Segmentation
    except ImportError:
        return StandInSegmentation(CLASSES)
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
