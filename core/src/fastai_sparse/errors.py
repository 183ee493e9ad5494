"""The exception hierarchy of fastai-sparse.

Every error the library raises on purpose derives from :class:`FastaiSparseError`, so a
caller can catch them all at once. Messages name the file, the field, the value found and
what was expected.

This module imports nothing but the standard library, so a caller (the CLI, a plugin) can
catch any of these errors without importing torch or fastai. The training errors
(:class:`CheckpointError`, :class:`NonFiniteLossError`, :class:`EmptyDatasetError`) are also
importable from :mod:`fastai_sparse.learner`, where they used to live.
"""

from __future__ import annotations

import difflib

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ConformanceError",
    "DataFormatError",
    "DuplicateNameError",
    "EmptyDatasetError",
    "FastaiSparseError",
    "InputFileError",
    "NonFiniteLossError",
    "OptionError",
    "OutputConflictError",
    "OutputExistsError",
    "PathError",
    "PluginError",
    "ShapeError",
    "StaleCacheError",
    "UnknownNameError",
    "UnsafeFileError",
]


class FastaiSparseError(Exception):
    """Base class of every error raised on purpose by fastai-sparse."""


class UnknownNameError(FastaiSparseError, KeyError):
    """A registry lookup found no object of that kind under that name.

    ``suggestions`` holds the closest registered names; ``broken`` the plugins that failed
    to load (their task may be the one asked for).
    """

    def __init__(self, kind: str, name: str, known: list[str], broken: dict[str, str] | None = None):
        self.kind, self.name, self.known = kind, name, sorted(known)
        self.suggestions = difflib.get_close_matches(name, self.known, n=5, cutoff=0.5)
        self.broken = dict(broken or {})
        msg = f"unknown {kind} {name!r}"
        if self.suggestions:
            msg += "; did you mean " + ", ".join(repr(s) for s in self.suggestions) + "?"
        elif self.known:
            shown = ", ".join(self.known[:12]) + (", ..." if len(self.known) > 12 else "")
            msg += f"; known {kind}s: {shown}"
        else:
            msg += f"; no {kind}s are registered"
        for plugin, err in self.broken.items():
            msg += f"\n  plugin {plugin!r} failed to load and may provide it: {err}"
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class DuplicateNameError(FastaiSparseError):
    """Two plugins registered the same name for the same kind of object."""


class PluginError(FastaiSparseError):
    """A plugin failed to import, registered something invalid, or broke the contract."""


class DataFormatError(FastaiSparseError, ValueError):
    """A file or array does not have the expected format.

    The message names the file (when there is one), the field, what was found and what was
    expected.
    """

    def __init__(self, message: str, path: object | None = None, field: str | None = None):
        self.path, self.field = path, field
        where = []
        if path is not None:
            where.append(str(path))
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__((": ".join(where) + ": " if where else "") + message)


class StaleCacheError(DataFormatError):
    """A prepared cache file does not match what it was made from (its sources changed, or it
    was made by another version or with other options); the message says how to rebuild it."""


class OptionError(FastaiSparseError, ValueError):
    """A dataset option given to a task (``-O key=value`` on the command line) is not one the
    task declares, or its value is not of the declared kind; or a training option is outside its
    meaning (``epochs=0``, ``lr <= 0``, ...)."""


class ShapeError(FastaiSparseError, ValueError):
    """Arrays or tensors have inconsistent shapes, dtypes or channel counts."""


class ConformanceError(FastaiSparseError, AssertionError):
    """A plugin or task does not satisfy the fastai-sparse plugin contract."""


class PathError(FastaiSparseError):
    """A file or folder the command reads or writes is not usable as it is.

    The message reads ``<path>: <what is wrong>; <what to do>``; ``path``, ``problem`` and
    ``hint`` keep the three parts.
    """

    def __init__(self, path: object, problem: str, hint: str | None = None):
        self.path, self.problem, self.hint = path, problem, hint
        super().__init__(f"{path}: {problem}" + (f"; {hint}" if hint else ""))

    def __str__(self) -> str:
        return self.args[0]


class InputFileError(PathError, ValueError):
    """An input path is missing, not a regular file (a folder, a FIFO, a device), unreadable,
    empty, or not in the format its name claims."""


class OutputExistsError(PathError, FileExistsError):
    """An output file already exists and replacing it was not allowed (``--overwrite``)."""


class OutputConflictError(PathError, ValueError):
    """An output would replace an input, or two inputs would write the same output.

    ``--overwrite`` never allows this."""


class CheckpointError(FastaiSparseError, ValueError):
    """A weights file is missing, corrupt, or belongs to another task or model."""


class UnsafeFileError(CheckpointError):
    """A file that loading would let run code (a pickle holding Python objects other than
    tensors), refused without running any of it."""


class ConfigError(FastaiSparseError, ValueError):
    """A configuration (a ``config.json``, a ``--set key=value``) names an unknown key, holds a
    value of the wrong type, or asks for an object that a config may not construct. The message
    starts with the file (when there is one) and the dotted key; ``key`` and ``source`` keep them."""

    def __init__(self, message: str, key: str | None = None, source: object = None):
        super().__init__(message)
        self.key, self.source = key, source


class NonFiniteLossError(FastaiSparseError, FloatingPointError):
    """The loss became NaN or infinite; the message names the epoch and batch."""


class EmptyDatasetError(FastaiSparseError, ValueError):
    """A training or validation set has no items."""
