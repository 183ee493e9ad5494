"""Weights files and model folders: the shareable form of a trained model, loaded without pickle.

The format (``fastai-sparse-model/1``) is a folder laid out like a Hugging Face Hub model
repository, so the same folder is a local export, an upload and a download::

    model/
      model.safetensors   the tensors (safetensors: a JSON header and raw little-endian data)
      config.json         what the tensors are for: task name, class names, input channels,
                          the fully resolved configuration (fastai_sparse.config), metrics
      README.md           the model card: task, data, metrics, configuration, how to use it

``model.safetensors`` also carries the content of ``config.json`` in its header metadata (under
``"fastai_sparse"``, next to safetensors' usual ``"format": "pt"``), so the file alone is
self-describing: ``learn.save_weights("x.safetensors")`` writes just that file, and everything
that reads a folder reads the file too. When both are present they must agree.

Why a folder and safetensors: safetensors holds tensors and a string-to-string header only, so
reading it cannot run code, whoever wrote it (``torch.load`` unpickles, and even its
``weights_only`` mode is a restricted unpickler with a history of escapes); the Hub serves
repositories of files, and a model card is a file of its own. The task's code is never in the
file: loading rebuilds the task through the registry from the configuration
(:func:`fastai_sparse.config.resolve_config`), which constructs registered objects only.

Older weights (``fastai-sparse-weights/1``, a ``torch.save`` dict written by ``save_weights``
to ``.pth`` files) still load, with ``torch.load(weights_only=True)``. A file that holds any
other pickled Python object is refused with :class:`~fastai_sparse.errors.UnsafeFileError`
before anything in it runs.
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import CheckpointError, UnsafeFileError

__all__ = [
    "CARD_FILE",
    "CONFIG_FILE",
    "LEGACY_FORMAT",
    "MODEL_FORMAT",
    "WEIGHTS_FILE",
    "model_document",
    "read_weights",
    "sniff",
    "task_for_weights",
    "write_legacy",
    "write_model_folder",
    "write_weights",
]

MODEL_FORMAT = "fastai-sparse-model/1"
LEGACY_FORMAT = "fastai-sparse-weights/1"
WEIGHTS_FILE, CONFIG_FILE, CARD_FILE = "model.safetensors", "config.json", "README.md"
_META_KEY = "fastai_sparse"
_ZIP = b"PK\x03\x04"


def sniff(path: str | Path) -> str:
    """What ``path`` holds, from its first bytes: ``"folder"``, ``"safetensors"``,
    ``"torch-zip"`` (``torch.save``), ``"pickle"``, or ``"unknown"``."""
    path = Path(path)
    if path.is_dir():
        return "folder"
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(_ZIP):
        return "torch-zip"
    # before the pickle test: a header length can start with 0x80, while "{" is no pickle opcode
    if len(head) >= 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") < 100_000_000:
        return "safetensors"
    if head[:1] == b"\x80":
        return "pickle"
    return "unknown"


def model_document(
    *,
    task: str | None,
    class_names: list[str] | None,
    config: Mapping | None,
    in_channels: int | None,
    model: str | None = None,
    metrics: Mapping | None = None,
) -> dict:
    """The description stored with the tensors (``config.json`` and the safetensors header)."""
    from . import __version__

    return {
        "format": MODEL_FORMAT,
        "task": task,
        "class_names": list(class_names) if class_names is not None else None,
        "in_channels": in_channels,
        "model": model,
        "metrics": dict(metrics or {}),
        "config": dict(config) if config is not None else None,
        "fastai_sparse_version": __version__,
    }


def _tensors(state_dict: Mapping) -> dict:
    """Contiguous CPU copies (safetensors stores each tensor once and needs no shared storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}


def write_weights(path: str | Path, state_dict: Mapping, doc: Mapping, overwrite: bool = False) -> Path:
    """Write one ``.safetensors`` file: the tensors, with ``doc`` in the header metadata."""
    from safetensors.torch import save_file

    from .files import atomic_path

    path = Path(path)
    meta = {"format": "pt", _META_KEY: json.dumps(doc, default=str)}
    with atomic_path(path, overwrite=overwrite) as tmp:
        save_file(_tensors(state_dict), str(tmp), metadata=meta)
    return path


def write_model_folder(
    folder: str | Path, state_dict: Mapping, doc: Mapping, overwrite: bool = False, card: bool = True
) -> Path:
    """Write a model folder (see the module docstring): weights first, then ``config.json``
    and the model card. With ``overwrite=False`` an existing file of the three is refused
    (:class:`~fastai_sparse.errors.OutputExistsError`) before anything is written."""
    from .errors import OutputExistsError
    from .files import write_text
    from .modelcard import model_card

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputExistsError(
            folder, "exists and is not a folder", "choose another name for the model folder"
        )
    names = [WEIGHTS_FILE, CONFIG_FILE] + ([CARD_FILE] if card else [])
    if not overwrite:
        for name in names:
            if (folder / name).exists():
                raise OutputExistsError(
                    folder / name,
                    "the output already exists",
                    "pass overwrite=True (--overwrite) or another folder",
                )
    folder.mkdir(parents=True, exist_ok=True)
    write_weights(folder / WEIGHTS_FILE, state_dict, doc, overwrite=overwrite)
    write_text(folder / CONFIG_FILE, json.dumps(doc, indent=2, default=str) + "\n", overwrite=overwrite)
    if card:
        write_text(folder / CARD_FILE, model_card(doc), overwrite=overwrite)
    return folder


def write_legacy(path: str | Path, state_dict: Mapping, doc: Mapping, overwrite: bool = True) -> Path:
    """The older ``.pth`` format (``torch.save`` of a dict of tensors and strings), for scripts
    that name their weights ``.pth``; read back with ``weights_only=True``."""
    import torch

    from .files import atomic_path

    path = Path(path)
    with atomic_path(path, overwrite=overwrite) as tmp:
        torch.save(
            {
                "format": LEGACY_FORMAT,
                "task": doc.get("task"),
                "class_names": doc.get("class_names"),
                "model": doc.get("model"),
                "state_dict": _tensors(state_dict),
            },
            tmp,
        )
    return path


# -- reading ----------------------------------------------------------------------------------
def _read_safetensors(path: Path) -> dict:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"{path}: not a readable safetensors file ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
            "it may be truncated or not a weights file"
        ) from None
    if _META_KEY not in meta:
        raise CheckpointError(
            f"{path}: a safetensors file without fastai-sparse metadata (no task, classes or config); "
            "fastai-sparse reads the files written by save_weights / export / save_pretrained"
        )
    try:
        doc = json.loads(meta[_META_KEY])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: the fastai-sparse metadata is not valid JSON ({e.msg})") from None
    if not isinstance(doc, dict) or doc.get("format") != MODEL_FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise CheckpointError(f"{path}: expected a {MODEL_FORMAT!r} model, found format {found!r}")
    return {**doc, "state_dict": state}


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _read_legacy(path: Path) -> dict:
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        if "Weights only load failed" in text or "Unsupported global" in text or "GLOBAL" in text:
            found = _GLOBAL.search(text)
            what = f" (it asks for {found.group(1)})" if found else ""
            raise UnsafeFileError(
                f"{path}: refused: the file holds pickled Python objects, not only tensors{what}, and "
                "loading it could run code; fastai-sparse loads weights without running code. Use "
                "weights written by save_weights / export (.safetensors or a model folder); for a "
                "pickled fastai export you trust, load_learner(path, unsafe_pickle=True)"
            ) from None
        raise CheckpointError(
            f"{path}: not a readable weights file (truncated or damaged pickle: {text.splitlines()[0]})"
        ) from None
    except Exception as e:  # weights_only runs nothing; any other failure means a damaged file
        raise CheckpointError(
            f"{path}: not a readable weights file (truncated or damaged: {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''})"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != LEGACY_FORMAT or "state_dict" not in ckpt:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"{path}: expected a fastai-sparse weights file (format {LEGACY_FORMAT!r}), found {found!r}"
        )
    return {
        "format": LEGACY_FORMAT,
        "task": ckpt.get("task"),
        "class_names": ckpt.get("class_names"),
        "model": ckpt.get("model"),
        "in_channels": None,
        "metrics": {},
        "config": None,
        "state_dict": ckpt["state_dict"],
    }


def _read_folder(folder: Path) -> dict:
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        hint = "write one with learn.export(folder) or learn.save_pretrained(folder)"
        if (folder / "model" / WEIGHTS_FILE).is_file():
            hint = f"it looks like a run folder: its model is {folder / 'model'}"
        elif sorted(folder.glob("*.pth")):
            hint = f"pass the weights file itself ({sorted(folder.glob('*.pth'))[0]})"
        raise CheckpointError(f"{folder}: a folder without {WEIGHTS_FILE}; {hint}")
    ckpt = _read_safetensors(weights)
    cfg_path = folder / CONFIG_FILE
    if cfg_path.is_file():
        try:
            doc = json.loads(cfg_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{cfg_path}: not valid JSON ({e})") from None
        for key in ("task", "class_names", "config"):
            if isinstance(doc, dict) and key in doc and _same(doc[key], ckpt.get(key)) is False:
                raise CheckpointError(
                    f"{folder}: {CONFIG_FILE} and {WEIGHTS_FILE} disagree on {key!r}; the folder mixes two "
                    "exports: export the model again"
                )
    return ckpt


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def read_weights(path: str | Path) -> dict:
    """Read weights of any fastai-sparse format: a model folder, a ``.safetensors`` file, or an
    older ``.pth`` file. Returns ``{"format", "task", "class_names", "in_channels", "model",
    "metrics", "config", "state_dict", "path"}`` (``config`` is None for ``.pth`` files).

    Raises :class:`~fastai_sparse.errors.CheckpointError` naming the file for anything missing,
    truncated or of another kind, and :class:`~fastai_sparse.errors.UnsafeFileError` for a file
    that would run code when unpickled; nothing in the file runs.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such weights file or model folder")
    try:
        kind = sniff(path)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read it ({e.strerror or e})") from None
    if kind == "folder":
        ckpt = _read_folder(path)
    elif kind == "safetensors":
        ckpt = _read_safetensors(path)
    elif kind in ("torch-zip", "pickle"):
        ckpt = _read_legacy(path)
    else:
        raise CheckpointError(
            f"{path}: not a readable weights file (neither safetensors nor a torch file); pass a model "
            "folder, a .safetensors file or a .pth file written by save_weights"
        )
    ckpt["path"] = str(path)
    return ckpt


def task_for_weights(ckpt: Mapping, task: Any = None) -> Any:
    """The task that ``ckpt`` (from :func:`read_weights`) was trained for, checked against it.

    With a configuration (model folders and ``.safetensors`` files) the task is rebuilt from it
    through the registry (:func:`fastai_sparse.config.resolve_config`), starting from ``task``
    when one is given, so the model, its kwargs and the validation pipeline are those trained.
    Older weights name only the task: ``task``, else the registered task of that name; a task
    whose classes come from its data (``with_classes``) takes the stored class names.
    Raises :class:`~fastai_sparse.errors.CheckpointError` for another task or other classes.
    """
    import warnings

    from .errors import FastaiSparseError
    from .registry import get_task

    path = ckpt.get("path")
    name = ckpt.get("task")
    if task is not None and name is not None and task.name != name:
        raise CheckpointError(f"{path}: weights were trained for task {name!r}, not {task.name!r}")
    if ckpt.get("config"):
        from .config import resolve_config

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # other versions: the user's call when loading
                task = resolve_config(ckpt["config"], base=task, source=path)[1]
        except FastaiSparseError as e:
            raise CheckpointError(f"cannot rebuild the task of the weights: {e}") from e
    elif task is None:
        if name is None:
            raise CheckpointError(f"{path}: the weights name no task; pass the task they were trained for")
        task = get_task(name)
    names = ckpt.get("class_names")
    if task.class_names is None and names and hasattr(task, "with_classes"):
        task = task.with_classes(list(names))
    if task.class_names is not None and names is not None and list(names) != list(task.class_names):
        raise CheckpointError(
            f"{path}: weights were trained for classes {list(names)}, task {task.name!r} has {task.class_names}"
        )
    return task
