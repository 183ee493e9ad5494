"""fastai-sparse-classification: whole-shape classification and regression on meshes and point
clouds (ModelNet40 / ModelNet10, generic mesh folders, an up-axis regression task).

Importing this package is light (numpy only); torch and fastai are imported by the functions
that need them.
"""

from __future__ import annotations

from .fixtures import make_fixture
from .readers import (
    MODELNET10_CLASSES,
    MODELNET40_CLASSES,
    MeshFolder,
    ModelNet,
    ModelNet10,
    ModelNet40,
    ShapeDataset,
    load_shape,
)

__version__ = "0.1.0"

__all__ = [
    "MODELNET10_CLASSES",
    "MODELNET40_CLASSES",
    "MeshFolder",
    "ModelNet",
    "ModelNet10",
    "ModelNet40",
    "ShapeDataset",
    "__version__",
    "load_shape",
    "make_fixture",
]
