"""fastai-sparse-classification: whole-shape classification and regression on meshes and point
clouds (ModelNet40 / ModelNet10, generic mesh folders, an up-axis regression task).

Importing this package is light (numpy only); torch and fastai are imported by the functions
that need them.
"""

from __future__ import annotations

from .confusion import class_report, per_class_accuracy
from .fixtures import make_fixture
from .plots import plot_confusion_matrix
from .predict import confusion_matrix_of, predict_shape, top_k
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
    "class_report",
    "confusion_matrix_of",
    "load_shape",
    "make_fixture",
    "per_class_accuracy",
    "plot_confusion_matrix",
    "predict_shape",
    "top_k",
]
