"""Sparse convolution backends and backend resolution.

A backend implements the three convolutions on :class:`~fastai_sparse.engine.SparseTensor`
(its own tensor type, if any, stays inside the backend). Everything else the models use
(batch norm, activations, pooling, concatenation) works on the feature matrix and is shared.
All backends take weights in one layout, float [K**3, C_in, C_out] (see
:mod:`fastai_sparse.engine.kernel_map` for the offset order), so one state dict loads on
every backend.

Choice of backend: a ``backend=`` argument (a name or a :class:`Backend`), else the
environment variable ``FASTAI_SPARSE_BACKEND``, else ``"torch"``. Names are resolved through
``fastai_sparse.registry.get_backend`` (backends registered by plugins through the
``register_backends(register)`` hook); the built-in backends are used directly when the
registry is not importable.
"""

from __future__ import annotations

import os

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
    "builtin_backends",
    "resolve_backend",
]

ENV_VAR = "FASTAI_SPARSE_BACKEND"


def builtin_backends() -> dict[str, Backend]:
    """The backends shipped with the core, by name (the built-in plugin registers these)."""
    return {"torch": TorchBackend(), "spconv": SpconvBackend(), "scn": ScnBackend()}


def resolve_backend(backend: str | Backend | None = None) -> Backend:
    """The :class:`Backend` for a name, an object, or None (env var, then ``"torch"``).

    Raises :class:`BackendUnavailableError` when the backend exists but cannot run here.
    """
    if isinstance(backend, Backend):
        obj = backend
    else:
        name = backend or os.environ.get(ENV_VAR) or "torch"
        obj = None
        try:
            from fastai_sparse.registry import get_backend  # type: ignore[attr-defined]
        except ImportError:
            get_backend = None
        if get_backend is not None:
            try:
                obj = get_backend(name)
            except KeyError:
                if name not in builtin_backends():
                    raise
        if obj is None:
            builtins = builtin_backends()
            if name not in builtins:
                from ...errors import UnknownNameError

                raise UnknownNameError("backend", name, list(builtins))
            obj = builtins[name]
    if not obj.available():
        raise BackendUnavailableError(obj.why_unavailable())
    return obj
