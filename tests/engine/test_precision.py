"""The engine under autocast (bfloat16 on the CPU): reduced-precision convolutions close to a
float64 reference, float32 gradients for float32 weights and inputs, float32 sums across blocks,
batch-norm statistics in float32."""

from __future__ import annotations

import pytest
import torch

from fastai_sparse.engine import (
    SparseBatchNorm,
    SparseConv3d,
    SparseInverseConv3d,
    SparseTensor,
    SubMConv3d,
    global_avg_pool,
)
from fastai_sparse.engine.functional import gather_mm_wgrad, global_avg_pool_feats, subm_backward

from .conftest import random_sites

BF16 = torch.bfloat16
#: bfloat16 keeps 8 significant bits (relative rounding 2**-9 = 0.2 %); sums of a few dozen
#: rounded products stay well inside 2 % of the output's scale.
REL = 2e-2


def _rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a.detach().double() - ref.detach()).norm() / ref.detach().norm())


def _net():
    torch.manual_seed(0)
    return torch.nn.ModuleList(
        [
            SubMConv3d(3, 8, bias=True),
            SparseConv3d(8, 8, kernel_size=3),
            SparseInverseConv3d(8, 4, kernel_size=3),
        ]
    )


def _forward(net, x):
    a = net[0](x)
    return net[2](net[1](a))


@pytest.mark.parametrize("order", ["random", "sorted"])
def test_convolutions_under_bf16_autocast_match_float64(order, device):
    coords = random_sites(2, (9, 8, 7), 0.3, 3)
    if order == "sorted":
        key = ((coords[:, 0] * 100 + coords[:, 1]) * 100 + coords[:, 2]) * 100 + coords[:, 3]
        coords = coords[torch.argsort(key)]
    coords, feats = coords.to(device), torch.randn(len(coords), 3).to(device)
    net = _net().to(device)
    ref_net = _net().double().to(device)
    x64 = SparseTensor(coords, feats.double().requires_grad_())
    ref = _forward(ref_net, x64).feats
    ref.square().sum().backward()

    x = SparseTensor(coords, feats.clone().requires_grad_())
    with torch.autocast(device.type, dtype=BF16):
        a = net[0](x)
        y = _forward(net, x)
    # every convolution computes in bfloat16 under autocast ...
    assert a.feats.dtype == BF16 and y.feats.dtype == BF16
    assert _rel_err(y.feats, ref) < REL
    y.feats.float().square().sum().backward()
    # ... and the gradients come back in the dtypes of the float32 weights and input
    assert x.feats.grad.dtype == torch.float32
    for p, q in zip(net.parameters(), ref_net.parameters()):
        assert p.grad.dtype == torch.float32
        assert _rel_err(p.grad, q.grad) < 3 * REL
    assert _rel_err(x.feats.grad, x64.feats.grad) < 3 * REL


def test_bf16_without_autocast_follows_the_input_dtype():
    """A model converted with ``.bfloat16()`` computes in bfloat16; its weight gradients are
    bfloat16 (rounded from float32 sums)."""
    coords = random_sites(1, (6, 6, 6), 0.4, 1)
    conv = SubMConv3d(3, 4).bfloat16()
    y = conv(SparseTensor(coords, torch.randn(len(coords), 3, dtype=BF16)))
    assert y.feats.dtype == BF16
    y.feats.float().sum().backward()
    assert conv.weight.grad.dtype == BF16


def _bf16_running_sum(value: float, times: int) -> float:
    """What a bfloat16 accumulator holds after adding ``value`` ``times`` times."""
    acc = torch.zeros(1, dtype=BF16)
    for _ in range(times):
        acc += torch.tensor(value, dtype=BF16)
    return float(acc)


def test_weight_gradient_sums_blocks_in_float32():
    """1000 blocks of 16 rows of ones: each block's product (16) is exact in bfloat16, but a
    bfloat16 running sum stops at 4096 (4096 + 16 rounds back to 4096 with 8 significant bits);
    a float32 accumulator gives exactly 16000."""
    n, chunk = 16_000, 16
    assert _bf16_running_sum(chunk, n // chunk) == 4096
    src = torch.ones(n, 1, dtype=BF16)
    nbr_t = torch.arange(n, dtype=torch.int32)[:, None]  # one offset: row j reads src[j]
    gw = gather_mm_wgrad(src, nbr_t, torch.ones(n, 1, dtype=BF16), chunk=chunk)
    assert gw.dtype == torch.float32
    assert float(gw.sum()) == n


def test_submanifold_backward_sums_blocks_in_float32():
    n, chunk = 8000, 16
    coords = torch.zeros(n, 4, dtype=torch.int64)
    coords[:, 1] = torch.arange(n) * 3  # isolated sites: only the centre offset is active
    x = SparseTensor(coords, torch.ones(n, 1))
    kmap = x.cache.subm_map(1, 3)
    ones = torch.ones(n + 1, 1, dtype=BF16)  # with the zero padding row, as the forward saves it
    ones[-1] = 0
    w = torch.ones(27, 1, 1, dtype=BF16)
    _, gw = subm_backward(ones, w, ones, kmap, need_x=False, need_w=True, chunk=chunk, padded=True)
    assert gw.dtype == torch.float32
    assert float(gw[13]) == n and float(gw.sum()) == n
    assert _bf16_running_sum(chunk, n // chunk) != n


def test_global_average_pool_sums_in_float32():
    n = 10_000
    feats = torch.ones(n, 2, dtype=BF16)
    out = global_avg_pool_feats(feats, torch.zeros(n, dtype=torch.int64), 1)
    assert out.dtype == torch.float32 and torch.equal(out, torch.ones(1, 2))
    assert _bf16_running_sum(1.0, n) == 256  # what a bfloat16 sum would give
    coords = random_sites(2, (5, 5, 5), 0.5, 0)
    x = SparseTensor(coords, torch.randn(len(coords), 3, dtype=BF16))
    ref = global_avg_pool(SparseTensor(coords, x.feats.double()))
    torch.testing.assert_close(global_avg_pool(x).double(), ref, rtol=1e-6, atol=1e-6)


def test_batch_norm_statistics_in_float32():
    torch.manual_seed(0)
    f = (torch.randn(500, 4) * 3 + 100).to(BF16)  # large mean: bfloat16 statistics would be coarse
    coords = torch.zeros(500, 4, dtype=torch.int64)
    coords[:, 1] = torch.arange(500)
    bn, ref = SparseBatchNorm(4), torch.nn.BatchNorm1d(4).double()
    y = bn(SparseTensor(coords, f))
    expect = ref(f.double())
    assert y.feats.dtype == BF16
    assert bn.running_mean.dtype == torch.float32
    torch.testing.assert_close(bn.running_mean.double(), ref.running_mean, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(bn.running_var.double(), ref.running_var, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y.feats.double(), expect, rtol=1e-2, atol=1e-2)
