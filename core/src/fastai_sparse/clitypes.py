"""Building blocks for safe command-line commands: the click parameter types and options that
core's own commands use, public so that a plugin's subcommands (``register_commands``) check
their inputs and outputs exactly as ``predict`` does.

* :class:`InputFile`: a readable, non-empty regular file that starts like the format its name
  says; a folder (unless ``allow_dir``), a FIFO, a device, an empty or unreadable file is a
  usage error (exit code 2) before any work starts.
* :func:`WeightsFile`: an :class:`InputFile` for one weights file.
* :class:`ModelSource`: a model folder, a weights file or a Hugging Face Hub id (``--model``).
* :class:`InputDir`: an existing, readable folder (``--root``).
* :class:`PositiveFloat`: a finite number above 0 (``--lr``).
* :func:`model_option`: the ``--model PATH|ID`` option of every command that predicts.
* :func:`overwrite_option`: the ``--overwrite`` flag; pass its value on to
  :func:`fastai_sparse.files.plan_outputs` and :func:`fastai_sparse.files.atomic_path`, which
  refuse an output that would replace an input or a file of the model, two inputs writing one
  output, and (without ``--overwrite``) an existing output.
* :func:`threads_option`: ``--threads N`` for a command that computes (from
  :mod:`fastai_sparse.threads`).

Errors a command raises on purpose (the :class:`~fastai_sparse.errors.FastaiSparseError`
family) become one ``Error:`` line through core's command group; nothing else is needed.
Only click is imported here: the checks load their modules when a value is converted, so a
plugin's command list stays fast to show.
"""

from __future__ import annotations

from pathlib import Path

import click

from .threads import threads_option

__all__ = [
    "InputDir",
    "InputFile",
    "ModelSource",
    "PositiveFloat",
    "WeightsFile",
    "model_option",
    "overwrite_option",
    "threads_option",
]


class InputFile(click.ParamType):
    """A path that must be a readable, non-empty regular file in the format its extension names
    (:func:`fastai_sparse.files.check_input_file`): a folder, a FIFO or a device is a usage error
    before any work starts. Converts to :class:`~pathlib.Path`.

    what: how the message names the file (``"input file"``, ``"label configuration"``).
    starts: the bytes the file must start with (default: those of its extension's format).
    allow_dir: accept a readable folder too (for readers that take one, like an S3DIS room).
    """

    name = "file"

    def __init__(
        self, what: str = "input file", starts: tuple[bytes, ...] | None = None, allow_dir: bool = False
    ):
        self.what, self.starts, self.allow_dir = what, starts, allow_dir

    def convert(self, value, param, ctx):
        from .errors import InputFileError
        from .files import check_input_file

        try:
            return check_input_file(value, self.what, starts=self.starts, allow_dir=self.allow_dir)
        except InputFileError as e:
            self.fail(str(e), param, ctx)


def WeightsFile() -> InputFile:
    """An :class:`InputFile` for one weights file (``.safetensors``, or ``.pth`` written by
    ``torch.save``); a model folder or a Hub id is refused: use :class:`ModelSource` to take
    those too."""
    return InputFile("weights file")


class ModelSource(click.ParamType):
    """A model: a model folder, a weights file (``.safetensors``, ``.pth``) or a Hugging Face Hub
    id (``owner/name``, only when no such local path exists), checked before any work
    (:func:`fastai_sparse.hub.check_model_source`: a FIFO, a device, an empty or unreadable file,
    a file that is no weights file is a usage error). Converts to a :class:`~pathlib.Path` for a
    local path, the text for an id. Protect the model's files from the outputs with
    :func:`fastai_sparse.hub.model_files`."""

    name = "model"

    def convert(self, value, param, ctx):
        from .errors import InputFileError
        from .hub import check_model_source

        if isinstance(value, Path):
            value = str(value)
        try:
            return check_model_source(value)
        except InputFileError as e:
            self.fail(str(e), param, ctx)


class InputDir(click.ParamType):
    """A path that must be an existing, readable folder. Converts to :class:`~pathlib.Path`.
    what: how the message names it (``"dataset folder"``)."""

    name = "dir"

    def __init__(self, what: str = "folder"):
        self.what = what

    def convert(self, value, param, ctx):
        from .errors import InputFileError
        from .files import check_input_dir

        try:
            return check_input_dir(value, self.what)
        except InputFileError as e:
            self.fail(str(e), param, ctx)


class PositiveFloat(click.ParamType):
    """A finite float greater than 0 (a learning rate): 0, negative numbers, ``nan`` and ``inf``
    are usage errors."""

    name = "float"

    def convert(self, value, param, ctx):
        import math

        try:
            x = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(x) or x <= 0:
            self.fail(f"{value!r} must be a finite number greater than 0", param, ctx)
        return x


def model_option(param: str = "model_path"):
    """The ``--model PATH|ID`` option of every command that predicts (a required
    :class:`ModelSource`): a decorator adding the parameter ``param``."""
    return click.option(
        "--model",
        param,
        required=True,
        type=ModelSource(),
        metavar="PATH|ID",
        help="Model folder written by `train` or `demo` (RUN/model), a .safetensors or .pth weights "
        "file, or a Hugging Face Hub model id (owner/name; needs fastai-sparse[hub]).",
    )


def overwrite_option(what: str = "existing output files", help: str | None = None):
    """The ``--overwrite`` flag of every command that writes files (never allows replacing an
    input): a decorator adding the parameter ``overwrite`` (a bool)."""
    return click.option(
        "--overwrite",
        is_flag=True,
        help=help or f"Replace {what} (an input is never replaced).",
    )
