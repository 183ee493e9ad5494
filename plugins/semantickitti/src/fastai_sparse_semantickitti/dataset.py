"""``SemanticKittiScans``: the scans of a split as a sequence of point clouds, read lazily."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastai_sparse import DataFormatError, PointCloud

from .config import CONFIG_NAME, LabelConfig, find_config
from .prepare import bad_scans
from .reader import ScanFiles, list_scans, parse_sequences, read_label, read_scan, split_sequences

__all__ = ["SemanticKittiScans", "read_input"]

_SPLITS = {"train": "train", "valid": "valid", "val": "valid", "test": "test"}


class SemanticKittiScans(Sequence):
    """The scans of one split (``"train"``: 00-07, 09, 10; ``"valid"``/``"val"``: 08; ``"test"``:
    11-21) of a SemanticKITTI root, each read from disk when it is indexed.

    Each item is a :class:`~fastai_sparse.PointCloud`: ``xyz`` float32 [N, 3] (metres, sensor
    frame), attrs ``"remission"`` float32 [N], ``"labels"`` int64 [N] (class 0..K-1, -100 for
    the unlabelled learning class 0; not for test scans) and ``"instance"`` int64 [N]; meta
    ``id`` (``"08/000123"``), ``sequence``, ``frame``, ``path`` (the ``.bin``), ``split``.

    Args:
        root: the data root (holding ``sequences/``). split: split name.
        sequences: explicit sequence numbers instead of the split's (e.g. ``[0]`` or ``"0-3"`` to
            try things on a few sequences).
        config: label configuration (a path or LabelConfig; default ``ROOT/semantic-kitti.yaml``
            when present, else the plugin's copy of the official file).
        classes: the class names the caller expects (a task passes its own); a configuration
            with other learning classes raises DataFormatError.
        labels: read labels (default: all splits but test).
        limit: keep the first ``limit`` scans. cache: folder of ``prepare``'s index (default
            ``ROOT/cache``): scans it marks bad are left out, with a warning.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        sequences: Sequence[int | str] | None = None,
        config: str | Path | LabelConfig | None = None,
        classes: Sequence[str] | None = None,
        labels: bool | None = None,
        limit: int | None = None,
        cache: str | Path | None = None,
    ):
        if split not in _SPLITS:
            raise ValueError(f"unknown SemanticKITTI split {split!r}; expected one of train, valid, test")
        self.root, self.split = Path(root).expanduser(), _SPLITS[split]
        self.sequences = (
            tuple(parse_sequences(sequences)) if sequences is not None else split_sequences(self.split)
        )
        self.labelled = (self.split != "test") if labels is None else bool(labels)
        self.config = find_config(self.root, config)
        if classes is not None and list(classes) != self.config.class_names:
            src = self.config.path or CONFIG_NAME
            raise DataFormatError(
                f"the label configuration has {self.config.num_classes} learning classes "
                f"{self.config.class_names[:6]}..., the task expects {len(classes)} {list(classes)[:6]}...; "
                "build a task for this file with fastai_sparse_semantickitti.seg_task(config=PATH), or move "
                "it out of the data root to use the official classes",
                path=src,
                field="learning_map_inv",
            )
        scans = list_scans(self.root, self.sequences, labels=self.labelled)
        bad = bad_scans(self.root, scans, cache, self.config)
        if bad:
            warnings.warn(
                f"{len(bad)} of {len(scans)} scans are left out: prepare marked them bad ("
                + ", ".join(sorted(bad)[:5])
                + (", ..." if len(bad) > 5 else "")
                + "); fix the files and run prepare again to use them",
                stacklevel=2,
            )
            scans = [s for s in scans if s.id not in bad]
        if limit is not None:
            scans = scans[:limit]
        self.scans: list[ScanFiles] = scans

    def __repr__(self) -> str:
        return (
            f"SemanticKittiScans(root={str(self.root)!r}, split={self.split!r}, "
            f"sequences={list(self.sequences)}, scans={len(self)})"
        )

    def __len__(self) -> int:
        return len(self.scans)

    def __getitem__(self, i: int) -> PointCloud:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(f"scan index {i} out of range for {len(self)} scans")
        s = self.scans[i % len(self)]
        xyz, remission = read_scan(s.scan)
        attrs: dict[str, np.ndarray] = {"remission": remission}
        meta: dict[str, Any] = {
            "id": s.id,
            "sequence": s.sequence,
            "frame": s.frame,
            "path": str(s.scan),
            "split": self.split,
        }
        if self.labelled and s.label is not None:
            sem, inst = read_label(s.label, len(xyz), scan=s.scan)
            attrs["labels"] = self.config.to_classes(sem, path=s.label)
            attrs["instance"] = inst.astype(np.int64)
        return PointCloud(xyz, attrs, meta=meta)


def read_input(path: str | Path) -> PointCloud:
    """Read a user's scan for prediction: a Velodyne ``.bin`` (the plugin's reader, remission as
    ``"remission"``), or any file :func:`fastai_sparse.io.load` reads that has a ``remission`` or
    ``intensity`` attribute (PLY, NPZ, text)."""
    path = Path(path)
    if path.suffix == ".bin":
        xyz, rem = read_scan(path)
        seq = path.parent.parent.name if path.parent.name == "velodyne" else None
        meta = {"id": path.stem, "path": str(path), "frame": path.stem, "sequence": seq}
        return PointCloud(xyz, {"remission": rem}, meta=meta)
    from fastai_sparse import io

    obj = io.load(path)
    cloud = obj if isinstance(obj, PointCloud) else obj.to_points()
    attrs = dict(cloud.attrs)
    if "remission" not in attrs:
        if "intensity" not in attrs:
            raise DataFormatError(
                f"no 'remission' or 'intensity' attribute (found {sorted(attrs)}); semantickitti tasks use "
                "the LiDAR remission as a feature",
                path=path,
                field="remission",
            )
        attrs["remission"] = attrs.pop("intensity")
    rem = np.asarray(attrs["remission"], np.float32).reshape(len(cloud))
    return PointCloud(cloud.xyz, {"remission": rem}, meta={**cloud.meta, "path": str(path)})
