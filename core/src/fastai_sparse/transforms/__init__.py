"""Transforms on point clouds (and meshes): plain callables ``t(cloud, rng=None) -> cloud``.

Point and feature transforms are defined in :mod:`.points`, :mod:`.features` and
:mod:`.compose`; mesh transforms in :mod:`.mesh`, imported on first use of one of its names
(so a problem there never breaks the point transforms).
"""

from __future__ import annotations

import importlib
from typing import Any

from .compose import AffineTransform, Compose, RandomApply, Transform, apply_affine, ensure_rng, sample_rng
from .features import (
    AddHeight,
    AddNormals,
    BrightnessContrast,
    ChromaticJitter,
    ColorShift,
    FeatureNoise,
    NormalizeColor,
    Ones,
)
from .points import (
    Affine,
    Center,
    ElasticDistortion,
    FitToGrid,
    Jitter,
    PointDropout,
    RandomAffineNoise,
    RandomCrop,
    RandomFlip,
    RandomRotate,
    RandomScale,
    Scale,
    Translate,
    random_rotation,
    rotation_matrix,
)

_MESH_NAMES = (
    "SampleSurface",
    "add_normals",
    "face_areas",
    "face_normals",
    "normalize",
    "remove_degenerate_faces",
    "sample_surface",
    "subdivide",
    "vertex_normals",
)

__all__ = [
    "AddHeight",
    "AddNormals",
    "Affine",
    "AffineTransform",
    "BrightnessContrast",
    "Center",
    "ChromaticJitter",
    "ColorShift",
    "Compose",
    "ElasticDistortion",
    "FeatureNoise",
    "FitToGrid",
    "Jitter",
    "NormalizeColor",
    "Ones",
    "PointDropout",
    "RandomAffineNoise",
    "RandomApply",
    "RandomCrop",
    "RandomFlip",
    "RandomRotate",
    "RandomScale",
    "Scale",
    "Transform",
    "Translate",
    "apply_affine",
    "ensure_rng",
    "random_rotation",
    "rotation_matrix",
    "sample_rng",
    *_MESH_NAMES,
]


def __getattr__(name: str) -> Any:
    if name in _MESH_NAMES:
        mesh = importlib.import_module(".mesh", __name__)
        value = getattr(mesh, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
