"""``fastai-sparse prepare modelnet40-cls --root DIR``: read every shape once (meshes sampled on
their surface, y-up files turned z-up, all normalised) and store the point clouds as ``.npz``, so
training does not parse large OFF files every epoch.

Output layout (``out``, default ``<root>/<variant>-prepared``)::

    prepared.json                      {"variant", "layout", "classes", "points", "seed", "counts",
                                        "bad", "format", "version", "options"}, written last
    {train,test}/<class>/<id>.npz      xyz float32 [points, 3], normals float32 [points, 3], and the
                                        record of :mod:`fastai_sparse.cache` (source file, options)

Built on :mod:`fastai_sparse.cache`: parallel, resumable (files that still match their source are
kept, changed sources and other options are rebuilt), safe to run twice at once, atomic files.
:func:`~fastai_sparse_classification.readers.ModelNet` reads this folder automatically when
``prepared.json`` is there (it is also accepted as ``root`` itself), checking every file against
its source and refusing a stale one with the command that rebuilds it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from fastai_sparse.cache import CacheFormat, CacheItem, prepare_items

__all__ = [
    "CACHE_FORMAT",
    "CACHE_VERSION",
    "PREPARED_MARKER",
    "build_shape",
    "prepare_modelnet",
    "prepared_format",
]

PREPARED_MARKER = "prepared.json"
#: Name and version of the cache format; bump the version when :func:`build_shape` changes.
CACHE_FORMAT = "modelnet-shape"
CACHE_VERSION = 2


def prepared_format(root: str | Path, options: dict[str, Any]) -> CacheFormat:
    """The cache format of prepared ModelNet files made with ``options`` (``variant``,
    ``points``, ``seed``, ``layout``: what ``prepare.json`` records under ``options``)."""
    opts = dict(options.get("options", options))
    variant = opts.get("variant", "modelnet40")
    return CacheFormat(
        CACHE_FORMAT,
        CACHE_VERSION,
        opts,
        root=Path(root),
        fix=f"fastai-sparse prepare {variant}-cls --root {root}",
    )


def build_shape(
    item: CacheItem, variant: str = "modelnet40", points: int = 10_000, seed: int = 0, layout: str = "mesh"
) -> dict[str, np.ndarray]:
    """The stored arrays of one shape (run by the prepare workers): ``points`` surface samples,
    normalised, z up."""
    from .readers import item_rng, read_item

    split, y_up = item.args
    cloud = read_item(item.sources[0], points, item_rng(seed, split, item.id), normalize=True, y_up=y_up)
    return {"xyz": cloud.xyz.astype(np.float32), "normals": cloud.attrs["normals"].astype(np.float32)}


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
    force: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Sample every ModelNet shape of both splits to ``points`` points and write the cache.

    An unreadable file stops the run with its error (files already written stay; the next run
    resumes); with ``skip_bad`` such files are left out with one warning and listed in the
    summary and in ``prepared.json``. ``force`` rebuilds every file. Returns ``{"out",
    "variant", "layout", "counts": {split: n}, "bad": [[path, message], ...], "prepared",
    "fresh", "stale", "seconds", ...}``.
    """
    from fastai_sparse.files import write_text

    from .readers import MODELNET10_CLASSES, MODELNET40_CLASSES, ModelNet, prepared_path

    t0 = time.perf_counter()
    root = Path(root)
    out = Path(out) if out is not None else root / f"{variant}-prepared"
    items: list[CacheItem] = []
    per_split: dict[str, list[str]] = {}
    found_layout = None
    for split in ("train", "test"):
        ds = ModelNet(root, split, variant, layout=layout, points=points, seed=seed, prepared=False)
        found_layout = ds.layout
        per_split[split] = [it.id for it in ds.items]
        items += [
            CacheItem(it.id, prepared_path(out, split, it.category, it.id), (it.path,), args=(split, ds.y_up))
            for it in ds.items
        ]
    options = {"variant": variant, "points": int(points), "seed": int(seed), "layout": found_layout}
    summary = prepare_items(
        out,
        items,
        build_shape,
        prepared_format(root, options),
        jobs=jobs,
        skip_bad=skip_bad,
        force=force,
        quiet=quiet,
    )
    by_id = {it.id: it.sources[0] for it in items}
    bad = [[str(by_id.get(i, i)), m] for i, m in sorted(summary["bad_items"].items())]
    classes = MODELNET40_CLASSES if variant == "modelnet40" else MODELNET10_CLASSES
    result = {
        **summary,
        "out": str(out),
        "variant": variant,
        "layout": found_layout,
        "classes": list(classes),
        "points": int(points),
        "seed": int(seed),
        "counts": {s: len(ids) - sum(i in summary["bad_items"] for i in ids) for s, ids in per_split.items()},
        "bad": bad,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    import json

    write_text(
        out / PREPARED_MARKER,
        json.dumps({k: v for k, v in result.items() if k != "bad_items"}, indent=2) + "\n",
    )
    return result
