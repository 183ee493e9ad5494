"""Module-level build functions for the cache tests (worker processes import them by name)."""

from __future__ import annotations

import numpy as np

from fastai_sparse.cache import CacheItem
from fastai_sparse.errors import DataFormatError


def build_room(item: CacheItem, scale: float = 1.0) -> dict[str, np.ndarray]:
    """``x y z label`` lines -> xyz float32 [N, 3] (times the format's option ``scale``), labels."""
    src = item.sources[0]
    table = np.loadtxt(src, ndmin=2)
    if table.shape[1] != 4:
        raise DataFormatError(f"found {table.shape[1]} columns, expected 4 columns (x y z label)", path=src)
    return {"xyz": (table[:, :3] * scale).astype(np.float32), "labels": table[:, 3].astype(np.int64)}


def build_buggy(item: CacheItem, **options) -> dict[str, np.ndarray]:
    return {"x": np.array(1 / 0)}


def build_slow_room(item: CacheItem, scale: float = 1.0) -> dict[str, np.ndarray]:
    """:func:`build_room` taking ``$TEST_BUILD_DELAY`` seconds (to interrupt a run half-way)."""
    import os
    import time

    time.sleep(float(os.environ.get("TEST_BUILD_DELAY", "0")))
    return build_room(item, scale)


def main(root: str, out: str, jobs: int) -> None:
    """Run a prepare of ``root/rooms/*.txt`` (for the tests that use real processes)."""
    import json
    from pathlib import Path

    from fastai_sparse.cache import CacheFormat, prepare_items

    items = [
        CacheItem(p.stem, Path(out) / f"{p.stem}.npz", (p,))
        for p in sorted(Path(root, "rooms").glob("*.txt"))
    ]
    fmt = CacheFormat("test-room", 1, root=Path(root))
    print(json.dumps(prepare_items(out, items, build_slow_room, fmt, jobs=jobs, quiet=True)), flush=True)


if __name__ == "__main__":
    import sys

    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
