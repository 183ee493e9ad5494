"""Sparse convolution engine: tensors, kernel maps, layers and backends (torch only)."""

from .backends import (
    Backend,
    BackendUnavailableError,
    ScnBackend,
    SpconvBackend,
    TorchBackend,
    resolve_backend,
)
from .layers import (
    SparseActivation,
    SparseBatchNorm,
    SparseConv3d,
    SparseDropout,
    SparseInverseConv3d,
    SparseLinear,
    SparseReLU,
    SubMConv3d,
    global_avg_pool,
    global_max_pool,
    set_backend,
    sparse_cat,
)
from .tensor import KernelMapCache, SparseTensor

__all__ = [
    "Backend",
    "BackendUnavailableError",
    "KernelMapCache",
    "ScnBackend",
    "SparseActivation",
    "SparseBatchNorm",
    "SparseConv3d",
    "SparseDropout",
    "SparseInverseConv3d",
    "SparseLinear",
    "SparseReLU",
    "SparseTensor",
    "SpconvBackend",
    "SubMConv3d",
    "TorchBackend",
    "global_avg_pool",
    "global_max_pool",
    "resolve_backend",
    "set_backend",
    "sparse_cat",
]
