"""Pretrained models: a local model folder or file, or a model on the Hugging Face Hub.

:func:`pretrained_path` turns what a user wrote into a local path: an existing file or folder
is used as it is; ``owner/name`` (or ``hf://owner/name``) that is not a local path is a Hub
model id, downloaded with ``huggingface_hub.snapshot_download`` into the Hub's usual cache
(only the files of a model folder: ``model.safetensors``, ``config.json``, ``README.md``).
``huggingface_hub`` is an optional dependency: ``pip install "fastai-sparse[hub]"``.
``HF_HUB_OFFLINE=1`` (or ``local_files_only=True``) uses the cache without the network.

:func:`from_pretrained` returns a :class:`~fastai_sparse.prediction.Predictor`; for a fastai
Learner (fine-tuning, ``get_preds``) use :func:`fastai_sparse.load_learner`, which takes the
same paths and ids. Publishing is ``huggingface_hub``'s job: upload the folder written by
``learn.save_pretrained(folder)`` (``hf upload owner/name folder``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .errors import CheckpointError, FastaiSparseError

__all__ = [
    "HUB_FILES",
    "check_model_source",
    "from_pretrained",
    "is_hub_id",
    "model_files",
    "pretrained_path",
]

HUB_FILES = ["model.safetensors", "config.json", "README.md"]
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def is_hub_id(text: str) -> bool:
    """Whether ``text`` has the form of a Hub model id (``owner/name``)."""
    text = text.removeprefix("hf://")
    return bool(_ID.match(text)) and ".." not in text


def check_model_source(path_or_id: str | os.PathLike) -> Path | str:
    """What a user passed as a model, checked before any work: an existing local path is
    returned as a :class:`~pathlib.Path` when it is a readable folder or a readable, non-empty
    regular file that starts like a safetensors or a torch file (a FIFO or a device is
    refused without being opened); text that is no local path but has the form of a Hub id
    (``owner/name``, or ``hf://owner/name``) is returned as it is, for :func:`pretrained_path`.
    Anything else raises :class:`~fastai_sparse.errors.InputFileError`. Nothing is downloaded.
    """
    from .errors import InputFileError
    from .files import check_input_dir, check_input_file

    text = os.fspath(path_or_id)
    path = Path(text)
    if not text.startswith("hf://") and (path.exists() or path.is_symlink()):
        if path.is_dir():
            return check_input_dir(path, "model folder")
        path = check_input_file(path, "weights file")
        from .weights import sniff

        if sniff(path) == "unknown":
            with open(path, "rb") as f:
                head = f.read(8)
            raise InputFileError(
                path,
                f"is not a weights file (it starts with {head!r})",
                "pass a model folder, or a .safetensors or .pth file written by fastai-sparse",
            )
        return path
    if is_hub_id(text):
        return text
    raise InputFileError(
        path,
        "no such model folder or weights file (nor a Hugging Face Hub id owner/name)",
        "check the path",
    )


def model_files(source: Path | str) -> list[Path]:
    """The local files of a model source (see :func:`check_model_source`) that no output may
    replace: the weights file, or a model folder's files; none for a Hub id."""
    if isinstance(source, str):
        return []
    if source.is_dir():
        return [source / name for name in HUB_FILES]
    return [source]


def pretrained_path(
    path_or_id: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> Path:
    """A local path for a model folder, a weights file, or a Hub model id (see the module docstring).

    Raises :class:`~fastai_sparse.errors.CheckpointError` when the path does not exist and is
    no Hub id, when the model is not on the Hub (or not in the cache offline), and
    :class:`~fastai_sparse.errors.FastaiSparseError` when ``huggingface_hub`` is missing.
    """
    text = os.fspath(path_or_id)
    forced = text.startswith("hf://")
    if not forced and Path(text).exists():
        return Path(text)
    if not is_hub_id(text):
        raise CheckpointError(
            f"{text}: no such weights file or model folder (nor a Hugging Face Hub id 'owner/name'); check the path"
        )
    repo_id = text.removeprefix("hf://")
    try:
        import huggingface_hub
        from huggingface_hub import errors as hub_errors
    except ImportError:
        raise FastaiSparseError(
            f"{text}: not a local path; loading it from the Hugging Face Hub needs huggingface_hub: "
            'pip install "fastai-sparse[hub]"'
        ) from None
    from . import __version__

    try:
        folder = huggingface_hub.snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            allow_patterns=HUB_FILES,
            library_name="fastai-sparse",
            library_version=__version__,
            token=token,
        )
    except hub_errors.LocalEntryNotFoundError:
        raise CheckpointError(
            f"{text}: no such local file or folder, and as a Hugging Face Hub id it is not in the local cache "
            "while the Hub could not be asked (no network, HF_HUB_OFFLINE=1 or local_files_only=True); "
            "check the path, or download the model once online"
        ) from None
    except (hub_errors.RepositoryNotFoundError, hub_errors.RevisionNotFoundError) as e:
        raise CheckpointError(
            f"{text}: no such local file or folder, nor a model on the Hugging Face Hub "
            f"({str(e).splitlines()[0]}); check the path or the id (and the revision, or your token for a "
            "private model)"
        ) from None
    except (hub_errors.HfHubHTTPError, OSError) as e:
        raise CheckpointError(
            f"{text}: no such local file or folder, and the download from the Hugging Face Hub failed: "
            f"{str(e).splitlines()[0]}"
        ) from None
    return Path(folder)


def from_pretrained(
    path_or_id: str | os.PathLike,
    *,
    task: Any = None,
    device: Any = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
):
    """A :class:`~fastai_sparse.prediction.Predictor` for a model folder, a weights file or a
    Hub model id; the task is rebuilt through the registry from the stored configuration
    (``task``: start from this Task instead of the registered one)."""
    from .prediction import Predictor

    path = pretrained_path(
        path_or_id, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token
    )
    return Predictor.from_weights(task, path, device=device)
