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
from typing import TYPE_CHECKING

import torch

from ...errors import FastaiSparseError

if TYPE_CHECKING:
    from ..tensor import SparseTensor

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


class BackendUnavailableError(FastaiSparseError, RuntimeError):
    """A backend was asked for but its package cannot be imported or does not work here."""


class Backend:
    """Base class of sparse convolution backends.

    Subclasses set ``name`` and implement :meth:`available` and the three convolutions.
    Each convolution takes a :class:`SparseTensor` and a weight float [K**3, C_in, C_out]
    and returns a :class:`SparseTensor` sharing the input's kernel-map cache:

    * :meth:`subm_conv`: same coords and stride as the input;
    * :meth:`sparse_conv`: coords of the coarse level (``stride * conv_stride``), in the
      order given by the cache's down map (``cache.down_map(...).out_coords``);
    * :meth:`inverse_conv`: exactly the coords of the finer tensor that produced the input
      through the matching strided convolution.
    """

    name: str = "base"

    def available(self) -> bool:
        """True when the backend can run in this process."""
        return False

    def why_unavailable(self) -> str:
        return f"backend {self.name!r} is not available"

    def subm_conv(self, x: SparseTensor, weight: torch.Tensor, kernel_size: int) -> SparseTensor:
        raise NotImplementedError

    def sparse_conv(
        self, x: SparseTensor, weight: torch.Tensor, kernel_size: int, stride: int
    ) -> SparseTensor:
        raise NotImplementedError

    def inverse_conv(
        self, x: SparseTensor, weight: torch.Tensor, kernel_size: int, stride: int
    ) -> SparseTensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.name == self.name

    def __hash__(self) -> int:
        return hash((type(self), self.name))


from .scn_backend import ScnBackend
from .spconv_backend import SpconvBackend
from .torch_backend import TorchBackend


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
