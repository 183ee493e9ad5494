"""Point clouds as pictures: matplotlib 3D scatter (PNG) and plotly ``Scatter3d`` (HTML).

Two back ends share one idea: a *panel* shows one cloud, coloured by per-point labels (a
categorical palette, ignored points grey), by explicit colours, or by a scalar through a
colormap. Large clouds are subsampled deterministically (a seeded choice without
replacement) and the panel's title says so.

Nothing here imports pyplot: figures are ``matplotlib.figure.Figure`` objects (they display
inline in Jupyter and save headless) or ``plotly.graph_objects.Figure``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataFormatError, ShapeError
from ..geometry import Mesh, PointCloud
from .colors import class_colors, feature_colors, label_colors, rgb_strings, to_numpy

__all__ = [
    "PanelGrid",
    "cloud_colors",
    "new_figure",
    "plot_points",
    "points_figure",
    "save_figure",
    "show_clouds",
    "subsample_indices",
]

DEFAULT_MAX_POINTS = 20000


# ----------------------------------------------------------------------------- helpers
def subsample_indices(
    n: int, max_points: int | None, rng: int | np.random.Generator | None = 0
) -> np.ndarray:
    """int64 sorted indices of at most ``max_points`` of ``n`` points.

    All points when ``n <= max_points`` (or ``max_points`` is None); otherwise a choice
    without replacement, deterministic for an int seed ``rng`` (default 0).
    """
    if max_points is None or n <= max_points:
        return np.arange(n, dtype=np.int64)
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return np.sort(gen.choice(n, size=max_points, replace=False)).astype(np.int64)


def default_marker_px(n: int) -> float:
    """Marker diameter (pixels / points) that keeps ``n`` points readable: 4.5 for up to 2,000,
    1.5 for 20,000 and more."""
    return float(np.clip(np.sqrt(40000.0 / max(n, 1)), 1.5, 4.5))


def _subsample_note(title: str | None, shown: int, total: int) -> str:
    base = title or ""
    if shown < total:
        note = f"({shown:,} of {total:,} points shown)"
        return f"{base}\n{note}" if base else note
    return base


def new_figure(figsize: tuple[float, float] = (5.0, 5.0), dpi: float = 100):
    """A ``matplotlib.figure.Figure`` not registered with pyplot (no global state, headless)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=dpi)


def _is_plotly(fig: Any) -> bool:
    return type(fig).__module__.startswith("plotly")


def save_figure(fig: Any, path: str | Path, dpi: float | None = None, title: str | None = None) -> Path:
    """Save a matplotlib figure as PNG (exact size: figsize x dpi, no tight cropping) or a
    plotly figure as a self-contained offline HTML file; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if _is_plotly(fig):
        from .report import write_html

        return write_html(fig, path, title=title or path.stem)
    from ..files import atomic_path

    with atomic_path(path) as tmp:  # atomic, with the user's permissions
        fig.savefig(tmp, dpi=dpi if dpi is not None else fig.dpi, format=path.suffix[1:].lower() or "png")
    return path


def _as_xyz(xyz) -> np.ndarray:
    a = to_numpy(xyz)
    if a.ndim != 2 or a.shape[1] < 3:
        raise ShapeError(f"xyz must have shape [N, 3], got {list(a.shape)}")
    return a[:, :3].astype(np.float64)


def _legend_names(labels: np.ndarray, class_names: Sequence[str] | None) -> dict[int, str]:
    present = np.unique(labels)
    out = {}
    for c in present.tolist():
        if c < 0:
            out[c] = "ignored"
        else:
            out[c] = str(class_names[c]) if class_names is not None and c < len(class_names) else str(c)
    return out


def _resolve(xyz, colors, values, labels, n_classes, class_names, ignore_index, cmap):
    """Colours [N, 3] for a panel, plus labels (or None) for a legend."""
    n = len(xyz)
    if labels is not None:
        lab = to_numpy(labels).astype(np.int64).reshape(-1)
        if len(lab) != n:
            raise ShapeError(f"labels has {len(lab)} rows, xyz has {n}")
        if n_classes is None:
            n_classes = len(class_names) if class_names is not None else int(lab.max(initial=-1)) + 1
        return label_colors(lab, n_classes, ignore_index), lab
    if colors is not None:
        col = to_numpy(colors)
        if col.ndim != 2 or col.shape[1] not in (3, 4) or len(col) != n:
            raise ShapeError(f"colors must have shape [{n}, 3], got {list(col.shape)}")
        return feature_colors(col[:, :3]), None
    vals = xyz[:, 2] if values is None else to_numpy(values)
    if len(vals) != n:
        raise ShapeError(f"values has {len(vals)} rows, xyz has {n}")
    return feature_colors(vals, cmap=cmap), None


# ----------------------------------------------------------------------------- matplotlib
def plot_points(
    xyz,
    colors=None,
    values=None,
    labels=None,
    ax=None,
    size: float | None = None,
    title: str | None = None,
    max_points: int | None = DEFAULT_MAX_POINTS,
    rng: int | np.random.Generator | None = 0,
    n_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    ignore_index: int | None = -100,
    cmap: str = "viridis",
    figsize: tuple[float, float] = (5.0, 5.0),
    legend: bool = True,
):
    """Matplotlib 3D scatter of points; returns the ``Axes3D``.

    xyz: float [N, 3]. Colour by, in order of precedence: ``labels`` int [N] (class palette,
    negative = ignored grey, legend with ``class_names``), ``colors`` [N, 3] (rgb: 0..255,
    0..1 or -1..1), ``values`` [N] (scalar through ``cmap``), else height (z). Equal aspect on
    all three axes. Above ``max_points`` points a deterministic subsample (seed ``rng``) is
    drawn and the title says how many are shown. ``ax`` None makes a new figure. ``size``:
    marker diameter in points (None: :func:`default_marker_px` of the number drawn).
    """
    xyz = _as_xyz(xyz)
    cols, lab = _resolve(xyz, colors, values, labels, n_classes, class_names, ignore_index, cmap)
    if ax is None:
        fig = new_figure(figsize)
        ax = fig.add_subplot(projection="3d")
    idx = subsample_indices(len(xyz), max_points, rng)
    p = xyz[idx]
    px = default_marker_px(len(p)) if size is None else size
    ax.scatter(p[:, 0], p[:, 1], p[:, 2], c=cols[idx], s=px**2, marker="o", linewidths=0, depthshade=False)
    if len(p):
        lo, hi = p.min(0), p.max(0)
        ctr, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-6)
        ax.set_xlim(ctr[0] - half, ctr[0] + half)
        ax.set_ylim(ctr[1] - half, ctr[1] + half)
        ax.set_zlim(ctr[2] - half, ctr[2] + half)
        ax.set_box_aspect((1, 1, 1))
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_zlabel("z")
    ax.tick_params(labelsize=6)
    full = _subsample_note(title, len(idx), len(xyz)) if len(xyz) else ((title or "") + " (empty)").strip()
    if full:
        ax.set_title(full, fontsize=9)
    if legend and lab is not None and len(lab):
        from matplotlib.patches import Patch

        names = _legend_names(lab[idx], class_names)
        if 0 < len(names) <= 25:
            nc = n_classes if n_classes is not None else max(max(names) + 1, len(class_names or []))
            pal = class_colors(max(nc, 1))
            handles = [
                Patch(color=(pal[c] if c >= 0 else (0.62, 0.62, 0.62)), label=nm) for c, nm in names.items()
            ]
            ax.legend(handles=handles, fontsize=6, loc="upper left", frameon=False)
    return ax


# ----------------------------------------------------------------------------- plotly
def points_figure(
    xyz,
    colors=None,
    values=None,
    labels=None,
    fig=None,
    row: int | None = None,
    col: int | None = None,
    size: float | None = None,
    title: str | None = None,
    max_points: int | None = DEFAULT_MAX_POINTS,
    rng: int | np.random.Generator | None = 0,
    n_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    ignore_index: int | None = -100,
    cmap: str = "viridis",
    name: str | None = None,
):
    """Plotly 3D scatter (``go.Scatter3d``, ``aspectmode="data"``); returns the figure.

    Same colouring and subsampling rules as :func:`plot_points`. With ``labels`` there is one
    trace per class, so the legend names the classes and clicking hides one. ``fig`` /
    ``row`` / ``col`` add to an existing (sub)plot instead of making a new figure.
    """
    import plotly.graph_objects as go

    xyz = _as_xyz(xyz)
    cols, lab = _resolve(xyz, colors, values, labels, n_classes, class_names, ignore_index, cmap)
    idx = subsample_indices(len(xyz), max_points, rng)
    p = xyz[idx]
    new = fig is None
    if new:
        fig = go.Figure()
    where = {"row": row, "col": col} if row is not None else {}
    marker = {"size": default_marker_px(len(p)) if size is None else size}
    if lab is not None:
        shown = {t.name for t in fig.data if getattr(t, "showlegend", None) is not False}
        lab_s, col_s = lab[idx], cols[idx]
        for c, nm in _legend_names(lab_s, class_names).items():
            m = lab_s == c
            fig.add_trace(
                go.Scatter3d(
                    x=p[m, 0], y=p[m, 1], z=p[m, 2], mode="markers", name=nm, legendgroup=nm,
                    showlegend=nm not in shown, marker={**marker, "color": rgb_strings(col_s[m][:1])[0]},
                ),
                **where,
            )  # fmt: skip
    else:
        fig.add_trace(
            go.Scatter3d(
                x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers", name=name or "points", showlegend=False,
                marker={**marker, "color": rgb_strings(cols[idx])},
            ),
            **where,
        )  # fmt: skip
    if new:
        fig.update_layout(
            title=_subsample_note(title, len(idx), len(xyz)).replace("\n", "<br>") or None,
            scene={"aspectmode": "data"},
            margin={"l": 0, "r": 0, "t": 40, "b": 0},
        )
    return fig


# ----------------------------------------------------------------------------- grids
class PanelGrid:
    """A grid of 3D panels on either back end.

    ``PanelGrid(n, ncols, html)``; ``grid.target(i)`` is an ``Axes3D`` (matplotlib) or
    ``(fig, row, col)`` (plotly); ``grid.points(i, xyz, ...)`` draws a cloud in panel ``i``;
    ``grid.fig`` is the figure.
    """

    def __init__(
        self,
        n: int,
        ncols: int = 4,
        html: bool = False,
        titles: Sequence[str] | None = None,
        panel_size: float = 4.0,
        suptitle: str | None = None,
    ):
        if n < 1:
            raise ValueError("nothing to show: 0 panels")
        self.n, self.html = n, html
        self.ncols = max(1, min(ncols, n))
        self.nrows = math.ceil(n / self.ncols)
        self.titles = [str(t) for t in titles] if titles is not None else [""] * n
        if html:
            from plotly.subplots import make_subplots

            self.fig = make_subplots(
                rows=self.nrows, cols=self.ncols, specs=[[{"type": "scene"}] * self.ncols] * self.nrows,
                subplot_titles=self.titles + [""] * (self.nrows * self.ncols - n),
                horizontal_spacing=0.02, vertical_spacing=0.06 if self.nrows > 1 else 0.02,
            )  # fmt: skip
            self.fig.update_scenes(aspectmode="data", camera={"eye": {"x": 1.7, "y": 1.7, "z": 1.2}})
            self.fig.update_layout(
                height=int(110 * panel_size * self.nrows), margin={"l": 0, "r": 0, "t": 60, "b": 0},
                title=suptitle, legend={"itemsizing": "constant"},
            )  # fmt: skip
            self._axes = None
        else:
            self.fig = new_figure((panel_size * self.ncols, panel_size * self.nrows))
            self._axes = [
                self.fig.add_subplot(self.nrows, self.ncols, i + 1, projection="3d") for i in range(n)
            ]
            if suptitle:
                self.fig.suptitle(suptitle)

    def target(self, i: int):
        if self.html:
            return (self.fig, i // self.ncols + 1, i % self.ncols + 1)
        return self._axes[i]

    def points(self, i: int, xyz, title: str | None = None, **kw) -> None:
        title = self.titles[i] if title is None else title
        if self.html:
            n = len(to_numpy(xyz))
            shown = min(n, kw.get("max_points") or n)
            points_figure(xyz, fig=self.fig, row=i // self.ncols + 1, col=i % self.ncols + 1, **kw)
            note = _subsample_note(title, shown, n).replace("\n", "<br>")
            if note:
                self._set_title(i, note)
        else:
            plot_points(xyz, ax=self._axes[i], title=title, **kw)

    def _set_title(self, i: int, text: str) -> None:
        ann = self.fig.layout.annotations
        if i < len(ann):
            ann[i].text = text

    def finish(self) -> None:
        if not self.html:
            # tight_layout ignores 3D titles: keep room for two title lines above each row
            h = self.fig.get_figheight()
            self.fig.tight_layout(rect=(0, 0, 1, 1 - 0.15 / h), h_pad=2.5)


# ----------------------------------------------------------------------------- clouds
def _as_cloud(obj) -> PointCloud:
    if isinstance(obj, PointCloud):
        return obj
    if isinstance(obj, Mesh):
        return obj.to_points()
    if isinstance(obj, dict) and "xyz" in obj:
        return PointCloud(obj["xyz"], {k: v for k, v in obj.items() if k != "xyz"})
    arr = to_numpy(obj)
    if arr.ndim == 2 and arr.shape[1] >= 3:
        return PointCloud(arr[:, :3])
    raise TypeError(
        f"expected a PointCloud, Mesh, dict with 'xyz' or an [N, 3] array, got {type(obj).__name__}"
    )


def _cloud_name(cloud: PointCloud, i: int) -> str:
    return str(cloud.meta.get("id") or cloud.meta.get("path") or f"sample {i}")


def cloud_colors(
    cloud: PointCloud,
    color_by: str = "labels",
    n_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    cmap: str = "viridis",
) -> dict[str, Any]:
    """Keyword arguments (``labels=`` / ``colors=`` / ``values=``) colouring ``cloud`` by
    ``color_by``: ``"labels"``, ``"rgb"``, ``"z"``, ``"auto"`` (labels, else rgb, else z) or
    the name of any per-point attribute (integer [N] -> categorical, [N, 3] -> colour,
    [N] float -> colormap). A missing attribute raises :class:`DataFormatError` naming the
    cloud and the attributes it has."""
    if color_by == "auto":
        color_by = "labels" if "labels" in cloud.attrs else ("rgb" if "rgb" in cloud.attrs else "z")
    if color_by == "z":
        return {"values": cloud.xyz[:, 2]}
    if color_by not in cloud.attrs:
        raise DataFormatError(
            f"cannot colour by {color_by!r}: the cloud has attributes {sorted(cloud.attrs)}; expected one of "
            "those, 'z' or 'auto'",
            path=cloud.meta.get("path") or cloud.meta.get("id"), field=color_by,
        )  # fmt: skip
    a = cloud.attrs[color_by]
    if a.ndim == 1 and np.issubdtype(a.dtype, np.integer):
        return {"labels": a, "n_classes": n_classes, "class_names": class_names}
    if a.ndim == 2 and a.shape[1] == 3:
        return {"colors": a}
    return {"values": a, "cmap": cmap}


def show_clouds(
    clouds,
    color_by: str = "labels",
    ncols: int = 4,
    path: str | Path | None = None,
    html: bool = False,
    class_names: Sequence[str] | None = None,
    n_classes: int | None = None,
    titles: Sequence[str] | None = None,
    max_points: int | None = DEFAULT_MAX_POINTS,
    size: float | None = None,
    rng: int | None = 0,
    ignore_index: int | None = -100,
    cmap: str = "viridis",
    panel_size: float = 4.0,
    dpi: float = 100,
):
    """Several point clouds side by side; returns the figure.

    clouds: PointClouds (or Meshes, dicts with ``xyz``, arrays [N, 3]); one is fine.
    ``color_by``: see :func:`cloud_colors`. ``html=True`` (or a ``path`` ending in ``.html``)
    makes a plotly figure with one 3D subplot per cloud, else a matplotlib PNG grid of
    ``panel_size * ncols`` by ``panel_size * nrows`` inches. ``path`` saves it (PNG at ``dpi``,
    or a self-contained offline HTML page). Titles default to ``meta["id"]`` plus the class
    name of an integer per-sample target.
    """
    if isinstance(clouds, (PointCloud, Mesh, dict)) or (hasattr(clouds, "ndim") and clouds.ndim == 2):
        clouds = [clouds]
    clouds = [_as_cloud(c) for c in clouds]
    html = html or (path is not None and str(path).lower().endswith((".html", ".htm")))
    if n_classes is None and class_names is not None:
        n_classes = len(class_names)
    if n_classes is None and color_by in ("labels", "auto"):
        mx = [int(c.attrs["labels"].max(initial=-1)) for c in clouds if "labels" in c.attrs]
        n_classes = max(mx) + 1 if mx else None
    if titles is None:
        titles = []
        for i, c in enumerate(clouds):
            t = _cloud_name(c, i)
            if isinstance(c.target, (int, np.integer)):
                k = int(c.target)
                t += f": {class_names[k] if class_names is not None and 0 <= k < len(class_names) else k}"
            titles.append(t)
    grid = PanelGrid(len(clouds), ncols, html, titles, panel_size)
    for i, c in enumerate(clouds):
        kw = cloud_colors(c, color_by, n_classes, class_names, cmap)
        kw.setdefault("class_names", class_names)
        kw.setdefault("n_classes", n_classes)
        grid.points(
            i, c.xyz, max_points=max_points, rng=rng, ignore_index=ignore_index,
            size=size, **kw,
        )  # fmt: skip
    grid.finish()
    if path is not None:
        save_figure(grid.fig, path, dpi=dpi)
    return grid.fig
