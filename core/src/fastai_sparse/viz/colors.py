"""Colours for point clouds: a stable categorical palette for class labels (with a grey for
ignored points), feature colours (rgb as is, scalars through a colormap) and small helpers.

Every colour returned here is float32 RGB in [0, 1], shape [N, 3].
"""

from __future__ import annotations

import colorsys

import numpy as np

from ..errors import DataFormatError, ShapeError

__all__ = [
    "IGNORED_COLOR",
    "class_colors",
    "feature_colors",
    "label_colors",
    "rgb_strings",
    "to_numpy",
]

#: Colour of points whose label is ignored (any negative label, e.g. ``ignore_index=-100``).
IGNORED_COLOR = np.array([0.62, 0.62, 0.62], np.float32)

# 20 well separated colours (the saturated tab10 family, then lighter companions), without
# the greys of tab10 so they never collide with IGNORED_COLOR.
_BASE_HEX = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
    "#17becf", "#000075", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#6b3d2e",
    "#f7b6d2", "#808000", "#ffe119", "#e6194b",
]  # fmt: skip


def _hex_to_rgb(h: str) -> tuple[float, float, float]:
    h = h.lstrip("#")
    return tuple(int(h[i : i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]


_BASE = np.array([_hex_to_rgb(h) for h in _BASE_HEX], np.float32)


def to_numpy(a) -> np.ndarray:
    """A numpy array from a numpy array, a torch tensor (any device) or a sequence."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def class_colors(n_classes: int) -> np.ndarray:
    """float32 [n_classes, 3]: the colour of each class.

    Stable: class ``c`` has the same colour whatever ``n_classes`` is. The first 20 come
    from a fixed hand-picked palette; later ones walk the hue circle by the golden angle
    with alternating saturation/value, so they stay distinct and never grey.
    """
    if n_classes < 0:
        raise ValueError(f"n_classes must be >= 0, got {n_classes}")
    out = np.empty((n_classes, 3), np.float32)
    k = min(n_classes, len(_BASE))
    out[:k] = _BASE[:k]
    for c in range(len(_BASE), n_classes):
        i = c - len(_BASE)
        h = (0.13 + i * 0.6180339887) % 1.0
        s = (0.95, 0.6, 0.8)[i % 3]
        v = (0.85, 0.65, 1.0, 0.5)[(i // 3) % 4]
        out[c] = colorsys.hsv_to_rgb(h, s, v)
    return out


def label_colors(labels, n_classes: int, ignore_index: int | None = -100) -> np.ndarray:
    """float32 [N, 3] colours of integer labels [N].

    Negative labels (the ignore index, -1, ...) are drawn in :data:`IGNORED_COLOR`. A label
    ``>= n_classes`` raises :class:`DataFormatError` (a wrong picture would hide a bug).
    """
    lab = to_numpy(labels)
    if lab.ndim != 1:
        raise ShapeError(f"labels must have shape [N], got {list(lab.shape)}")
    if lab.size and not np.issubdtype(lab.dtype, np.integer) and not np.all(np.mod(lab, 1) == 0):
        raise DataFormatError(f"labels must be integers, got dtype {lab.dtype}", field="labels")
    lab = lab.astype(np.int64)
    if lab.size and lab.max() >= n_classes:
        bad = int(lab.max())
        raise DataFormatError(
            f"label {bad} found, expected labels in 0..{n_classes - 1} (or negative / ignore_index "
            f"{ignore_index} for ignored points)",
            field="labels",
        )
    pal = class_colors(n_classes)
    out = np.empty((len(lab), 3), np.float32)
    ok = lab >= 0
    out[ok] = pal[lab[ok]]
    out[~ok] = IGNORED_COLOR
    return out


def _colormap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


def feature_colors(
    values, cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None
) -> np.ndarray:
    """float32 [N, 3] colours of a per-point feature.

    ``values`` [N, 3] is taken as a colour: uint8 or values above 1 are divided by 255
    (0..255 as read from files), values in [-1, 1] with negatives are mapped by
    ``(v + 1) / 2`` (the usual ``rgb / 127.5 - 1`` normalisation), values in [0, 1] are used
    as is. ``values`` [N] or [N, 1] is a scalar mapped through ``cmap`` between ``vmin`` and
    ``vmax`` (default: its min and max). Other widths raise :class:`ShapeError`.
    """
    v = to_numpy(values)
    if v.ndim == 2 and v.shape[1] == 1:
        v = v[:, 0]
    if v.ndim == 2 and v.shape[1] == 3:
        if v.dtype == np.uint8:
            return (v.astype(np.float32) / 255.0).astype(np.float32)
        v = v.astype(np.float32)
        finite = v[np.isfinite(v)]
        if finite.size == 0:
            return np.broadcast_to(IGNORED_COLOR, v.shape).copy()
        if finite.max() > 1.0:
            v = v / 255.0
        elif finite.min() < 0.0:
            v = (v + 1.0) / 2.0
        return np.clip(np.nan_to_num(v, nan=0.62), 0.0, 1.0).astype(np.float32)
    if v.ndim != 1:
        raise ShapeError(f"feature values must have shape [N], [N, 1] or [N, 3] (rgb), got {list(v.shape)}")
    v = v.astype(np.float64)
    finite = v[np.isfinite(v)]
    lo = float(finite.min()) if vmin is None and finite.size else (0.0 if vmin is None else float(vmin))
    hi = float(finite.max()) if vmax is None and finite.size else (1.0 if vmax is None else float(vmax))
    t = (v - lo) / (hi - lo) if hi > lo else np.full_like(v, 0.5)
    rgba = _colormap(cmap)(np.clip(np.nan_to_num(t, nan=0.0), 0.0, 1.0))
    out = rgba[:, :3].astype(np.float32)
    out[~np.isfinite(v)] = IGNORED_COLOR
    return out


def rgb_strings(colors: np.ndarray) -> list[str]:
    """``'rgb(r,g,b)'`` strings (plotly) from float colours [N, 3] in [0, 1]."""
    c = np.clip(np.rint(np.asarray(colors, np.float64) * 255), 0, 255).astype(np.int64)
    return [f"rgb({r},{g},{b})" for r, g, b in c]
