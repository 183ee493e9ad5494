"""``fastai-sparse prepare modelnet40-cls --root DIR``: read every shape once (meshes sampled on
their surface, y-up files turned z-up, all normalised) and store the point clouds as ``.npz``, so
training does not parse large OFF files every epoch.

Output layout (``out``, default ``<root>/<variant>-prepared``)::

    prepared.json                      {"variant", "classes", "points", "seed", "counts", "bad"}
    {train,test}/<class>/<id>.npz      PointCloud: xyz float32 [points, 3], attrs["normals"]

:func:`~fastai_sparse_classification.readers.ModelNet` reads this folder automatically when it
exists (it is also accepted as ``root`` itself). Resumable: files already written are kept.
"""

from __future__ import annotations

import json
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from fastai_sparse.errors import DataFormatError, FastaiSparseError

__all__ = ["PREPARED_MARKER", "prepare_modelnet"]

PREPARED_MARKER = "prepared.json"


def _write_one(args: tuple) -> tuple[str, str | None]:
    ds, i, dst = args
    dst = Path(dst)
    if dst.exists():
        return str(dst), None
    try:
        cloud = ds[i]
    except FastaiSparseError as e:
        return str(ds.items[i].path), str(e)
    from fastai_sparse.io import write_npz

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".partial.npz")
    write_npz(tmp, cloud)
    tmp.replace(dst)
    return str(dst), None


def prepare_modelnet(
    root: str | Path,
    out: str | Path | None = None,
    jobs: int = 2,
    skip_bad: bool = False,
    *,
    variant: str = "modelnet40",
    points: int = 10_000,
    seed: int = 0,
    layout: str = "auto",
) -> dict[str, Any]:
    """Sample every ModelNet shape of both splits to ``points`` points and write the cache.

    Unreadable files are collected over the whole run: by default one DataFormatError lists
    them all at the end (nothing of them is written); with ``skip_bad`` they are left out with a
    warning and listed in the summary. Returns ``{"out", "variant", "counts": {split: n},
    "bad": [[path, message], ...], "seconds"}``.
    """
    from .readers import ModelNet

    t0 = time.perf_counter()
    root = Path(root)
    out = Path(out) if out is not None else root / f"{variant}-prepared"
    counts: dict[str, int] = {}
    bad: list[list[str]] = []
    for split in ("train", "test"):
        ds = ModelNet(root, split, variant, layout=layout, points=points, seed=seed, prepared=False)
        work = [(ds, i, out / split / it.category / f"{it.id}.npz") for i, it in enumerate(ds.items)]
        if jobs > 1 and len(work) > 1:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                results = list(pool.map(_write_one, work, chunksize=8))
        else:
            results = [_write_one(w) for w in work]
        errs = [[p, m] for p, m in results if m is not None]
        bad += errs
        counts[split] = len(results) - len(errs)
    if bad and not skip_bad:
        listing = "\n".join(f"  {m}" if p in m else f"  {p}: {m}" for p, m in bad[:20])
        raise DataFormatError(
            f"{len(bad)} file(s) could not be read (rerun with --skip-bad to leave them out):\n{listing}",
            path=root,
        )
    if bad:
        warnings.warn(
            f"prepare {variant}: skipped {len(bad)} unreadable file(s); listed in {out / PREPARED_MARKER}",
            stacklevel=2,
        )
    from .readers import MODELNET10_CLASSES, MODELNET40_CLASSES

    classes = MODELNET40_CLASSES if variant == "modelnet40" else MODELNET10_CLASSES
    summary = {
        "out": str(out),
        "variant": variant,
        "classes": list(classes),
        "points": points,
        "seed": seed,
        "counts": counts,
        "bad": bad,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / PREPARED_MARKER).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
