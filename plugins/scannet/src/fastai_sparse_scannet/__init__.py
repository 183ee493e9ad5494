"""ScanNet v2 for fastai-sparse: readers, fixtures, prepare, dataset, tasks, submission files.

Heavy pieces are imported on first use of a name, so importing the package is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "read_scene": "reader",
    "read_label_table": "reader",
    "read_split": "reader",
    "read_mesh_ply": "reader",
    "read_segs": "reader",
    "read_aggregation": "reader",
    "read_axis_alignment": "reader",
    "ScanNetScene": "reader",
    "LabelTable": "reader",
    "make_fixture": "fixtures",
    "write_scene": "fixtures",
    "prepare": "prepare",
    "read_cache": "prepare",
    "ScanNetScenes": "dataset",
    "instance_boxes": "boxes",
    "align_points": "boxes",
    "write_submission": "submission",
    "read_submission": "submission",
    "class_to_nyu40": "submission",
    "detection_task": "tasks",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fastai_sparse_scannet' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
