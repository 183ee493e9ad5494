"""The 16 ShapeNet part categories and their 50 parts with the usual global ids.

Global part ids are contiguous per category, in the order of :data:`CATEGORIES` (Airplane
0-3, Bag 4-5, ..., Table 47-49), as written in the last column of the
``shapenetcore_partanno_segmentation_benchmark_v0_normal`` files. The ``v0`` and ICCV 2017
challenge layouts store 1-based ids *within* the category; :meth:`Category.to_global`
converts them.

Part names follow the part annotation of Yi et al. (2016), shortened to one or two words.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "CATEGORIES",
    "NUM_CATEGORIES",
    "NUM_PARTS",
    "PART_NAMES",
    "Category",
    "category_mask",
    "get_category",
    "part_to_category",
]


@dataclass(frozen=True)
class Category:
    """One ShapeNet part category.

    name: e.g. ``"Airplane"``; synset: WordNet offset, e.g. ``"02691156"``; index: 0..15;
    first: global id of its first part; parts: part names in global-id order.
    """

    name: str
    synset: str
    index: int
    first: int
    parts: tuple[str, ...]

    @property
    def num_parts(self) -> int:
        return len(self.parts)

    @property
    def part_ids(self) -> list[int]:
        """Global ids of the category's parts, ``first .. first + num_parts - 1``."""
        return list(range(self.first, self.first + len(self.parts)))

    def to_global(self, local: np.ndarray) -> np.ndarray:
        """int64 [N] global ids from 1-based per-category ids (the ``.seg`` convention)."""
        return np.asarray(local, np.int64) - 1 + self.first

    def to_local(self, global_ids: np.ndarray) -> np.ndarray:
        """int64 [N] 1-based per-category ids from global ids."""
        return np.asarray(global_ids, np.int64) - self.first + 1


_TABLE = [
    ("Airplane", "02691156", ("body", "wing", "tail", "engine")),
    ("Bag", "02773838", ("handle", "body")),
    ("Cap", "02954340", ("panel", "peak")),
    ("Car", "02958343", ("roof", "hood", "wheel", "body")),
    ("Chair", "03001627", ("back", "seat", "leg", "arm")),
    ("Earphone", "03261776", ("earcup", "headband", "cable")),
    ("Guitar", "03467517", ("head", "neck", "body")),
    ("Knife", "03624134", ("blade", "handle")),
    ("Lamp", "03636649", ("base", "shade", "bracket", "stem")),
    ("Laptop", "03642806", ("keyboard", "screen")),
    ("Motorbike", "03790512", ("gas tank", "seat", "wheel", "handlebar", "light", "frame")),
    ("Mug", "03797390", ("handle", "cup")),
    ("Pistol", "03948459", ("barrel", "handle", "trigger")),
    ("Rocket", "04099429", ("body", "fin", "nose")),
    ("Skateboard", "04225987", ("wheel", "deck", "belt")),
    ("Table", "04379243", ("top", "leg", "drawer")),
]


def _build() -> tuple[Category, ...]:
    out, first = [], 0
    for i, (name, synset, parts) in enumerate(_TABLE):
        out.append(Category(name, synset, i, first, parts))
        first += len(parts)
    return tuple(out)


#: The 16 categories in the usual order (index = position).
CATEGORIES: tuple[Category, ...] = _build()
NUM_CATEGORIES = len(CATEGORIES)
NUM_PARTS = sum(c.num_parts for c in CATEGORIES)
#: Global part names ``"Category/part"``, index = global part id (50 entries).
PART_NAMES: tuple[str, ...] = tuple(f"{c.name}/{p}" for c in CATEGORIES for p in c.parts)

_BY_KEY: dict[str, Category] = {}
for _c in CATEGORIES:
    _BY_KEY[_c.synset] = _c
    _BY_KEY[_c.name.lower()] = _c


def get_category(key: str | int) -> Category:
    """A category by synset (``"02691156"``), name (any case: ``"airplane"``) or index (0..15).

    Raises KeyError listing the known synsets and names otherwise.
    """
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        if 0 <= int(key) < NUM_CATEGORIES:
            return CATEGORIES[int(key)]
    elif isinstance(key, str) and key.strip().lower() in _BY_KEY:
        return _BY_KEY[key.strip().lower()]
    known = ", ".join(f"{c.name} {c.synset}" for c in CATEGORIES)
    raise KeyError(f"unknown ShapeNet part category {key!r}; expected a synset, a name or 0..15 ({known})")


def part_to_category() -> np.ndarray:
    """int64 [50]: the category index of every global part id."""
    return np.concatenate([np.full(c.num_parts, c.index, np.int64) for c in CATEGORIES])


def category_mask() -> np.ndarray:
    """bool [16, 50]: ``mask[c, p]`` is True when part ``p`` belongs to category ``c``."""
    m = np.zeros((NUM_CATEGORIES, NUM_PARTS), bool)
    for c in CATEGORIES:
        m[c.index, c.first : c.first + c.num_parts] = True
    return m
