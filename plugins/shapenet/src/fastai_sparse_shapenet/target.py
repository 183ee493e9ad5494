"""The ShapeNet part target type: per-point global part ids of a shape whose category is
known (see :mod:`fastai_sparse_shapenet.parts` for the masked head, loss and logits).

Imports neither torch nor fastai at module level, so building the ``shapenet-part`` tasks
(``fastai-sparse tasks``) stays light.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fastai_sparse.errors import DataFormatError
from fastai_sparse.geometry import PointCloud
from fastai_sparse.targets import Segmentation

from .categories import NUM_PARTS, PART_NAMES, category_mask, get_category

__all__ = ["ShapeNetPartTarget"]

_CATEGORY_MASK = category_mask()  # bool [16, 50]


class ShapeNetPartTarget(Segmentation):
    """Per-point global part ids (0..49) of a shape whose category is known.

    ``cloud.attrs["labels"]`` int64 [N] global part ids; ``cloud.meta["category"]`` (name or
    synset) or ``meta["category_index"]`` (0..15) gives the category. ``check`` also verifies
    every label belongs to the category. ``collate_inputs(clouds)`` gives ``{"category":
    int64 [B], "part_mask": bool [B, 50]}``. Loss: :class:`MaskedPartLoss`.
    """

    name = "shapenet-part"
    metrics = ("shapenet-instance-miou", "shapenet-class-miou")

    def __init__(self, ignore_index: int = -100):
        super().__init__(PART_NAMES, ignore_index=ignore_index, key="labels")

    def __repr__(self) -> str:
        return f"ShapeNetPartTarget(parts={NUM_PARTS}, ignore_index={self.ignore_index})"

    @staticmethod
    def category_index(cloud: PointCloud) -> int:
        """The category index (0..15) of a cloud from its meta (``category_index``, ``synset`` or
        ``category``), else from a ``<synset>`` folder in ``meta["path"]``; DataFormatError when
        none is found."""
        meta = cloud.meta
        key = meta.get("category_index", meta.get("synset", meta.get("category")))
        if key is None and meta.get("path"):
            # a file kept in the dataset's folders: <synset>/<shape> or <synset>/points/<shape>.pts
            from pathlib import Path

            for d in Path(str(meta["path"])).parents[:2]:
                try:
                    return get_category(d.name).index
                except KeyError:
                    continue
        if key is None:
            raise DataFormatError(
                "the shape's category is unknown: set meta['category'] (name or synset) or "
                "meta['category_index'] (0..15), or keep the file in a <synset>/ folder",
                path=meta.get("path") or meta.get("id"),
                field="category",
            )
        try:
            return get_category(key).index
        except KeyError as e:
            raise DataFormatError(str(e.args[0]), path=meta.get("path"), field="category") from None

    def check(self, cloud: PointCloud) -> None:
        super().check(cloud)
        cat = get_category(self.category_index(cloud))
        lab = np.asarray(cloud.attrs[self.key]).astype(np.int64)
        bad = (lab != self.ignore_index) & ((lab < cat.first) | (lab >= cat.first + cat.num_parts))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataFormatError(
                f"point {i} has part {int(lab[i])} ({PART_NAMES[lab[i]]}), outside {cat.name}'s parts "
                f"{cat.first}..{cat.first + cat.num_parts - 1}",
                path=cloud.meta.get("path") or cloud.meta.get("id"),
                field=self.key,
            )

    def collate_inputs(self, clouds: Sequence[PointCloud]) -> dict[str, Any]:
        """``{"category": int64 [B], "part_mask": bool [B, 50]}`` for the batch dict."""
        import torch

        cats = torch.tensor([self.category_index(c) for c in clouds], dtype=torch.int64)
        return {"category": cats, "part_mask": torch.from_numpy(_CATEGORY_MASK[cats.numpy()])}

    def loss_func(self):
        from .parts import MaskedPartLoss

        return MaskedPartLoss(self.ignore_index)
