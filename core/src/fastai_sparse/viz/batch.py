"""Show a collated sparse batch: split it back into samples through its offsets and draw the
voxels of each sample, coloured by features or by the per-point labels mapped to voxels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ShapeError
from .colors import to_numpy
from .points import DEFAULT_MAX_POINTS, PanelGrid, save_figure

__all__ = ["feats_look_like_rgb", "show_batch", "split_batch", "voxel_majority"]


def _offsets(arr, total: int, field: str) -> np.ndarray:
    off = to_numpy(arr).astype(np.int64).reshape(-1)
    if len(off) < 2 or off[0] != 0 or off[-1] != total or (np.diff(off) < 0).any():
        raise ShapeError(
            f"batch field {field!r} = {off.tolist()[:12]}: expected B+1 non-decreasing offsets from 0 to {total}"
        )
    return off


def voxel_majority(
    inverse: np.ndarray, labels: np.ndarray, n_voxels: int, ignore_index: int = -100
) -> np.ndarray:
    """int64 [n_voxels]: the most frequent non-negative label among the points of each voxel.

    inverse: int [N] local voxel row of every point; labels: int [N]. Ties go to the smaller
    label; a voxel whose points are all ignored (negative) or that has no point gets
    ``ignore_index``.
    """
    inv = np.asarray(inverse, np.int64)
    lab = np.asarray(labels, np.int64)
    out = np.full(n_voxels, ignore_index, np.int64)
    keep = lab >= 0
    if not keep.any():
        return out
    pairs, counts = np.unique(np.stack([inv[keep], lab[keep]], 1), axis=0, return_counts=True)
    order = np.lexsort((-counts, pairs[:, 0]))
    p = pairs[order]
    first = np.r_[True, p[1:, 0] != p[:-1, 0]]
    out[p[first, 0]] = p[first, 1]
    return out


def split_batch(x: Mapping[str, Any], y: Any = None, ignore_index: int = -100) -> list[dict[str, Any]]:
    """Split a collated batch into per-sample numpy dicts.

    x: ``coords`` int32 [M, 4] (batch, x, y, z), ``feats`` float32 [M, C], ``inverse`` int64
    [N_total], ``voxel_offsets`` int64 [B+1], ``point_offsets`` int64 [B+1] (offsets are
    derived from the batch column / ``inverse`` when absent). y: per-point labels int64
    [N_total], per-sample targets [B] or [B, D], or None.

    Each sample dict has ``coords`` int [M_i, 3], ``feats`` [M_i, C], ``inverse`` int64 [N_i]
    (row in this sample's coords), and when y is per point ``point_labels`` [N_i] and
    ``voxel_labels`` [M_i] (majority vote, see :func:`voxel_majority`), or when per sample
    ``target``. Inconsistent offsets, batch indices or inverse rows raise :class:`ShapeError`.
    """
    if not isinstance(x, Mapping) or "coords" not in x:
        raise ShapeError(f"expected a batch dict with 'coords' [M, 4], got {type(x).__name__}")
    coords = to_numpy(x["coords"])
    if coords.ndim != 2 or coords.shape[1] != 4:
        raise ShapeError(
            f"batch field 'coords' has shape {list(coords.shape)}, expected [M, 4] (batch, x, y, z)"
        )
    m = len(coords)
    feats = to_numpy(x["feats"]) if "feats" in x else np.ones((m, 1), np.float32)
    if len(feats) != m:
        raise ShapeError(f"batch field 'feats' has {len(feats)} rows, 'coords' has {m}")
    if "voxel_offsets" in x:
        vo = _offsets(x["voxel_offsets"], m, "voxel_offsets")
    else:
        bidx = coords[:, 0].astype(np.int64)
        if (np.diff(bidx) < 0).any():
            raise ShapeError("batch field 'coords': batch column not sorted and no 'voxel_offsets' given")
        vo = np.r_[0, np.cumsum(np.bincount(bidx, minlength=int(bidx.max(initial=-1)) + 1))].astype(np.int64)
    b = len(vo) - 1
    for i in range(b):
        col = coords[vo[i] : vo[i + 1], 0]
        if (col != i).any():
            bad = int(col[col != i][0])
            raise ShapeError(
                f"batch field 'coords': rows {vo[i]}..{vo[i + 1] - 1} belong to sample {i} by 'voxel_offsets' "
                f"but have batch index {bad}"
            )
    inverse = to_numpy(x["inverse"]).astype(np.int64).reshape(-1) if "inverse" in x else None
    po = None
    if inverse is not None:
        if len(inverse) and (inverse.min() < 0 or inverse.max() >= m):
            raise ShapeError(
                f"batch field 'inverse' has rows {inverse.min()}..{inverse.max()}, expected 0..{m - 1}"
            )
        if "point_offsets" in x:
            po = _offsets(x["point_offsets"], len(inverse), "point_offsets")
        else:
            owner = coords[inverse, 0].astype(np.int64)
            if (np.diff(owner) < 0).any():
                raise ShapeError(
                    "batch field 'inverse': points not grouped by sample and no 'point_offsets' given"
                )
            po = np.r_[0, np.cumsum(np.bincount(owner, minlength=b))].astype(np.int64)
        if len(po) != len(vo):
            raise ShapeError(
                f"'point_offsets' describes {len(po) - 1} samples, 'voxel_offsets' {len(vo) - 1}; expected the same"
            )
    n_total = len(inverse) if inverse is not None else None
    yy = None if y is None or isinstance(y, Mapping) else to_numpy(y)
    per_point = yy is not None and n_total is not None and yy.ndim == 1 and len(yy) == n_total
    per_sample = yy is not None and not per_point and yy.ndim >= 1 and len(yy) == b
    if yy is not None and not (per_point or per_sample):
        raise ShapeError(
            f"targets y have shape {list(yy.shape)}: expected per-point labels [{n_total}] or per-sample "
            f"targets [{b}, ...]"
        )
    out = []
    for i in range(b):
        s: dict[str, Any] = {"coords": coords[vo[i] : vo[i + 1], 1:4], "feats": feats[vo[i] : vo[i + 1]]}
        if inverse is not None:
            inv = inverse[po[i] : po[i + 1]] - vo[i]
            if len(inv) and (inv.min() < 0 or inv.max() >= vo[i + 1] - vo[i]):
                raise ShapeError(
                    f"batch field 'inverse': a point of sample {i} maps to a voxel outside rows "
                    f"{vo[i]}..{vo[i + 1] - 1} of that sample"
                )
            s["inverse"] = inv
            if per_point:
                s["point_labels"] = yy[po[i] : po[i + 1]].astype(np.int64)
                s["voxel_labels"] = voxel_majority(inv, s["point_labels"], vo[i + 1] - vo[i], ignore_index)
        if per_sample:
            s["target"] = yy[i]
        out.append(s)
    return out


#: How far colour features may leave [-1, 1] (colour jitter / chromatic noise) and still be
#: drawn as colours (clipped).
RGB_SLACK = 0.25


def feats_look_like_rgb(feats: np.ndarray) -> bool:
    """True when the first 3 feature channels can be read as a colour normalised to [-1, 1]
    (or [0, 1]): at least 3 channels, all finite, within [-1, 1] up to :data:`RGB_SLACK` (colour
    augmentation overshoots a little), and not constant. Unit normals pass too and are then
    drawn as a normal map."""
    f = np.asarray(feats)
    if f.ndim != 2 or f.shape[1] < 3 or len(f) == 0:
        return False
    c = f[:, :3]
    lim = 1.0 + RGB_SLACK
    return bool(np.isfinite(c).all() and c.min() >= -lim and c.max() <= lim and np.ptp(c) > 0)


def _feat_kw(sample: Mapping[str, Any], channel: int | None, cmap: str) -> dict[str, Any]:
    f, xyz = np.asarray(sample["feats"]), np.asarray(sample["coords"])
    if channel is None and feats_look_like_rgb(f):
        c = f[:, :3].astype(np.float32)
        return {"colors": np.clip((c + 1) / 2 if c.min() < 0 else c, 0.0, 1.0)}
    ch = 0 if channel is None else channel
    if f.ndim == 2 and f.shape[1] > ch and np.ptp(f[:, ch]) > 0:
        return {"values": f[:, ch], "cmap": cmap}
    if channel is not None and (f.ndim != 2 or f.shape[1] <= ch):
        raise ShapeError(f"feature channel {channel} requested, the batch has {f.shape[-1]} channels")
    return {"values": xyz[:, 2], "cmap": cmap}  # constant features: colour by height


def show_batch(
    x: Any,
    y: Any = None,
    max_n: int = 4,
    color_by: str | int = "labels",
    class_names: Sequence[str] | None = None,
    ncols: int = 4,
    path: str | Path | None = None,
    html: bool = False,
    max_points: int | None = DEFAULT_MAX_POINTS,
    ignore_index: int = -100,
    size: float | None = None,
    cmap: str = "viridis",
    panel_size: float = 4.0,
    dpi: float = 100,
):
    """Draw the first ``max_n`` samples of a collated batch, one panel each; returns the figure.

    x: the batch dict (see :func:`split_batch`), or an ``(x, y)`` pair as returned by
    ``dls.one_batch()``. Each panel shows the sample's voxels (``coords``, voxel units).
    ``color_by``: ``"labels"`` (per-point labels ``y`` mapped to voxels by majority vote;
    falls back to ``"feats"`` when y is not per point), ``"feats"`` (first 3 channels as rgb
    when they look like colours in [-1, 1], else channel 0 through ``cmap``, or height when
    features are constant), an int channel, or ``"z"``. Per-sample targets (classes) go in
    the panel titles. ``html=True`` (or a ``.html`` path) gives a plotly figure, else
    matplotlib; ``path`` saves it.
    """
    if y is None and isinstance(x, (tuple, list)) and len(x) == 2 and isinstance(x[0], Mapping):
        x, y = x
    samples = split_batch(x, y, ignore_index)[:max_n]
    if not samples:
        raise ShapeError("the batch holds no samples")
    html = html or (path is not None and str(path).lower().endswith((".html", ".htm")))
    titles = []
    for i, s in enumerate(samples):
        t = f"sample {i}: {len(s['coords']):,} voxels"
        if "inverse" in s:
            t += f", {len(s['inverse']):,} points"
        if "target" in s:
            tg = np.asarray(s["target"])
            if tg.ndim == 0 and np.issubdtype(tg.dtype, np.integer):
                k = int(tg)
                t += f"\nclass {class_names[k] if class_names is not None and 0 <= k < len(class_names) else k}"
            else:
                t += "\ntarget " + np.array2string(tg.reshape(-1)[:4], precision=3)
        titles.append(t)
    grid = PanelGrid(
        len(samples), ncols, html, [t.replace("\n", "<br>") if html else t for t in titles], panel_size
    )
    n_classes = len(class_names) if class_names is not None else None
    if n_classes is None and color_by == "labels":
        mx = [int(s["voxel_labels"].max(initial=-1)) for s in samples if "voxel_labels" in s]
        n_classes = max(mx) + 1 if mx else None
    for i, s in enumerate(samples):
        if color_by == "labels" and "voxel_labels" in s:
            kw: dict[str, Any] = {
                "labels": s["voxel_labels"],
                "n_classes": n_classes,
                "class_names": class_names,
            }
        elif color_by == "z":
            kw = {"values": np.asarray(s["coords"])[:, 2], "cmap": cmap}
        elif color_by in ("labels", "feats") or isinstance(color_by, (int, np.integer)):
            kw = _feat_kw(s, None if isinstance(color_by, str) else int(color_by), cmap)
        else:
            raise ValueError(
                f"color_by={color_by!r}: expected 'labels', 'feats', 'z' or a feature channel index"
            )
        grid.points(
            i, np.asarray(s["coords"], np.float64), max_points=max_points, ignore_index=ignore_index,
            size=size, **kw,
        )  # fmt: skip
    grid.finish()
    if path is not None:
        save_figure(grid.fig, path, dpi=dpi)
    return grid.fig
