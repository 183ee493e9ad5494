"""Sparse convolution backends and backend resolution.

A backend implements the three convolutions on :class:`~fastai_sparse.engine.SparseTensor`
(its own tensor type, if any, stays inside the backend). Everything else the models use
(batch norm, activations, pooling, concatenation) works on the feature matrix and is shared.
All backends take weights in one layout, float [K**3, C_in, C_out] (see
:mod:`fastai_sparse.engine.kernel_map` for the offset order), so one state dict loads on
every backend.

Choice of backend: a ``backend=`` argument (a name or a :class:`Backend`), else the
environment variable ``FASTAI_SPARSE_BACKEND``, else ``"torch"``.

Names are looked up in a small table kept here: the built-in backends (``torch``,
``spconv``, ``scn``) and whatever :func:`add_backend` added. The engine imports nothing from
the registry or the plugins (it stands on torch alone); the registry adds the backends that
plugins register (``register_backends`` hook) to this table when it loads the plugins. So a
plugin backend is known by name once the plugins are loaded (``fastai_sparse.registry``:
any ``get_*`` / ``list_*`` call, or ``task.learner``); before that, pass the
:class:`Backend` object itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ...errors import UnknownNameError
from .base import Backend, BackendUnavailableError
from .scn_backend import ScnBackend
from .spconv_backend import SpconvBackend
from .torch_backend import TorchBackend

__all__ = [
    "ENV_VAR",
    "Backend",
    "BackendUnavailableError",
    "ScnBackend",
    "SpconvBackend",
    "TorchBackend",
    "add_backend",
    "backend_names",
    "builtin_backends",
    "remove_backend",
    "resolve_backend",
]

ENV_VAR = "FASTAI_SPARSE_BACKEND"

_BUILTIN: dict[str, type[Backend]] = {"torch": TorchBackend, "spconv": SpconvBackend, "scn": ScnBackend}
# name -> a Backend, or a zero-argument callable returning one (built on first use, then kept)
_TABLE: dict[str, Backend | Callable[[], Backend]] = dict(_BUILTIN)


def builtin_backends() -> dict[str, Backend]:
    """The backends shipped with the core, by name (the built-in plugin registers these)."""
    return {name: cls() for name, cls in _BUILTIN.items()}


def add_backend(name: str, backend: Backend | Callable[[], Backend], replace: bool = False) -> None:
    """Make ``backend`` (a :class:`Backend`, or a callable returning one on first use) resolvable
    by ``name``. The registry calls this for every backend a plugin registers. A built-in name
    cannot be replaced; another name only with ``replace=True``."""
    if name in _BUILTIN:
        raise ValueError(f"backend name {name!r} is built in and cannot be replaced")
    if name in _TABLE and not replace:
        raise ValueError(f"backend {name!r} is already in the table; pass replace=True to replace it")
    _TABLE[name] = backend


def remove_backend(name: str) -> None:
    """Forget a backend added with :func:`add_backend` (no error when it is absent)."""
    if name not in _BUILTIN:
        _TABLE.pop(name, None)


def backend_names() -> list[str]:
    """Every name :func:`resolve_backend` knows now, sorted."""
    return sorted(_TABLE)


def _lookup(name: str) -> Backend:
    entry = _TABLE.get(name)
    if entry is None:
        err = UnknownNameError("backend", name, list(_TABLE))
        err.args = (
            err.args[0] + "; a backend from a plugin is known once the plugins are loaded "
            "(fastai_sparse.registry.get_backend(name)), or pass the Backend object itself",
        )
        raise err
    if not isinstance(entry, Backend):
        entry = entry()
        if not isinstance(entry, Backend):
            raise TypeError(f"backend {name!r}: expected a Backend, got {type(entry).__name__}")
        _TABLE[name] = entry
    return entry


def resolve_backend(backend: str | Backend | None = None) -> Backend:
    """The :class:`Backend` for a name, an object, or None (env var, then ``"torch"``).

    Raises :class:`~fastai_sparse.errors.UnknownNameError` (a KeyError) for a name not in the
    table and :class:`BackendUnavailableError` when the backend exists but cannot run here.
    """
    obj = backend if isinstance(backend, Backend) else _lookup(backend or os.environ.get(ENV_VAR) or "torch")
    if not obj.available():
        raise BackendUnavailableError(obj.why_unavailable())
    return obj
