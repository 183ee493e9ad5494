"""The ShapeNet part tasks and their ``prepare`` / ``fixture`` helpers.

``shapenet-part``: surface normals as voxel features (the ``v0_normal`` download);
``shapenet-part-nonormals``: a constant feature (any layout); ``shapenet-part-synthetic``:
the same recipe on embedded synthetic multi-part shapes (no download).

Voxel size: shapes are scaled into the unit ball, then voxelized at :data:`DEFAULT_SCALE`
= 24 voxels per unit (a 48-voxel diameter, the SparseConvNet ShapeNet recipe). At that size
a voxel is about 2% of the shape's extent: thin parts (chair legs, lamp stems, engines,
earphone cables) stay several voxels wide while a shape of ~2,500 points fills ~1-2 points
per voxel, so nearly every point keeps its own voxel and parts stay separable. Lower it
(e.g. 16) for faster CPU runs; raise it for finer detail (cost grows with the square).

Defaults by measurement (``benchmarks/bench_real_shapes.py``: overfitting the 4 real ShapeNet
part challenge shapes of the test data, instance mIoU on the same shapes with batch norm in eval
mode, steps to 0.9): one-cycle to a peak lr of 1e-2 and a UNet without its final BN+ReLU
(``output_bn_relu=False``): 70 / 60 steps (two seeds); with the final BN+ReLU 90 / 80; the
earlier 2e-3 (with it) had not reached 0.9 after 120 steps (0.81 / 0.77).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .categories import PART_NAMES

__all__ = ["DEFAULT_SCALE", "make_task", "prepare", "task_fixture"]

DEFAULT_SCALE = 24.0
_READERS = "fastai_sparse_shapenet.readers"


def task_fixture(directory: str | Path) -> Path:
    """A tiny ``v0_normal``-layout dataset under ``directory/shapenet_part`` (for the
    conformance kit and tests)."""
    from .fixtures import make_fixture

    return make_fixture(Path(directory) / "shapenet_part", layout="normal")


def prepare(
    root: str | Path,
    out: str | Path | None = None,
    jobs: int = 2,
    skip_bad: bool = False,
    layout: str | None = None,
) -> dict[str, Any]:
    """Read and check every shape of every split under ``root``.

    Returns ``{"root", "layout", "splits": {split: {"shapes", "points", "per_category"}},
    "bad": [(path, error)]}`` and writes it as ``shapenet_part_summary.json`` in ``out`` when
    given. A bad file raises its DataFormatError unless ``skip_bad`` (then it is listed).
    """
    import json

    from fastai_sparse.errors import DataFormatError

    from .readers import detect_layout, list_records, read_record

    root = Path(root)
    layout = layout or detect_layout(root)
    summary: dict[str, Any] = {"root": str(root), "layout": layout, "splits": {}, "bad": []}

    def read(rec):
        try:
            c = read_record(rec)
            return rec, c.meta["category"], len(c), None
        except DataFormatError as e:
            if not skip_bad:
                raise
            return rec, None, 0, str(e)

    for split in ("train", "val", "test"):
        try:
            recs = list_records(root, split, layout)
        except DataFormatError:
            if skip_bad:
                continue
            raise
        per_cat: dict[str, int] = {}
        points = 0
        with ThreadPoolExecutor(max(1, int(jobs))) as ex:
            for rec, cat, n, err in ex.map(read, recs):
                if err is not None:
                    summary["bad"].append((str(rec.points), err))
                    continue
                per_cat[cat] = per_cat.get(cat, 0) + 1
                points += n
        summary["splits"][split] = {
            "shapes": sum(per_cat.values()),
            "points": points,
            "per_category": per_cat,
        }
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "shapenet_part_summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def make_task(
    name: str = "shapenet-part",
    normals: bool = True,
    synthetic: bool = False,
    scale: float = DEFAULT_SCALE,
    model: str = "unet-m16",
    **task_kwargs: Any,
):
    """A ShapeNet part :class:`~fastai_sparse.Task` (see the module docstring).

    normals: voxel features are the mean surface normal of each voxel (3 channels) instead of
    a constant (1 channel); synthetic: train on :class:`~.fixtures.SyntheticShapeNet`
    instead of a download; scale: voxels per unit at unit-ball size. A ``unet-*`` model is
    built without its final BN+ReLU (see the module docstring); ``model_kwargs=`` overrides.
    """
    from fastai_sparse import Factory, Task
    from fastai_sparse.voxelize import Voxelizer

    from .target import ShapeNetPartTarget
    from .transforms import train_transforms, valid_transforms

    if synthetic:
        dataset = Factory("shapenet-part-synthetic", "fastai_sparse_shapenet.fixtures:synthetic_shapenet")
        splits, needs_root, fixture, prep = ("train", "valid"), False, None, None
    else:
        dataset = Factory(name, f"{_READERS}:shapenet_part", normals=normals)
        splits, needs_root, fixture, prep = ("train", "val"), True, task_fixture, prepare
    feats = ("normals",) if normals else ("ones",)
    kw: dict[str, Any] = dict(
        name=name,
        description=(
            "ShapeNet part segmentation (16 categories, 50 parts), category-masked logits, "
            + ("surface normals as features" if normals else "constant features")
            + (", synthetic shapes" if synthetic else "")
        ),
        target=ShapeNetPartTarget(),
        dataset=dataset,
        train_transforms=train_transforms(),
        valid_transforms=valid_transforms(),
        voxelizer=Voxelizer(scale=scale, features=feats, full_scale=4096, mode="mean"),
        model=model,
        model_kwargs={"output_bn_relu": False} if model.startswith("unet") else {},
        head="shapenet-part-masked",
        metrics=["shapenet-instance-miou", "shapenet-class-miou"],
        needs_root=needs_root,
        splits=splits,
        defaults={"bs": 16, "epochs": 50, "lr": 1e-2, "tta": 3},
        prepare=prep,
        fixture=fixture,
        label_values=list(range(len(PART_NAMES))),
        read_input=read_prediction_input,
    )
    kw.update(task_kwargs)
    return Task(**kw)


def read_prediction_input(path):
    """Inputs of ``fastai-sparse predict shapenet-part``: the category comes from the file's
    ``<synset>/`` folder (see :func:`fastai_sparse_shapenet.predict.read_input`)."""
    from .predict import read_input

    return read_input(path)
