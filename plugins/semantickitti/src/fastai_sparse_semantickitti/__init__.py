"""SemanticKITTI for fastai-sparse: label configuration, readers, fixtures, prepare (a
validation pass), dataset, the ``semantickitti-seg`` task, submission files and their check.

Heavy pieces are imported on first use of a name, so importing the package is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "LabelConfig": "config",
    "load_config": "config",
    "default_config": "config",
    "find_config": "config",
    "SPLITS": "reader",
    "read_scan": "reader",
    "read_label": "reader",
    "write_scan": "reader",
    "write_label": "reader",
    "pack_labels": "reader",
    "unpack_labels": "reader",
    "list_scans": "reader",
    "make_fixture": "fixtures",
    "synthetic_scan": "fixtures",
    "prepare": "prepare",
    "read_index": "prepare",
    "SemanticKittiScans": "dataset",
    "read_input": "dataset",
    "seg_task": "tasks",
    "AddPosition": "transforms",
    "write_prediction": "submission",
    "prediction_path": "submission",
    "check_predictions": "submission",
    "predict_sequences": "submission",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fastai_sparse_semantickitti' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
