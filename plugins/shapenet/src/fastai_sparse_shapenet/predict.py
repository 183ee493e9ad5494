"""Per-point part prediction with category masking and test-time voting.

:func:`predict_clouds` runs a trained model on PointClouds whose category is known and
returns, for every ORIGINAL point, the predicted global part id (always one of the
category's parts). With ``tta > 1`` the softmax probabilities of ``tta`` passes are summed
(voting): pass 0 is the validation view, the others add a mild anisotropic scale and a
small rotation about the up axis (views seeded, so results are reproducible).
:func:`evaluate` scores a labelled dataset with the ShapeNet metrics; :func:`read_input`
and :func:`write_parts` serve ``fastai-sparse shapenet predict``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastai_sparse.errors import DataFormatError
from fastai_sparse.geometry import PointCloud

from .categories import get_category
from .parts import ShapeNetPartTarget, mask_logits

__all__ = ["PartView", "evaluate", "predict_clouds", "read_input", "write_parts"]


class PartView:
    """TTA view ``p``: identity for ``p == 0``; otherwise an anisotropic scale in
    ``[1 - s, 1 + s]`` and a rotation about ``up`` within ``+-angle`` radians, drawn from
    ``default_rng([seed, p, index])``."""

    def __init__(self, p: int, seed: int = 0, s: float = 0.1, angle: float = np.pi / 24, up: str = "y"):
        self.p, self.seed, self.s, self.angle, self.up = int(p), int(seed), float(s), float(angle), up

    def __call__(self, cloud: PointCloud, index: int = 0) -> PointCloud:
        if self.p == 0:
            return cloud
        from fastai_sparse.transforms import apply_affine, rotation_matrix

        rng = np.random.default_rng([self.seed, self.p, int(index)])
        scale = np.diag(rng.uniform(1 - self.s, 1 + self.s, 3))
        rot = rotation_matrix(self.up, rng.uniform(-self.angle, self.angle))
        c = cloud.xyz.astype(np.float64).mean(0)
        m = rot @ scale
        return apply_affine(cloud, m, c - m @ c)

    def __repr__(self) -> str:
        return f"PartView(p={self.p}, seed={self.seed}, s={self.s}, angle={self.angle:.4g})"


def _pipeline(task):
    from fastai_sparse.batch import SamplePipeline
    from fastai_sparse.transforms import Compose

    return SamplePipeline(Compose(list(task.valid_transforms)), task.make_voxelizer(), None)


@torch.no_grad()
def predict_clouds(
    model: torch.nn.Module,
    task,
    clouds: Sequence[PointCloud],
    tta: int = 1,
    bs: int = 8,
    seed: int = 0,
    return_probs: bool = False,
) -> list[np.ndarray]:
    """Predicted global part ids int64 [N_i] for every cloud (one per original point).

    model: a trained SparseModel (e.g. ``learn.model``); task: its Task (validation
    transforms and voxelizer); clouds: PointClouds with ``meta["category"]`` (name or synset)
    or ``meta["category_index"]``; tta: number of voting passes. With ``return_probs`` the
    summed probabilities float32 [N_i, 50] / tta are returned instead.
    """
    if tta < 1:
        raise ValueError(f"tta must be >= 1, got {tta}")
    from fastai_sparse.batch import collate

    target = ShapeNetPartTarget()
    pipe = _pipeline(task)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[np.ndarray] = []
    try:
        for start in range(0, len(clouds), bs):
            chunk = list(clouds[start : start + bs])
            cats = torch.tensor([target.category_index(c) for c in chunk], dtype=torch.int64)
            counts = torch.tensor([len(c) for c in chunk])
            pcat = torch.repeat_interleave(cats, counts)
            total = None
            for p in range(tta):
                view = PartView(p, seed)
                samples = [
                    pipe(view(c, start + k), np.random.default_rng([seed, p, start + k]))
                    for k, c in enumerate(chunk)
                ]
                x, _ = collate(samples, None)
                x.update(target.collate_inputs(chunk))
                x = {k: v.to(device) for k, v in x.items()}
                logits = model(x).float().cpu()
                if len(logits) != int(counts.sum()):
                    raise DataFormatError(
                        f"the model returned {len(logits)} rows for {int(counts.sum())} points; the validation "
                        "pipeline must keep every point"
                    )
                probs = torch.softmax(mask_logits(logits, pcat), 1)
                total = probs if total is None else total + probs
            total = total / tta
            rows = np.cumsum([0, *counts.tolist()])
            for k in range(len(chunk)):
                block = total[rows[k] : rows[k + 1]]
                out.append(block.numpy() if return_probs else block.argmax(1).numpy().astype(np.int64))
    finally:
        model.train(was_training)
    return out


def evaluate(
    model: torch.nn.Module, task, dataset: Sequence[PointCloud], tta: int = 1, bs: int = 8
) -> dict[str, Any]:
    """ShapeNet scores (see :func:`~.metrics.shapenet_scores`) of ``model`` on a labelled dataset."""
    from .metrics import shapenet_scores

    clouds = [dataset[i] for i in range(len(dataset))]
    preds = predict_clouds(model, task, clouds, tta=tta, bs=bs)
    return shapenet_scores(
        preds, [c.attrs["labels"] for c in clouds], [ShapeNetPartTarget.category_index(c) for c in clouds]
    )


def read_input(path: str | Path, category: str | int | None = None) -> PointCloud:
    """Read a points file for prediction: a ``v0_normal`` ``.txt`` (``x y z nx ny nz [part]``),
    a ``.pts`` / ``.pts.<split>`` file (``x y z``), or anything :func:`fastai_sparse.io.load`
    reads. ``category`` (name, synset or index) defaults to the parent folder's synset
    (``<synset>/<shape>``, ``<synset>/points/<shape>.pts``)."""
    path = Path(path)
    if category is None:
        for d in (path.parent.name, path.parent.parent.name):
            try:
                category = get_category(d).synset
                break
            except KeyError:
                continue
        if category is None:
            raise DataFormatError(
                "the shape's category is unknown: pass --category (name or synset) or keep the file in a "
                "<synset>/ folder",
                path=path,
                field="category",
            )
    cat = get_category(category)
    meta = {
        "category": cat.name,
        "synset": cat.synset,
        "category_index": cat.index,
        "id": path.stem,
        "path": str(path),
    }
    if ".pts" in path.suffixes or path.suffix == ".pts":
        from .readers import read_pts

        return PointCloud(read_pts(path), meta=meta)
    from fastai_sparse.io import load, read_points_txt

    if path.suffix == ".txt":
        first = next((ln for ln in path.read_text().splitlines() if ln.strip()), "")
        cols = {
            3: ("x", "y", "z"),
            6: ("x", "y", "z", "nx", "ny", "nz"),
            7: ("x", "y", "z", "nx", "ny", "nz", None),
        }
        n = len(first.split())
        if n not in cols:
            raise DataFormatError(f"line 1: found {n} values, expected 3, 6 or 7", path=path, field="columns")
        cloud = read_points_txt(path, columns=cols[n])
    else:
        cloud = load(path)
        if not isinstance(cloud, PointCloud):
            cloud = cloud.to_points()
    attrs = {k: v for k, v in cloud.attrs.items() if k == "normals"}
    return PointCloud(cloud.xyz, attrs, meta=meta)


def write_parts(path: str | Path, labels: np.ndarray, category: str | int, local: bool | None = None) -> Path:
    """Write one part id per line. ``local`` (default: True for a ``.seg`` path) writes the
    1-based id within the category (the ``.seg`` convention), else the global id 0..49."""
    path = Path(path)
    cat = get_category(category)
    local = path.suffix == ".seg" if local is None else local
    vals = cat.to_local(labels) if local else np.asarray(labels, np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, vals, fmt="%d")
    return path
