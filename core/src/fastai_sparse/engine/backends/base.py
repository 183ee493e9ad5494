"""The :class:`Backend` base class (see :mod:`fastai_sparse.engine.backends`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ...errors import FastaiSparseError

if TYPE_CHECKING:
    from ..tensor import SparseTensor

__all__ = ["Backend", "BackendUnavailableError"]


def importable(module: str) -> bool:
    """Whether ``module`` is installed and imports without error (an optional backend's test)."""
    import importlib
    import importlib.util

    if importlib.util.find_spec(module.split(".")[0]) is None:
        return False
    try:
        importlib.import_module(module)
    except Exception:
        return False
    return True


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
