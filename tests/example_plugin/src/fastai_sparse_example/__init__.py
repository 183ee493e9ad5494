"""An example fastai-sparse plugin: segment a blob from the ground plane under it."""

import numpy as np

from fastai_sparse import Factory, PointCloud, Segmentation, Task, Voxelizer, hookimpl

CLASSES = ["ground", "blob"]


def blobs(split="train", root=None, n=8, points=400, seed=0):
    """``n`` point clouds, each a ground plane with a blob above it (labels 0 and 1)."""
    first = {"train": 0, "valid": 10_000, "test": 20_000}[split]
    return [make_scene(seed + first + i, points) for i in range(n)]


def make_scene(seed, points):
    rng = np.random.default_rng(seed)
    ground = np.c_[rng.uniform(0, 2, (points, 2)), np.zeros(points)]
    center = np.r_[rng.uniform(0.5, 1.5, 2), 0.6]
    blob = center + 0.15 * rng.standard_normal((points, 3))
    xyz = np.concatenate([ground, blob]).astype(np.float32)
    labels = np.repeat([0, 1], points)
    return PointCloud(xyz, {"labels": labels}, meta={"id": f"blobs-{seed}"})


@hookimpl
def register_datasets(register):
    register(Factory("example-blobs", blobs, description="a ground plane and a blob"))


@hookimpl
def register_tasks(register):
    register(
        Task(
            name="example-blobs-seg",
            description="segment a blob from the ground",
            dataset="example-blobs",
            target=Segmentation(CLASSES),
            voxelizer=Voxelizer(scale=10, features=("ones",)),
            model="unet-small",
        )
    )
