"""Backends agree with the torch backend (outputs and gradients); resolution; state dicts."""

from __future__ import annotations

import pytest
import torch

from fastai_sparse.engine import (
    SparseConv3d,
    SparseInverseConv3d,
    SparseTensor,
    SubMConv3d,
    set_backend,
    sparse_cat,
)
from fastai_sparse.engine.backends import (
    ENV_VAR,
    Backend,
    BackendUnavailableError,
    ScnBackend,
    SpconvBackend,
    TorchBackend,
    add_backend,
    remove_backend,
    resolve_backend,
)

from .conftest import random_sites

HAS_SPCONV = SpconvBackend().available()
HAS_SCN = ScnBackend().available()
OTHER = [
    pytest.param("spconv", marks=pytest.mark.skipif(not HAS_SPCONV, reason="spconv missing")),
    pytest.param("scn", marks=pytest.mark.skipif(not HAS_SCN, reason="sparseconvnet missing")),
]


class EnvTorch(TorchBackend):
    """The torch backend under another name: only the environment variable can select it."""

    name = "env-torch"


def test_resolution_default_and_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_backend().name == "torch"
    assert resolve_backend(TorchBackend()) == TorchBackend()
    chosen = EnvTorch()
    add_backend("env-torch", chosen)
    try:
        assert SubMConv3d(2, 2).backend.name == "torch"  # not chosen while the variable is unset
        monkeypatch.setenv(ENV_VAR, "env-torch")
        assert resolve_backend() is chosen
        assert SubMConv3d(2, 2).backend is chosen
        assert SubMConv3d(2, 2, backend="torch").backend.name == "torch"  # an argument wins
        monkeypatch.setenv(ENV_VAR, "no-such-backend")
        with pytest.raises(KeyError, match="no-such-backend"):
            SubMConv3d(2, 2)
    finally:
        remove_backend("env-torch")


def test_unknown_and_unavailable():
    with pytest.raises(KeyError, match="nope"):
        resolve_backend("nope")

    class Missing(Backend):
        name = "missing"

    with pytest.raises(BackendUnavailableError):
        resolve_backend(Missing())


def test_scn_unavailable_message():
    if HAS_SCN:
        pytest.skip("sparseconvnet is installed")
    assert "SparseConvNet" in ScnBackend().why_unavailable()


class Net(torch.nn.Module):
    def __init__(self, cin=3):
        super().__init__()
        self.a = SubMConv3d(cin, 8, bias=True)
        self.d = SparseConv3d(8, 6)
        self.b = SubMConv3d(6, 6)
        self.d2 = SparseConv3d(6, 5)
        self.u2 = SparseInverseConv3d(5, 6)
        self.u = SparseInverseConv3d(6, 4)
        self.c = SubMConv3d(12, 3)

    def forward(self, x):
        a = self.a(x)
        b = self.b(self.d(a))
        b = self.u2(self.d2(b)).replace(b.feats + self.u2(self.d2(b)).feats)
        return self.c(sparse_cat(a, self.u(b)))


def _run(net, coords, feats):
    f = feats.clone().requires_grad_()
    y = net(SparseTensor(coords, f))
    (y.feats * torch.linspace(-1, 1, y.feats.numel()).view_as(y.feats)).sum().backward()
    grads = {n: p.grad.clone() for n, p in net.named_parameters()}
    net.zero_grad()
    return y, f.grad, grads


@pytest.mark.parametrize("name", OTHER)
@pytest.mark.parametrize("threads", [1, 2])
def test_backend_matches_torch(name, threads):
    coords = random_sites(3, (14, 11, 9), 0.25, 11)
    torch.manual_seed(0)
    feats = torch.randn(len(coords), 3)
    net = Net()
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ref = _run(set_backend(net, "torch"), coords, feats)
        got = _run(set_backend(net, name), coords, feats)
    finally:
        torch.set_num_threads(old)
    assert torch.equal(got[0].coords, ref[0].coords)
    torch.testing.assert_close(got[0].feats, ref[0].feats, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got[1], ref[1], rtol=1e-4, atol=1e-5)
    for k in ref[2]:
        torch.testing.assert_close(got[2][k], ref[2][k], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", OTHER)
def test_state_dict_round_trip(name):
    coords = random_sites(2, (9, 9, 9), 0.3, 12)
    feats = torch.randn(len(coords), 3)
    torch.manual_seed(1)
    a = Net()
    sd = a.state_dict()
    b = set_backend(Net(), name)
    b.load_state_dict(sd)
    with torch.no_grad():
        ya = a(SparseTensor(coords, feats)).feats
        yb = b(SparseTensor(coords, feats)).feats
    torch.testing.assert_close(ya, yb, rtol=1e-4, atol=1e-5)
    assert set(b.state_dict()) == set(sd)


@pytest.mark.skipif(not HAS_SPCONV, reason="spconv missing")
def test_spconv_guard_restores_threads():
    coords = random_sites(1, (6, 6, 6), 0.3, 13)
    torch.set_num_threads(2)
    conv = SubMConv3d(3, 4, backend="spconv")
    conv(SparseTensor(coords, torch.randn(len(coords), 3)))
    assert torch.get_num_threads() == 2


@pytest.mark.skipif(not HAS_SPCONV, reason="spconv missing")
def test_spconv_large_input_no_race():
    """The race showed on large inputs with 2 threads: compare every row with torch."""
    coords = random_sites(2, (60, 60, 30), 0.1, 14)
    feats = torch.randn(len(coords), 32)
    torch.manual_seed(0)
    conv = SubMConv3d(32, 32)
    torch.set_num_threads(2)
    ref = conv(SparseTensor(coords, feats)).feats
    for _ in range(3):
        got = set_backend(conv, "spconv")(SparseTensor(coords, feats)).feats
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", OTHER)
def test_unet_same_on_every_backend(name):
    from fastai_sparse.models import UNet

    coords = random_sites(2, (12, 10, 9), 0.3, 15)
    feats = torch.randn(len(coords), 3)
    torch.manual_seed(2)
    net = UNet(3, m=4, levels=3, reps=1, residual=True).eval()
    with torch.no_grad():
        ref = net(SparseTensor(coords, feats)).feats
        got = set_backend(net, name)(SparseTensor(coords, feats)).feats
    set_backend(net, "torch")
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)
