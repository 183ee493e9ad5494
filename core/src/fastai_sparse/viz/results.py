"""Predictions on point clouds: prediction vs ground truth, confidence and error maps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ShapeError
from .colors import IGNORED_COLOR, to_numpy
from .points import DEFAULT_MAX_POINTS, PanelGrid, _as_cloud, _as_xyz, cloud_colors, save_figure

__all__ = ["as_labels", "confidence_heatmap", "error_map", "show_results"]

_CORRECT = np.array([0.17, 0.63, 0.17], np.float32)
_WRONG = np.array([0.84, 0.15, 0.16], np.float32)


def as_labels(pred) -> np.ndarray:
    """int64 labels from predictions: labels [N] as is, scores / probabilities [N, K] by argmax."""
    p = to_numpy(pred)
    if p.ndim == 2:
        return p.argmax(1).astype(np.int64)
    return p.astype(np.int64)


def _as_list(obj) -> list:
    if isinstance(obj, (list, tuple)):
        return list(obj)
    return [obj]


def _is_scalar(v) -> bool:
    return to_numpy(v).ndim == 0


def _finish(grid: PanelGrid, path, dpi):
    grid.finish()
    if path is not None:
        save_figure(grid.fig, path, dpi=dpi)
    return grid.fig


def show_results(
    clouds_or_xyz: Any,
    preds: Any,
    targets: Any = None,
    class_names: Sequence[str] | None = None,
    max_n: int = 4,
    path: str | Path | None = None,
    html: bool = False,
    ignore_index: int = -100,
    max_points: int | None = DEFAULT_MAX_POINTS,
    size: float | None = None,
    panel_size: float = 4.0,
    dpi: float = 100,
):
    """Ground truth and prediction side by side, one row per sample; returns the figure.

    clouds_or_xyz: PointClouds or xyz arrays [N_i, 3] (a single one is fine).
    preds: per sample, labels int [N_i] or scores [N_i, K] (argmax taken) for segmentation,
    or one class (int) per sample for classification.
    targets: same layout as preds; None takes ``cloud.attrs["labels"]`` (segmentation) or
    ``cloud.target`` (classification).

    Segmentation rows show truth | prediction coloured by class, with the point accuracy
    (ignored points excluded) in the title. Classification shows one panel per sample
    coloured by rgb (or height) titled ``pred / true``.
    """
    clouds = [_as_cloud(c) for c in _as_list(clouds_or_xyz)][:max_n]
    preds_l = _as_list(preds)[: len(clouds)]
    if len(preds_l) != len(clouds):
        raise ShapeError(f"{len(preds_l)} predictions for {len(clouds)} samples")
    classification = all(_is_scalar(p) for p in preds_l)
    if targets is None:
        targets_l = [c.target if classification else c.attrs.get("labels") for c in clouds]
    else:
        targets_l = _as_list(targets)[: len(clouds)]
    if len(targets_l) != len(clouds):
        raise ShapeError(f"{len(targets_l)} targets for {len(clouds)} samples")
    html = html or (path is not None and str(path).lower().endswith((".html", ".htm")))

    def name(k: int) -> str:
        return str(class_names[k]) if class_names is not None and 0 <= k < len(class_names) else str(k)

    if classification:
        titles = []
        for c, p, t in zip(clouds, preds_l, targets_l):
            pk = int(to_numpy(p))
            mark = "" if t is None else (" ✓" if int(t) == pk else " ✗")
            titles.append(
                f"{c.meta.get('id', '')} pred {name(pk)} / true {name(int(t)) if t is not None else '?'}{mark}"
            )
        grid = PanelGrid(len(clouds), 4, html, titles, panel_size)
        for i, c in enumerate(clouds):
            grid.points(
                i,
                c.xyz,
                max_points=max_points,
                size=size,
                **cloud_colors(c, "rgb" if "rgb" in c.attrs else "z"),
            )
        return _finish(grid, path, dpi)

    n_classes = len(class_names) if class_names is not None else None
    labs = []
    for i, (c, p, t) in enumerate(zip(clouds, preds_l, targets_l)):
        pl = as_labels(p)
        if len(pl) != len(c):
            raise ShapeError(f"sample {i}: {len(pl)} predictions for {len(c)} points; expected one per point")
        tl = None if t is None else as_labels(t)
        if tl is not None and len(tl) != len(c):
            raise ShapeError(f"sample {i}: {len(tl)} targets for {len(c)} points; expected one per point")
        labs.append((pl, tl))
    if n_classes is None:
        n_classes = 1 + max(max(int(pl.max(initial=-1)), int(tl.max(initial=-1)) if tl is not None else -1)
                            for pl, tl in labs)  # fmt: skip
    titles = []
    for c, (pl, tl) in zip(clouds, labs):
        cid = c.meta.get("id", "")
        if tl is None:
            titles += [f"{cid} ground truth: none", f"{cid} prediction"]
        else:
            valid = tl >= 0
            acc = float((pl[valid] == tl[valid]).mean()) if valid.any() else float("nan")
            titles += [f"{cid} ground truth", f"{cid} prediction (acc {acc:.3f})"]
    grid = PanelGrid(2 * len(clouds), 2, html, [t.strip() for t in titles], panel_size)
    for i, (c, (pl, tl)) in enumerate(zip(clouds, labs)):
        kw = {"max_points": max_points, "size": size, "n_classes": n_classes, "class_names": class_names,
              "ignore_index": ignore_index}  # fmt: skip
        if tl is not None:
            grid.points(2 * i, c.xyz, labels=tl, **kw)
        else:
            grid.points(2 * i, c.xyz, values=c.xyz[:, 2], max_points=max_points, size=size)
        grid.points(2 * i + 1, c.xyz, labels=pl, **kw)
    return _finish(grid, path, dpi)


def confidence_heatmap(
    xyz,
    confidence,
    path: str | Path | None = None,
    html: bool = False,
    title: str | None = "confidence",
    cmap: str = "magma",
    max_points: int | None = DEFAULT_MAX_POINTS,
    size: float | None = None,
    panel_size: float = 5.0,
    dpi: float = 100,
):
    """Per-point confidence on the cloud; returns the figure.

    xyz: float [N, 3] (or a PointCloud). confidence: float [N] in [0, 1], or probabilities
    [N, K] (their max is used). Colours span 0..1 through ``cmap`` (a colorbar on the PNG).
    """
    xyz = _as_xyz(xyz.xyz if hasattr(xyz, "xyz") else xyz)
    conf = to_numpy(confidence).astype(np.float64)
    if conf.ndim == 2:
        conf = conf.max(1)
    if conf.ndim != 1 or len(conf) != len(xyz):
        raise ShapeError(f"confidence has shape {list(conf.shape)}, expected [{len(xyz)}] or [{len(xyz)}, K]")
    mean = float(np.nanmean(conf)) if len(conf) else float("nan")
    full = f"{title or ''} (mean {mean:.3f})".strip()
    html = html or (path is not None and str(path).lower().endswith((".html", ".htm")))
    grid = PanelGrid(1, 1, html, [full], panel_size)
    from .colors import feature_colors

    cols = feature_colors(conf, cmap=cmap, vmin=0.0, vmax=1.0)
    grid.points(0, xyz, colors=cols, max_points=max_points, size=size)
    if html:
        import plotly.graph_objects as go

        grid.fig.add_trace(
            go.Scatter3d(
                x=[None], y=[None], z=[None], mode="markers", showlegend=False, hoverinfo="skip",
                marker={"color": [0.0], "colorscale": cmap,
                        "cmin": 0, "cmax": 1, "showscale": True, "colorbar": {"title": "confidence"}},
            )
        )  # fmt: skip
    else:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        ax = grid.target(0)
        grid.fig.colorbar(ScalarMappable(Normalize(0, 1), cmap), ax=ax, shrink=0.6, label="confidence")
    return _finish(grid, path, dpi)


def error_map(
    xyz,
    preds,
    targets,
    path: str | Path | None = None,
    html: bool = False,
    ignore_index: int = -100,
    title: str | None = "errors",
    max_points: int | None = DEFAULT_MAX_POINTS,
    size: float | None = None,
    panel_size: float = 5.0,
    dpi: float = 100,
):
    """Correct points green, wrong points red, ignored targets (negative) grey; returns the
    figure. xyz float [N, 3] (or a PointCloud); preds labels [N] or scores [N, K]; targets
    int [N]. The title gives the error rate over non-ignored points."""
    xyz = _as_xyz(xyz.xyz if hasattr(xyz, "xyz") else xyz)
    pl, tl = as_labels(preds), as_labels(targets)
    if len(pl) != len(xyz) or len(tl) != len(xyz):
        raise ShapeError(f"error_map: {len(pl)} predictions and {len(tl)} targets for {len(xyz)} points")
    cols = np.where((pl == tl)[:, None], _CORRECT, _WRONG).astype(np.float32)
    ignored = tl < 0
    cols[ignored] = IGNORED_COLOR
    n_valid = int((~ignored).sum())
    n_wrong = int(((pl != tl) & ~ignored).sum())
    rate = n_wrong / n_valid if n_valid else float("nan")
    full = f"{title or ''} ({n_wrong:,} of {n_valid:,} wrong, {rate:.1%}; grey = ignored)".strip()
    html = html or (path is not None and str(path).lower().endswith((".html", ".htm")))
    grid = PanelGrid(1, 1, html, [full], panel_size)
    grid.points(0, xyz, colors=cols, max_points=max_points, size=size)
    return _finish(grid, path, dpi)
