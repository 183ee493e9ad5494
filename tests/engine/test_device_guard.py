"""Nothing in the engine moves data to the CPU behind the user's back.

Two guards around a UNet (and a pooling ResNet) forward and backward:

* a :class:`~torch.overrides.TorchFunctionMode` that records every read of tensor data into
  Python (``.cpu()``, ``.numpy()``, ``.to()`` another device, ``.tolist()``, ``.item()``,
  ``bool()``, ``int()``, ``float()``, ``index()``) with the engine function that made it. On a
  GPU each is a device-to-host copy and a synchronisation: the engine may only read a few
  numbers (a bounding box of 4 integers, whether keys are sorted), never a tensor's rows, and
  only from the places listed in ``ALLOWED`` (a new one fails here, so it is a decision);
* ``torch.device("meta")`` as the default device while the input lives on the CPU: a tensor
  the engine creates without naming the input's device (the bug that runs on a CPU and breaks
  on a GPU, where the default device is still the CPU) lands on ``meta`` and the run fails or
  changes its result.

Both run on the CPU here (no GPU on the development machines); on a GPU the ``device`` cases
run the same guards on ``cuda``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

from fastai_sparse.engine import SparseTensor
from fastai_sparse.models import PoolHead, SegmentationHead, SparseModel, SparseResNet, UNet

from .conftest import random_sites

ENGINE = Path(sys.modules["fastai_sparse"].__file__).parent

#: Reads of tensor data the engine and models may make, by (module, function): all scalars or
#: a few integers, each one synchronisation on a GPU.
ALLOWED = {
    ("engine/kernel_map.py", "__init__"),  # CoordIndex: the bounding box (4 ints), keys sorted?
    ("engine/kernel_map.py", "build_down_map"),  # the coarse level's extent (3 ints)
    ("engine/tensor.py", "_check_coords"),  # coordinates >= 0 and in range (min and max row)
    ("engine/kernel_map.py", "build_plane_groups"),  # the sizes of the 64 face groups, once a map
}
#: The most numbers one allowed read may bring back (by site; default :data:`MAX_READ`).
MAX_READ = 4
MAX_READ_AT = {("engine/kernel_map.py", "build_plane_groups"): 64}

_READS = {"tolist", "item", "__bool__", "__int__", "__float__", "__index__"}
_COPIES = {"cpu", "numpy", "__array__"}


def _site() -> tuple[str, str]:
    """(module relative to the package, function) of the innermost fastai_sparse frame."""
    f = sys._getframe(2)
    while f is not None:
        p = Path(f.f_code.co_filename)
        if ENGINE in p.parents:
            return p.relative_to(ENGINE).as_posix(), f.f_code.co_name
        f = f.f_back
    return "<test>", ""


class HostReads(TorchFunctionMode):
    """Records every read of tensor data into Python and every copy to another device."""

    def __init__(self):
        super().__init__()
        self.reads: list[tuple[str, str, str, int]] = []
        self.copies: list[tuple[str, str, str, str]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if args and isinstance(args[0], torch.Tensor):
            t = args[0]
            if name in _READS:
                self.reads.append((*_site(), name, t.numel()))
            elif name in _COPIES:
                self.copies.append((*_site(), name, str(t.device)))
            elif name == "to":
                device = torch._C._nn._parse_to(*args[1:], **kwargs)[0]
                if device is not None and device != t.device:
                    self.copies.append((*_site(), f"to({device})", str(t.device)))
        return func(*args, **kwargs)


def _cloud(device, n_batches=2, seed=0):
    coords = random_sites(n_batches, (20, 18, 10), 0.3, seed).to(device)
    g = torch.Generator().manual_seed(seed)
    return coords, torch.randn(len(coords), 3, generator=g).to(device)


def _unet_step(device):
    torch.manual_seed(0)
    net = UNet(3, m=8, levels=3, reps=1, residual=True).to(device)
    coords, feats = _cloud(device)

    def run():
        net.zero_grad()
        f = feats.clone().requires_grad_()
        y = net(SparseTensor(coords, f))
        y.feats.square().mean().backward()
        return y.feats.detach(), next(net.parameters()).grad.clone(), f.grad

    return run


def _pool_step(device):
    torch.manual_seed(0)
    model = SparseModel(SparseResNet(3, widths=(8, 16), blocks=(1, 1)), PoolHead(16, 4, pool="avgmax")).to(
        device
    )
    coords, feats = _cloud(device, n_batches=3, seed=1)
    n = torch.bincount(coords[:, 0].long(), minlength=3)
    batch = {
        "coords": coords.int(),
        "feats": feats,
        "voxel_offsets": torch.cat([n.new_zeros(1), n.cumsum(0)]),
    }

    def run():
        model.zero_grad()
        out = model(batch)
        out.logsumexp(1).sum().backward()
        return out.detach(), next(model.parameters()).grad.clone()

    return run


def _segment_step(device):
    torch.manual_seed(0)
    model = SparseModel(UNet(3, m=8, levels=3), SegmentationHead(8, 5)).to(device)
    coords, feats = _cloud(device, seed=2)
    n = torch.bincount(coords[:, 0].long(), minlength=2)
    # every voxel holds two points (the head maps each point to its voxel's row)
    batch = {
        "coords": coords.int(),
        "feats": feats,
        "inverse": torch.arange(len(coords), device=device).repeat_interleave(2),
        "voxel_offsets": torch.cat([n.new_zeros(1), n.cumsum(0)]),
        "point_offsets": torch.cat([n.new_zeros(1), 2 * n.cumsum(0)]),
    }
    target = torch.arange(2 * len(coords), device=device) % 5

    def run():
        model.zero_grad()
        out = model(batch)
        torch.nn.functional.cross_entropy(out, target).backward()
        return out.detach(), next(model.parameters()).grad.clone()

    return run


STEPS = {"unet": _unet_step, "resnet-pool": _pool_step, "unet-segmentation": _segment_step}


@pytest.mark.parametrize("step", list(STEPS))
def test_no_hidden_copies_and_only_scalar_reads(step, device):
    run = STEPS[step](device)
    mode = HostReads()
    with mode:
        out, *_ = run()
    assert out.device == device
    assert mode.copies == [], f"data moved off {device} behind the user's back: {mode.copies}"
    engine_reads = [r for r in mode.reads if r[0] != "<test>"]
    assert engine_reads, "the guard saw no read at all: it is not recording"
    big = [r for r in engine_reads if r[3] > MAX_READ_AT.get(r[:2], MAX_READ)]
    assert not big, f"reads of more than {MAX_READ} numbers (a tensor copied to Python): {big}"
    sites = {r[:2] for r in engine_reads}
    assert sites <= ALLOWED, f"new places that read tensor data (one GPU sync each): {sites - ALLOWED}"


def test_the_guard_sees_a_hidden_copy():
    """The mode catches the copies and reads it exists for (a guard that cannot fail is none)."""
    mode = HostReads()
    x = torch.arange(6)
    with mode:
        x.cpu(), x.numpy(), x.to("meta"), x.tolist(), bool(x[0]), x[1].item()
    assert [c[2] for c in mode.copies] == ["cpu", "numpy", "to(meta)"]
    assert [(r[2], r[3]) for r in mode.reads] == [("tolist", 6), ("__bool__", 1), ("item", 1)]


@pytest.mark.parametrize("step", list(STEPS))
def test_nothing_is_created_on_the_default_device(step):
    """With ``meta`` as the default device and the data on the CPU, a tensor built without the
    input's device ends up on ``meta``: the run must still work and give the same numbers."""
    run = STEPS[step](torch.device("cpu"))
    ref = run()
    with torch.device("meta"):
        got = run()
    for a, b in zip(ref, got):
        assert b.device.type == "cpu"
        torch.testing.assert_close(b, a, rtol=0, atol=0)


def test_the_default_device_trap_catches_an_unplaced_tensor():
    x = torch.ones(3)
    with torch.device("meta"), pytest.raises(RuntimeError, match="meta"):
        x + torch.tensor([1.0, 2.0, 3.0])  # the bug the trap is for: no device given
