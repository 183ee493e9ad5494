"""Tiny format-identical ShapeNet part datasets, and ShapeNet-labelled synthetic shapes.

:func:`make_fixture` writes a few multi-part shapes (built from primitives with exact
normals by core's registered dataset ``synthetic-parts``) in any of the
three layouts read by :mod:`.readers`; the tests and ``Task.fixture`` use it.
:class:`SyntheticShapeNet` serves the same shapes in memory with ShapeNet global part ids
and category metadata (the benchmark trains on it).

Synthetic categories map onto ShapeNet ones: airplane -> Airplane (body, wing, tail,
engine), chair -> Chair (back, seat, leg, arm), lamp -> Lamp (base -> base, pole -> stem,
shade -> shade), mug -> Mug (body -> cup, handle -> handle), table -> Table (top, leg).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fastai_sparse.geometry import PointCloud

from .categories import CATEGORIES, Category, get_category

__all__ = ["SYNTHETIC_TO_SHAPENET", "SyntheticShapeNet", "make_fixture", "synthetic_shapenet"]

#: synthetic category -> (ShapeNet category name, ShapeNet local part index of each synthetic part)
SYNTHETIC_TO_SHAPENET: dict[str, tuple[str, tuple[int, ...]]] = {
    "airplane": ("Airplane", (0, 1, 2, 3)),
    "chair": ("Chair", (0, 1, 2, 3)),
    "lamp": ("Lamp", (0, 3, 1)),
    "mug": ("Mug", (1, 0)),
    "table": ("Table", (0, 1)),
}


class SyntheticShapeNet(Sequence):
    """Synthetic multi-part shapes labelled like ShapeNet part (in memory, deterministic).

    n: number of shapes; split: ``"train"``, ``"valid"`` or ``"test"``; points: points per
    shape; categories: synthetic category names (keys of :data:`SYNTHETIC_TO_SHAPENET`).
    Items: PointCloud with ``attrs["normals"]`` float32 [N, 3], ``attrs["labels"]`` int64 [N]
    ShapeNet global part ids, meta ``category`` / ``synset`` / ``category_index`` / ``id``.
    """

    def __init__(
        self,
        n: int = 200,
        split: str = "train",
        seed: int = 0,
        points: int = 1024,
        categories: Sequence[str] = tuple(SYNTHETIC_TO_SHAPENET),
    ):
        from fastai_sparse import get_dataset  # core's registered "synthetic-parts"

        self.src = get_dataset("synthetic-parts")(
            n=n, split=split, seed=seed, points=points, categories=tuple(categories)
        )
        lut = np.full(len(self.src.part_names), -1, np.int64)
        for c in self.src.categories:
            cat = get_category(SYNTHETIC_TO_SHAPENET[c][0])
            for k, g in enumerate(self.src.parts_of[c]):
                lut[g] = cat.first + SYNTHETIC_TO_SHAPENET[c][1][k]
        self._lut = lut

    def __len__(self) -> int:
        return len(self.src)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        c = self.src[i]
        cat = get_category(SYNTHETIC_TO_SHAPENET[c.meta["category"]][0])
        meta = {
            **c.meta,
            "category": cat.name,
            "synset": cat.synset,
            "category_index": cat.index,
            "id": f"{cat.synset}/synthetic-{c.meta.get('split')}-{c.meta.get('index')}",
        }
        return PointCloud(
            c.xyz, {"normals": c.attrs["normals"], "labels": self._lut[c.attrs["labels"]]}, meta=meta
        )

    def __repr__(self) -> str:
        return f"SyntheticShapeNet(n={len(self)}, split={self.src.split!r}, categories={list(self.src.categories)})"


def synthetic_shapenet(split: str = "train", n: int | None = None, **kwargs) -> SyntheticShapeNet:
    """Dataset factory: :class:`SyntheticShapeNet` with 200 training / 50 other shapes by default."""
    return SyntheticShapeNet(
        n=n if n is not None else (200 if split == "train" else 50), split=split, **kwargs
    )


def _token(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list("0123456789abcdef"), 32))


def _write_pts(path: Path, xyz: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, xyz, fmt="%.5f")


def _write_seg(path: Path, local: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, local, fmt="%d")


def make_fixture(
    root: str | Path,
    layout: str = "normal",
    shapes: dict[str, int] | None = None,
    points: int = 384,
    categories: Sequence[str] = ("airplane", "chair", "mug"),
    flat: bool = False,
    seed: int = 0,
) -> Path:
    """Write a tiny ShapeNet part dataset in ``layout`` (``"normal"``, ``"v0"``, ``"iccv17"``).

    shapes: shapes per split (default ``{"train": 6, "val": 3, "test": 3}``); points: points
    per shape; categories: synthetic categories used (see :data:`SYNTHETIC_TO_SHAPENET`);
    flat: for ``iccv17``, write SparseConvNet's renamed variant ``<synset>/<id>.pts.train``
    (``.pts.valid``, ``.pts.test``) with ``<synset>/<id>.seg`` instead of
    ``<split>_data/`` + ``<split>_label/``. Returns ``root``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    shapes = shapes or {"train": 6, "val": 3, "test": 3}
    rng = np.random.default_rng([seed, 7])
    (root / "synsetoffset2category.txt").write_text("".join(f"{c.name}\t{c.synset}\n" for c in CATEGORIES))
    counter = 0
    for s_i, (split, n) in enumerate(shapes.items()):
        src = SyntheticShapeNet(
            n=n, split={"val": "valid"}.get(split, split), seed=seed, points=points, categories=categories
        )
        entries = []
        for i in range(n):
            cloud = src[i]
            cat: Category = get_category(cloud.meta["synset"])
            labels = cloud.attrs["labels"]
            if layout == "normal":
                token = _token(rng)
                table = np.concatenate(
                    [cloud.xyz, cloud.attrs["normals"], labels[:, None].astype(np.float32)], 1
                )
                path = root / cat.synset / f"{token}.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                np.savetxt(path, table, fmt=["%.6f"] * 6 + ["%.1f"])
                entries.append(f"shape_data/{cat.synset}/{token}")
            elif layout == "v0":
                token = _token(rng)
                _write_pts(root / cat.synset / "points" / f"{token}.pts", cloud.xyz)
                _write_seg(root / cat.synset / "points_label" / f"{token}.seg", cat.to_local(labels))
                entries.append(f"shape_data/{cat.synset}/{token}")
            elif layout == "iccv17":
                counter += 1
                sid = f"{counter:06d}"
                if flat:
                    suffix = {"val": "valid"}.get(split, split)
                    _write_pts(root / cat.synset / f"{sid}.pts.{suffix}", cloud.xyz)
                    _write_seg(root / cat.synset / f"{sid}.seg", cat.to_local(labels))
                else:
                    _write_pts(root / f"{split}_data" / cat.synset / f"{sid}.pts", cloud.xyz)
                    _write_seg(root / f"{split}_label" / cat.synset / f"{sid}.seg", cat.to_local(labels))
            else:
                raise ValueError(f"layout must be 'normal', 'v0' or 'iccv17', got {layout!r}")
        if layout in ("normal", "v0"):
            d = root / "train_test_split"
            d.mkdir(exist_ok=True)
            order = np.random.default_rng([seed, 8, s_i]).permutation(len(entries))
            (d / f"shuffled_{split}_file_list.json").write_text(json.dumps([entries[k] for k in order]))
    return root
