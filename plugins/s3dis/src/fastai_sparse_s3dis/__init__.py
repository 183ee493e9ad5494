"""S3DIS for fastai-sparse: readers, fixtures, prepare, dataset, tasks.

Heavy pieces are imported on first use of a name, so importing the package is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "CLASSES": "constants",
    "CLASS_COLORS": "constants",
    "KNOWN_DEFECTS": "constants",
    "dataset_root": "reader",
    "list_rooms": "reader",
    "find_room_file": "reader",
    "annotation_files": "reader",
    "read_points": "reader",
    "read_room": "reader",
    "match_points": "reader",
    "S3DISRoom": "reader",
    "make_fixture": "fixtures",
    "make_room": "fixtures",
    "write_room": "fixtures",
    "prepare": "prepare",
    "cache_check": "prepare",
    "room_arrays": "prepare",
    "S3DISRooms": "dataset",
    "split_areas": "dataset",
    "RoomCrop": "crop",
    "read_input": "tasks",
    "seg_task": "tasks",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fastai_sparse_s3dis' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
