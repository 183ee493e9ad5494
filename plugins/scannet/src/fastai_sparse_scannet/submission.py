"""The ScanNet benchmark's semantic submission format: one NYU40 id per line, one line per
vertex of ``<scene>_vh_clean_2.ply``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastai_sparse.errors import DataFormatError

from .constants import BENCHMARK_IDS

__all__ = ["class_to_nyu40", "read_submission", "write_submission"]


def class_to_nyu40(classes: np.ndarray, label_values=BENCHMARK_IDS) -> np.ndarray:
    """int64 [N]: the NYU40 id of each predicted benchmark class index (int [N], 0..19)."""
    classes = np.asarray(classes, np.int64)
    values = np.asarray(label_values, np.int64)
    if len(classes) and (classes.min() < 0 or classes.max() >= len(values)):
        raise DataFormatError(
            f"class indices span {classes.min()}..{classes.max()}, expected 0..{len(values) - 1}",
            field="labels",
        )
    return values[classes]


def write_submission(path: str | Path, nyu40_ids: np.ndarray, n_vertices: int | None = None) -> Path:
    """Write ``nyu40_ids`` (int [N], 0..40) to ``path``, one per line (the benchmark format).

    ``n_vertices``, when given, must equal N (the vertex count of the scene's mesh).
    """
    ids = np.asarray(nyu40_ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise DataFormatError(f"expected a 1-D integer array of NYU40 ids, got {ids.dtype} {list(ids.shape)}")
    if n_vertices is not None and len(ids) != n_vertices:
        raise DataFormatError(f"{len(ids)} ids for a mesh of {n_vertices} vertices; expected one per vertex")
    if len(ids) and (ids.min() < 0 or ids.max() > 40):
        raise DataFormatError(f"NYU40 ids span {ids.min()}..{ids.max()}, expected 0..40")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{int(v)}\n" for v in ids))
    return path


def read_submission(path: str | Path, n_vertices: int | None = None) -> np.ndarray:
    """int64 [N]: the NYU40 ids of a submission file (validated: integers 0..40, one per line)."""
    path = Path(path)
    lines = path.read_text().split()
    try:
        ids = np.asarray([int(v) for v in lines], np.int64)
    except ValueError as e:
        raise DataFormatError(f"non-integer line ({e}); expected one NYU40 id per line", path=path) from e
    if len(ids) and (ids.min() < 0 or ids.max() > 40):
        raise DataFormatError(f"ids span {ids.min()}..{ids.max()}, expected 0..40", path=path)
    if n_vertices is not None and len(ids) != n_vertices:
        raise DataFormatError(f"{len(ids)} lines, expected {n_vertices} (one per vertex)", path=path)
    return ids
