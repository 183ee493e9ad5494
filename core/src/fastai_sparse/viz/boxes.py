"""Spatial targets over point clouds: oriented boxes (12 edges) and keypoints (points plus
axis arrows), on matplotlib 3D axes and plotly figures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..geometry import Boxes, Keypoints
from .colors import class_colors, rgb_strings
from .points import DEFAULT_MAX_POINTS, PanelGrid, _as_cloud, _is_plotly, cloud_colors, save_figure

__all__ = ["BOX_EDGES", "box_edges", "draw_boxes", "draw_keypoints", "show_detection"]


def _edges() -> np.ndarray:
    # Boxes.corners() orders corners by (sx, sy, sz) in {-1, 1}^3 with index 4*ix + 2*iy + iz:
    # an edge joins two corners differing in exactly one sign (one bit).
    return np.array([(i, i ^ b) for i in range(8) for b in (4, 2, 1) if i < i ^ b], np.int64)


#: int64 [12, 2]: corner index pairs of a box's edges (corner order of ``Boxes.corners()``).
BOX_EDGES = _edges()


def box_edges(boxes: Boxes) -> np.ndarray:
    """float32 [K, 12, 2, 3]: the two end points of every edge of every box."""
    c = boxes.corners()
    return c[:, BOX_EDGES]


def _target(ax_or_fig: Any):
    """('plotly', fig) or ('mpl', ax) from an Axes3D, a plotly figure or a (fig, row, col)."""
    if isinstance(ax_or_fig, tuple):
        return "plotly", ax_or_fig[0], {"row": ax_or_fig[1], "col": ax_or_fig[2]}
    if _is_plotly(ax_or_fig):
        return "plotly", ax_or_fig, {}
    return "mpl", ax_or_fig, {}


def _color_of(color: Any, labels: np.ndarray, n: int) -> list:
    if color is not None:
        return [color] * n
    pal = class_colors(int(labels.max(initial=0)) + 1)
    return [tuple(pal[lab]) if lab >= 0 else (0.3, 0.3, 0.3) for lab in labels]


def _css(c: Any) -> str:
    if isinstance(c, str):
        return c
    return rgb_strings(np.asarray(c, np.float64).reshape(1, 3))[0]


def draw_boxes(
    ax_or_fig: Any,
    boxes: Boxes,
    color: Any = None,
    linewidth: float = 1.5,
    class_names: Sequence[str] | None = None,
    name: str = "boxes",
    dash: bool = False,
):
    """Draw the 12 edges of every box; returns ``ax_or_fig``.

    ax_or_fig: a matplotlib ``Axes3D``, a plotly figure, or ``(plotly_fig, row, col)`` for a
    subplot. color: one colour for all boxes (name or rgb in 0..1), or None to colour each
    box by its label. Each box is labelled with its class name when ``class_names`` is given.
    """
    kind, tgt, where = _target(ax_or_fig)
    seg = box_edges(boxes)  # [K, 12, 2, 3]
    cols = _color_of(color, boxes.labels, len(boxes))
    if kind == "mpl":
        for b in range(len(boxes)):
            for e in seg[b]:
                tgt.plot(e[:, 0], e[:, 1], e[:, 2], color=cols[b], lw=linewidth, ls="--" if dash else "-")
            if class_names is not None and 0 <= boxes.labels[b] < len(class_names):
                top = seg[b].reshape(-1, 3)
                tgt.text(*top[np.argmax(top[:, 2])], class_names[boxes.labels[b]], fontsize=6, color=cols[b])
        return ax_or_fig
    import plotly.graph_objects as go

    for b in range(len(boxes)):
        pts = np.concatenate([np.vstack([e, [np.nan] * 3]) for e in seg[b]])
        label = (
            class_names[boxes.labels[b]]
            if class_names is not None and 0 <= boxes.labels[b] < len(class_names)
            else ""
        )
        tgt.add_trace(
            go.Scatter3d(
                x=pts[:, 0], y=pts[:, 1], z=pts[:, 2], mode="lines", name=f"{name} {label}".strip(),
                legendgroup=name, showlegend=b == 0, connectgaps=False,
                line={"color": _css(cols[b]), "width": linewidth * 3, "dash": "dash" if dash else "solid"},
            ),
            **where,
        )  # fmt: skip
    return ax_or_fig


def draw_keypoints(
    ax_or_fig: Any,
    keypoints: Keypoints,
    color: Any = None,
    size: float = 30.0,
    axis_length: float | None = None,
    name: str = "keypoints",
):
    """Draw keypoints as large markers and, when they have axes, an arrow along each axis;
    returns ``ax_or_fig`` (an ``Axes3D``, a plotly figure or ``(fig, row, col)``).

    axis_length: arrow length in scene units (default: 10% of the keypoints' extent, or 0.1).
    """
    kind, tgt, where = _target(ax_or_fig)
    p = keypoints.points.astype(np.float64)
    cols = _color_of(color, keypoints.labels, len(keypoints))
    if axis_length is None:
        ext = float(np.ptp(p, axis=0).max()) if len(p) > 1 else 0.0
        axis_length = 0.1 * ext if ext > 0 else 0.1
    ax_vec = None if keypoints.axes is None else keypoints.axes.astype(np.float64) * axis_length
    if kind == "mpl":
        tgt.scatter(p[:, 0], p[:, 1], p[:, 2], c=np.array([_rgb(c) for c in cols]), s=size, marker="o",
                    edgecolors="k", depthshade=False)  # fmt: skip
        if ax_vec is not None:
            tgt.quiver(p[:, 0], p[:, 1], p[:, 2], ax_vec[:, 0], ax_vec[:, 1], ax_vec[:, 2],
                       colors=[_rgb(c) for c in cols], arrow_length_ratio=0.3, linewidths=1.5)  # fmt: skip
        return ax_or_fig
    import plotly.graph_objects as go

    tgt.add_trace(
        go.Scatter3d(
            x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers", name=name,
            marker={"size": max(size / 5, 4), "color": [_css(c) for c in cols], "line": {"color": "black", "width": 1}},
        ),
        **where,
    )  # fmt: skip
    if ax_vec is not None:
        tips = p + ax_vec
        seg = np.concatenate([np.stack([p, tips, np.full_like(p, np.nan)], 1)]).reshape(-1, 3)
        tgt.add_trace(
            go.Scatter3d(x=seg[:, 0], y=seg[:, 1], z=seg[:, 2], mode="lines", name=f"{name} axes",
                         line={"color": "black", "width": 4}, connectgaps=False),
            **where,
        )  # fmt: skip
        tgt.add_trace(
            go.Cone(x=tips[:, 0], y=tips[:, 1], z=tips[:, 2], u=ax_vec[:, 0], v=ax_vec[:, 1], w=ax_vec[:, 2],
                    anchor="tip", sizemode="absolute", sizeref=axis_length * 0.3, showscale=False,
                    colorscale=[[0, "black"], [1, "black"]], name=f"{name} arrows"),
            **where,
        )  # fmt: skip
    return ax_or_fig


def _rgb(c: Any):
    if isinstance(c, str):
        from matplotlib.colors import to_rgb

        return to_rgb(c)
    return tuple(float(v) for v in c)


def _draw_target(tgt, value, color, class_names, dash=False, name="boxes"):
    if isinstance(value, Boxes):
        draw_boxes(tgt, value, color=color, class_names=class_names, dash=dash, name=name)
    elif isinstance(value, Keypoints):
        draw_keypoints(tgt, value, color=color, name=name)
    elif value is not None:
        raise TypeError(f"expected geometry.Boxes or geometry.Keypoints, got {type(value).__name__}")


def show_detection(
    cloud: Any,
    pred_boxes: Boxes | Keypoints | None = None,
    gt_boxes: Boxes | Keypoints | None = None,
    class_names: Sequence[str] | None = None,
    color_by: str = "auto",
    path: str | Path | None = None,
    html: bool = False,
    max_points: int | None = DEFAULT_MAX_POINTS,
    panel_size: float = 5.0,
    dpi: float = 100,
):
    """Ground-truth and predicted boxes (or keypoints) over the cloud, side by side; returns
    the figure. ``gt_boxes`` None uses ``cloud.target``. Boxes are coloured by class."""
    cloud = _as_cloud(cloud)
    if gt_boxes is None:
        gt_boxes = cloud.target if isinstance(cloud.target, (Boxes, Keypoints)) else None
    html = html or (path is not None and str(path).lower().endswith((".html", ".htm")))
    titles = [
        f"ground truth ({len(gt_boxes) if gt_boxes is not None else 0})",
        f"prediction ({len(pred_boxes) if pred_boxes is not None else 0})",
    ]
    grid = PanelGrid(2, 2, html, titles, panel_size)
    kw = cloud_colors(cloud, color_by, class_names=class_names)
    for i, value in enumerate((gt_boxes, pred_boxes)):
        grid.points(i, cloud.xyz, max_points=max_points, **kw)
        _draw_target(grid.target(i), value, None, class_names, dash=i == 1, name=("truth", "predicted")[i])
    grid.finish()
    if path is not None:
        save_figure(grid.fig, path, dpi=dpi)
    return grid.fig
