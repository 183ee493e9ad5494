"""The SemanticKITTI label configuration (``semantic-kitti.yaml``): read, validate, look up.

The configuration says which raw semantic ids exist (``labels``), how they map to the learning
classes (``learning_map``: raw id -> 0..K, 0 = unlabelled and ignored), which raw id each
learning class is written back as in submission files (``learning_map_inv``), and their colours
(``color_map``, BGR). :func:`load_config` reads ``ROOT/semantic-kitti.yaml`` when the data root
has one (users keep the development kit's file there, sometimes edited), otherwise the plugin's
own copy of the official file (``semantic-kitti.yaml`` next to this module, values from
PRBonn/semantic-kitti-api). Every problem in a user's file is one :class:`DataFormatError`
naming the file, the key and what to do.

The learning classes 1..K become the task's class indices 0..K-1; learning class 0 becomes the
ignore index (-100).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from fastai_sparse import DataFormatError

__all__ = [
    "CONFIG_NAME",
    "IGNORE_INDEX",
    "MAX_RAW_ID",
    "REQUIRED_KEYS",
    "LabelConfig",
    "default_config",
    "find_config",
    "load_config",
]

CONFIG_NAME = "semantic-kitti.yaml"
#: Keys a configuration file must have.
REQUIRED_KEYS = ("labels", "learning_map", "learning_map_inv")
#: Raw semantic ids are the lower 16 bits of a label value.
MAX_RAW_ID = 0xFFFF
#: Class index of points whose learning class is 0 (unlabelled).
IGNORE_INDEX = -100
_BUILTIN = Path(__file__).with_name(CONFIG_NAME)


@dataclass(eq=False)
class LabelConfig:
    """A validated label configuration.

    labels: raw id -> name. learning_map: raw id -> learning class 0..K. learning_map_inv:
    learning class -> raw id. color_map: raw id -> (B, G, R). splits: split name -> sequence
    numbers (when the file has a ``split`` key). path: the file read (None when built in code).
    """

    labels: dict[int, str]
    learning_map: dict[int, int]
    learning_map_inv: dict[int, int]
    color_map: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    splits: dict[str, list[int]] = field(default_factory=dict)
    path: Path | None = None

    def __repr__(self) -> str:
        return f"LabelConfig({self.num_classes} classes, {len(self.learning_map)} raw ids, path={self.path})"

    @property
    def num_classes(self) -> int:
        """Learning classes without the ignored class 0 (19 for the official file)."""
        return len(self.learning_map_inv) - 1

    @cached_property
    def class_names(self) -> list[str]:
        """Names of the learning classes 1..K (class index 0..K-1)."""
        return [self.labels[self.learning_map_inv[c]] for c in range(1, self.num_classes + 1)]

    @cached_property
    def class_raw_ids(self) -> list[int]:
        """The raw id written for each class index 0..K-1 (``learning_map_inv``)."""
        return [self.learning_map_inv[c] for c in range(1, self.num_classes + 1)]

    @cached_property
    def class_colors(self) -> np.ndarray:
        """uint8 [K, 3] RGB colour of each class (from the BGR ``color_map``; grey when absent)."""
        out = np.full((self.num_classes, 3), 128, np.uint8)
        for i, raw in enumerate(self.class_raw_ids):
            if raw in self.color_map:
                b, g, r = self.color_map[raw]
                out[i] = (r, g, b)
        return out

    @cached_property
    def class_lookup(self) -> np.ndarray:
        """int64 [65536]: class index (0..K-1, or -100 for learning class 0) of every raw id;
        -1 for raw ids that are not in ``learning_map``."""
        lut = np.full(MAX_RAW_ID + 1, -1, np.int64)
        for raw, learn in self.learning_map.items():
            lut[raw] = learn - 1 if learn > 0 else IGNORE_INDEX
        return lut

    @cached_property
    def valid_prediction_ids(self) -> np.ndarray:
        """bool [65536]: raw ids a prediction file may hold: those the evaluation can map (the
        keys of ``learning_map``; a model writes the values of ``learning_map_inv``, all among them)."""
        ok = np.zeros(MAX_RAW_ID + 1, bool)
        ok[list(self.learning_map)] = True
        return ok

    @cached_property
    def fingerprint(self) -> str:
        """A short hash of the mapping (what changes the labels a dataset yields)."""
        blob = json.dumps(sorted(self.learning_map.items())).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def to_classes(self, raw: np.ndarray, path: str | Path | None = None) -> np.ndarray:
        """int64 [N] class index of each raw semantic id (uint [N]); -100 for learning class 0.

        A raw id missing from ``learning_map`` raises DataFormatError naming ``path``, the ids
        and how many points carry them.
        """
        raw = np.asarray(raw)
        out = self.class_lookup[raw]
        bad = out == -1
        if bad.any():
            ids = np.unique(raw[bad])
            src = f" of {self.path}" if self.path is not None else ""
            raise DataFormatError(
                f"{int(bad.sum())} points carry raw semantic ids {ids[:10].tolist()} that are not in the "
                f"learning_map{src}; add them to learning_map in ROOT/{CONFIG_NAME} (or fix the label file)",
                path=path,
                field="semantic id",
            )
        return out

    def to_raw(self, classes: np.ndarray) -> np.ndarray:
        """uint32 [N]: the raw id (``learning_map_inv``) of each class index 0..K-1."""
        classes = np.asarray(classes, np.int64)
        if len(classes) and (classes.min() < 0 or classes.max() >= self.num_classes):
            raise DataFormatError(
                f"class indices span {int(classes.min())}..{int(classes.max())}, expected "
                f"0..{self.num_classes - 1}",
                field="labels",
            )
        return np.asarray(self.class_raw_ids, np.uint32)[classes]


# -- reading and validation ---------------------------------------------------------------------
def _int_key(v: Any, path: Path, key: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise DataFormatError(f"{key} has key {v!r}, expected an integer id", path=path, field=key)
    try:
        return int(v)
    except ValueError:
        raise DataFormatError(f"{key} has key {v!r}, expected an integer id", path=path, field=key) from None


def _int_map(raw: Any, path: Path, key: str) -> dict[int, int]:
    if not isinstance(raw, dict) or not raw:
        raise DataFormatError(
            f"{key} is {type(raw).__name__}, expected a non-empty mapping of integer ids",
            path=path,
            field=key,
        )
    out = {}
    for k, v in raw.items():
        if isinstance(v, bool) or not isinstance(v, int):
            raise DataFormatError(f"{key}[{k}] is {v!r}, expected an integer", path=path, field=key)
        out[_int_key(k, path, key)] = int(v)
    return out


def _check_raw_ids(ids, path: Path, key: str) -> None:
    bad = [i for i in ids if not 0 <= i <= MAX_RAW_ID]
    if bad:
        raise DataFormatError(
            f"{key} holds raw ids {sorted(bad)[:5]}, out of range: raw semantic ids are 0..{MAX_RAW_ID} "
            "(the lower 16 bits of a label value)",
            path=path,
            field=key,
        )


def config_from_dict(data: Any, path: str | Path | None = None) -> LabelConfig:
    """Validate a parsed configuration (the mapping a YAML file holds) and build a LabelConfig."""
    where = Path(path) if path is not None else Path(f"<{CONFIG_NAME}>")
    if not isinstance(data, dict):
        raise DataFormatError(
            f"expected a mapping with keys {list(REQUIRED_KEYS)}, found {type(data).__name__}", path=where
        )
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise DataFormatError(
            f"missing key(s) {missing}; a SemanticKITTI label configuration needs {list(REQUIRED_KEYS)} "
            "(copy config/semantic-kitti.yaml of the semantic-kitti-api, or remove this file to use the "
            "plugin's copy)",
            path=where,
            field=missing[0],
        )
    labels_raw = data["labels"]
    if not isinstance(labels_raw, dict) or not labels_raw:
        raise DataFormatError("labels must be a non-empty mapping raw id -> name", path=where, field="labels")
    labels = {_int_key(k, where, "labels"): str(v) for k, v in labels_raw.items()}
    learning_map = _int_map(data["learning_map"], where, "learning_map")
    inv = _int_map(data["learning_map_inv"], where, "learning_map_inv")
    _check_raw_ids(labels, where, "labels")
    _check_raw_ids(learning_map, where, "learning_map")
    _check_raw_ids(inv.values(), where, "learning_map_inv")
    k = max(inv)
    if sorted(inv) != list(range(k + 1)) or k < 1:
        raise DataFormatError(
            f"learning_map_inv has learning classes {sorted(inv)[:25]}, expected every class 0..K exactly once "
            "(0 = unlabelled) with K >= 1",
            path=where,
            field="learning_map_inv",
        )
    bad = {r: c for r, c in learning_map.items() if not 0 <= c <= k}
    if bad:
        r, c = next(iter(bad.items()))
        raise DataFormatError(
            f"learning_map maps raw id {r} to class {c}, out of range: learning classes are 0..{k} "
            "(the keys of learning_map_inv)",
            path=where,
            field="learning_map",
        )
    unnamed = sorted(set(learning_map) - set(labels))
    if unnamed:
        raise DataFormatError(
            f"learning_map has raw ids {unnamed[:5]} that labels does not name; add them to labels",
            path=where,
            field="labels",
        )
    unnamed = sorted(set(inv.values()) - set(labels))
    if unnamed:
        raise DataFormatError(
            f"learning_map_inv writes raw ids {unnamed[:5]} that labels does not name; add them to labels",
            path=where,
            field="learning_map_inv",
        )
    unused = [c for c in range(1, k + 1) if c not in set(learning_map.values())]
    if unused:
        raise DataFormatError(
            f"learning classes {unused} receive no raw id in learning_map; every class 1..{k} needs one",
            path=where,
            field="learning_map",
        )
    colors: dict[int, tuple[int, int, int]] = {}
    cmap = data.get("color_map") or {}
    if not isinstance(cmap, dict):
        raise DataFormatError(
            "color_map must be a mapping raw id -> [b, g, r]", path=where, field="color_map"
        )
    for key, v in cmap.items():
        rid = _int_key(key, where, "color_map")
        if (
            not isinstance(v, (list, tuple))
            or len(v) != 3
            or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in v)
        ):
            raise DataFormatError(
                f"color_map[{rid}] is {v!r}, expected [b, g, r] with integers 0..255",
                path=where,
                field="color_map",
            )
        colors[rid] = (int(v[0]), int(v[1]), int(v[2]))
    splits: dict[str, list[int]] = {}
    for name, seqs in (data.get("split") or {}).items():
        if not isinstance(seqs, list) or not all(isinstance(s, int) and 0 <= s <= 99 for s in seqs):
            raise DataFormatError(
                f"split {name!r} is {seqs!r}, expected a list of sequence numbers 0..99",
                path=where,
                field="split",
            )
        splits[str(name)] = list(seqs)
    return LabelConfig(labels, learning_map, inv, colors, splits, Path(path) if path is not None else None)


def load_config(path: str | Path) -> LabelConfig:
    """Read and validate a ``semantic-kitti.yaml``."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DataFormatError(
            f"label configuration not found; expected a {CONFIG_NAME} (the semantic-kitti-api's "
            "config/semantic-kitti.yaml)",
            path=path,
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataFormatError(
            f"not valid YAML ({first}); expected the semantic-kitti.yaml format", path=path
        ) from e
    return config_from_dict(data, path)


_DEFAULT: LabelConfig | None = None


def default_config() -> LabelConfig:
    """The plugin's copy of the official configuration (19 classes)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_config(_BUILTIN)
    return _DEFAULT


def find_config(
    root: str | Path | None = None, config: str | Path | LabelConfig | None = None
) -> LabelConfig:
    """The configuration to use: ``config`` when given (a LabelConfig or a path), else
    ``ROOT/semantic-kitti.yaml`` when the data root has one, else :func:`default_config`."""
    if isinstance(config, LabelConfig):
        return config
    if config is not None:
        return load_config(config)
    if root is not None and (Path(root) / CONFIG_NAME).is_file():
        return load_config(Path(root) / CONFIG_NAME)
    return default_config()
