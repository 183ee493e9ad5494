"""ScanNet v2 constants: file names, the 20 benchmark classes, their colours, detection classes."""

from __future__ import annotations

import numpy as np

__all__ = [
    "BENCHMARK_COLORS",
    "BENCHMARK_IDS",
    "BENCHMARK_NAMES",
    "DET_IDS",
    "DET_NAMES",
    "IGNORE_INDEX",
    "SPLIT_FILES",
    "TSV_COLUMNS",
    "TSV_NAME",
    "nyu40_to_benchmark",
    "nyu40_to_detection",
]

#: The label table's 17 columns, in order.
TSV_COLUMNS = (
    "id",
    "raw_category",
    "category",
    "count",
    "nyu40id",
    "eigen13id",
    "nyuClass",
    "nyu40class",
    "eigen13class",
    "ModelNet40",
    "ModelNet10",
    "ShapeNetCore55",
    "synsetoffset",
    "wnsynsetid",
    "wnsynsetkey",
    "mpcat40",
    "mpcat40index",
)
TSV_NAME = "scannetv2-labels.combined.tsv"

#: split name -> official split list file name (kept in the data root by users).
SPLIT_FILES = {
    "train": "scannetv2_train.txt",
    "valid": "scannetv2_val.txt",
    "val": "scannetv2_val.txt",
    "test": "scannetv2_test.txt",
}

IGNORE_INDEX = -100

#: NYU40 ids of the 20 ScanNet benchmark classes, in class-index order 0..19.
BENCHMARK_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
BENCHMARK_NAMES = (
    "wall",
    "floor",
    "cabinet",
    "bed",
    "chair",
    "sofa",
    "table",
    "door",
    "window",
    "bookshelf",
    "picture",
    "counter",
    "desk",
    "curtain",
    "refrigerator",
    "showercurtain",
    "toilet",
    "sink",
    "bathtub",
    "otherfurniture",
)
#: uint8 [20, 3]: the ScanNet benchmark palette (NYU40 colours of the 20 classes).
BENCHMARK_COLORS = np.array(
    [
        (174, 199, 232),
        (152, 223, 138),
        (31, 119, 180),
        (255, 187, 120),
        (188, 189, 34),
        (140, 86, 75),
        (255, 152, 150),
        (214, 39, 40),
        (197, 176, 213),
        (148, 103, 189),
        (196, 156, 148),
        (23, 190, 207),
        (247, 182, 210),
        (219, 219, 141),
        (255, 127, 14),
        (158, 218, 229),
        (44, 160, 44),
        (112, 128, 144),
        (227, 119, 194),
        (82, 84, 163),
    ],
    dtype=np.uint8,
)

#: The 18 detection classes (the benchmark classes minus wall and floor; NYU40 id 39 is
#: named garbagebin, as in the usual ScanNet detection setting).
DET_IDS = BENCHMARK_IDS[2:]
DET_NAMES = (*BENCHMARK_NAMES[2:-1], "garbagebin")


def _lookup(ids: tuple[int, ...]) -> np.ndarray:
    table = np.full(65536, IGNORE_INDEX, np.int64)
    table[list(ids)] = np.arange(len(ids))
    return table


_BENCH = _lookup(BENCHMARK_IDS)
_DET = _lookup(DET_IDS)


def nyu40_to_benchmark(nyu40: np.ndarray) -> np.ndarray:
    """int64 [N] class index 0..19 of each NYU40 id (int [N], 0..65535); other ids -> -100."""
    return _BENCH[np.asarray(nyu40, np.int64)]


def nyu40_to_detection(nyu40: np.ndarray) -> np.ndarray:
    """int64 [N] detection class 0..17 of each NYU40 id; other ids -> -100."""
    return _DET[np.asarray(nyu40, np.int64)]
