"""Sparse convolution engine: tensors, kernel maps, layers and backends (torch only, no fastai).

Conventions:

* :class:`SparseTensor` coords are int [M, 4] (batch, x, y, z), >= 0, in the ORIGINAL voxel
  units at every level (a stride-4 tensor has coords that are multiples of 4); feats [M, C].
* Every tensor derived from one input shares one :class:`KernelMapCache`; each kernel map
  (submanifold per stride and kernel, strided per stride / kernel / stride) is built once per
  forward pass and reused by the backward pass and by the matching inverse convolution.
* Convolution weights are float [K**3, C_in, C_out] on every backend, offsets x-major
  (``k = (i * K + j) * K + l``); see :mod:`fastai_sparse.engine.kernel_map` for the exact
  correspondence with ``torch.nn.functional.conv3d`` / ``conv_transpose3d``.
* Backend: ``backend=`` (name or :class:`Backend`) on layers and models, else the environment
  variable ``FASTAI_SPARSE_BACKEND`` (read when a layer is built), else ``"torch"``.
"""

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
