"""Training pictures from plain numbers: first-layer kernels as slices, lr_find and loss
curves (matplotlib figures; pass ``path`` to save a PNG)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ShapeError
from .colors import to_numpy
from .points import new_figure, save_figure

__all__ = ["kernel_array", "kernel_slices", "plot_losses", "plot_lr_find", "plot_recorder"]


def kernel_array(weight) -> np.ndarray:
    """float32 [Cout, Cin, k, k, k] from a sparse conv weight.

    Accepts the engine's layout ``[k**3, Cin, Cout]`` (kernel offsets enumerated with x
    slowest and z fastest, i.e. offset index ``(i * k + j) * k + l`` for ``(dx, dy, dz) =
    (i, j, l)``) or a dense ``[Cout, Cin, k, k, k]`` conv3d weight.
    """
    w = to_numpy(weight).astype(np.float32)
    if w.ndim == 5:
        if not (w.shape[2] == w.shape[3] == w.shape[4]):
            raise ShapeError(
                f"conv weight {list(w.shape)}: expected [Cout, Cin, k, k, k] with a cubic kernel"
            )
        return w
    if w.ndim == 3:
        k = round(w.shape[0] ** (1 / 3))
        if k**3 != w.shape[0]:
            raise ShapeError(
                f"conv weight {list(w.shape)}: first dim {w.shape[0]} is not k**3 (expected [k**3, Cin, Cout])"
            )
        return np.ascontiguousarray(w.reshape(k, k, k, w.shape[1], w.shape[2]).transpose(4, 3, 0, 1, 2))
    raise ShapeError(
        f"conv weight of shape {list(w.shape)}: expected [k**3, Cin, Cout] or [Cout, Cin, k, k, k]"
    )


def kernel_slices(
    weight,
    in_channel: int | None = None,
    max_out: int = 16,
    cmap: str = "RdBu_r",
    path: str | Path | None = None,
    cell: float = 0.7,
    dpi: float = 100,
):
    """First-layer kernels as slices: one row per output channel, one column per z slice.

    weight: ``[k**3, Cin, Cout]`` (engine layout) or ``[Cout, Cin, k, k, k]``. With 3 input
    channels (rgb) and ``in_channel=None`` each slice is shown as a colour image (each output
    channel min-max normalised); otherwise the input channel ``in_channel`` (or the mean over
    input channels) in a diverging colormap symmetric about 0. At most ``max_out`` output
    channels. Returns the matplotlib figure; ``path`` saves a PNG.
    """
    w = kernel_array(weight)
    cout, cin, k = w.shape[0], w.shape[1], w.shape[2]
    if in_channel is not None and not 0 <= in_channel < cin:
        raise ShapeError(f"in_channel {in_channel} requested, the weight has {cin} input channels")
    n = min(cout, max_out)
    rgb = cin == 3 and in_channel is None
    fig = new_figure((cell * k + 0.8, cell * n + 0.8), dpi=dpi)
    axes = fig.subplots(n, k, squeeze=False)
    if rgb:
        data = w[:n].transpose(0, 2, 3, 4, 1)  # [n, x, y, z, 3]
        lo = data.reshape(n, -1).min(1)[:, None, None, None, None]
        hi = data.reshape(n, -1).max(1)[:, None, None, None, None]
        data = (data - lo) / np.where(hi > lo, hi - lo, 1.0)
        vmax = None
    else:
        data = w[:n, in_channel] if in_channel is not None else w[:n].mean(1)  # [n, x, y, z]
        vmax = float(np.abs(data).max()) or 1.0
    im = None
    for o in range(n):
        for z in range(k):
            ax = axes[o, z]
            sl = data[o, :, :, z]  # [x, y(, 3)]
            if rgb:
                ax.imshow(np.swapaxes(sl, 0, 1), origin="lower", interpolation="nearest")
            else:
                im = ax.imshow(
                    sl.T, origin="lower", cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest"
                )
            ax.set_xticks([])
            ax.set_yticks([])
            if o == 0:
                ax.set_title(f"z={z - k // 2:+d}", fontsize=7)
            if z == 0:
                ax.set_ylabel(f"out {o}", fontsize=7)
    what = "rgb" if rgb else (f"input channel {in_channel}" if in_channel is not None else "mean over inputs")
    fig.suptitle(f"kernels {k}x{k}x{k} ({what}; {n} of {cout} outputs)", fontsize=8)
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6)
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig


def _floats(seq, name: str) -> np.ndarray:
    a = np.asarray([float(to_numpy(v)) for v in seq], np.float64) if len(seq) else np.zeros(0)
    if a.ndim != 1:
        raise ShapeError(f"{name} must be a flat sequence of numbers")
    return a


def plot_lr_find(
    lrs: Sequence[float],
    losses: Sequence[float],
    suggestion: Any = None,
    skip_end: int = 5,
    path: str | Path | None = None,
    figsize: tuple[float, float] = (6.0, 4.0),
    dpi: float = 100,
    lr_used: float | None = None,
    title: str | None = None,
):
    """Loss against learning rate (log x axis), as fastai's ``lr_find`` plot.

    lrs, losses: equal-length sequences (e.g. ``learn.recorder.lrs`` and ``.losses``);
    the last ``skip_end`` points are dropped as fastai does, unless a marked learning rate lies
    among them (then the curve is drawn up to it). ``suggestion``: lr_find's suggestion(s): one
    lr, a dict ``{name: lr}`` or fastai's ``SuggestedLRs`` namedtuple, each a dot on the curve
    labelled ``lr_find <name>: <lr>`` (a suggestion outside the recorded range is an error:
    it cannot be on this curve). ``lr_used``: the learning rate training actually used, drawn
    separately as a dashed vertical line labelled ``lr used for training: <lr>`` (it need not
    be a point lr_find visited). ``title``: an optional axes title (e.g. "smoke run").
    """
    x_all, y_all = _floats(lrs, "lrs"), _floats(losses, "losses")
    if len(x_all) != len(y_all):
        raise ShapeError(f"plot_lr_find: {len(x_all)} learning rates and {len(y_all)} losses")
    sugg: dict[str, float] = {}
    if suggestion is not None:
        if hasattr(suggestion, "_asdict"):
            raw = dict(suggestion._asdict())
        elif isinstance(suggestion, Mapping):
            raw = dict(suggestion)
        else:
            raw = {"suggestion": suggestion}
        sugg = {str(k): float(to_numpy(v)) for k, v in raw.items()}
    n = len(x_all)
    if skip_end and n > skip_end + 1:
        n -= skip_end
    inside = [*sugg.values(), *([float(lr_used)] if lr_used is not None and len(x_all) else [])]
    for lr in inside:
        # keep every marked lr inside the drawn curve: extend it over the skipped end if needed
        while n < len(x_all) and x_all[n - 1] < lr <= x_all.max():
            n += 1
    x, y = x_all[:n], y_all[:n]
    fig = new_figure(figsize, dpi=dpi)
    ax = fig.add_subplot()
    ax.plot(x, y)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    if title:
        ax.set_title(title)
    for i, (nm, lr) in enumerate(sugg.items()):
        if not len(x) or not (x_all.min() <= lr <= x_all.max()):
            raise ShapeError(
                f"plot_lr_find: suggestion {nm}={lr:.3g} lies outside the recorded learning rates "
                f"({x_all.min():.3g} to {x_all.max():.3g}); pass lr_find's own suggestion"
            )
        yv = float(np.interp(np.log(lr), np.log(x), y))
        ax.plot([lr], [yv], "o", color=f"C{i + 1}", label=f"lr_find {nm}: {lr:.2e}")
    if lr_used is not None:
        lr_used = float(lr_used)
        ax.axvline(lr_used, color="C3", linestyle="--", label=f"lr used for training: {lr_used:.2e}")
        lo, hi = ax.get_xlim()
        ax.set_xlim(min(lo, lr_used / 2), max(hi, lr_used * 2))
    if sugg or lr_used is not None:
        ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig


def plot_losses(
    train_losses: Sequence[float],
    valid_losses: Sequence[float] | None = None,
    metrics: Mapping[str, Sequence[float]] | None = None,
    path: str | Path | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float = 100,
):
    """Training loss (per iteration or per epoch) and validation loss (per epoch), and, if
    given, metrics per epoch (``{name: values}``) in a second panel.

    Validation points are placed at the end of each epoch: with ``T`` training values and
    ``E`` validation values, epoch ``e`` sits at ``(e + 1) * T / E``.
    """
    tr = _floats(train_losses, "train_losses")
    va = _floats(valid_losses, "valid_losses") if valid_losses is not None else np.zeros(0)
    has_m = bool(metrics)
    if figsize is None:
        figsize = (10.0, 4.0) if has_m else (6.0, 4.0)
    fig = new_figure(figsize, dpi=dpi)
    axs = fig.subplots(1, 2 if has_m else 1, squeeze=False)[0]
    ax = axs[0]
    if len(tr):
        ax.plot(np.arange(1, len(tr) + 1), tr, label="train", alpha=0.8)
    if len(va):
        n_it = len(tr) if len(tr) else len(va)
        xs = (np.arange(len(va)) + 1) * n_it / len(va)
        ax.plot(xs, va, "o-", label="valid")
    ax.set_xlabel("iteration" if len(tr) > len(va) else "epoch")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    if has_m:
        mx = axs[1]
        for nm, vals in metrics.items():
            v = _floats(vals, f"metric {nm}")
            mx.plot(np.arange(1, len(v) + 1), v, "o-", label=nm)
        mx.set_xlabel("epoch")
        mx.set_ylabel("metric")
        mx.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig


def plot_recorder(recorder: Any, path: str | Path | None = None, dpi: float = 100):
    """:func:`plot_losses` from a fastai ``Recorder`` (duck-typed: ``losses``, ``values``,
    ``metric_names``; no fastai import)."""
    names = list(getattr(recorder, "metric_names", []))
    values = [list(v) for v in getattr(recorder, "values", [])]
    # metric_names = ["epoch", "train_loss", "valid_loss", *metrics, "time"]; values skip epoch/time
    cols = [n for n in names if n not in ("epoch", "time")]
    table = {n: [row[i] for row in values if i < len(row)] for i, n in enumerate(cols)}
    valid = table.pop("valid_loss", None)
    table.pop("train_loss", None)
    metrics = {k: v for k, v in table.items() if v and all(_is_num(x) for x in v)}
    return plot_losses(list(getattr(recorder, "losses", [])), valid, metrics or None, path=path, dpi=dpi)


def _is_num(v: Any) -> bool:
    try:
        return math.isfinite(float(to_numpy(v)))
    except (TypeError, ValueError):
        return False
