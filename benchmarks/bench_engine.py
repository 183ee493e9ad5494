"""Benchmark of the sparse convolution engine on two procedural ScanNet-like rooms.

Run from the repository root::

    python benchmarks/bench_engine.py            # 1 and 2 threads, 7 interleaved rounds
    python benchmarks/bench_engine.py --quick    # 2 rounds, a smoke run
    python benchmarks/bench_engine.py --device cuda --threads 1   # on a GPU (rows synchronised)

Every figure is printed next to a baseline timed in the same interleaved group (the rows of
a group run round-robin in one process; the ratio is the median of the per-round ratios):

* **GEMM limit** (the target's yardstick): for each kernel offset, ``torch.mm`` of the rows
  that offset touches, pre-gathered and contiguous (forward ``A_k @ W_k``; forward+backward
  adds ``G_k @ W_k^T`` and ``A_k^T @ G_k``), allocating its outputs. Gathering, scattering
  and the kernel map are free; only active (offset, row) pairs are multiplied.
* **in-cache bound** (the physical limit): the same useful multiplications with every
  operand in one cache-resident block, so no memory traffic at all, in the faster of two
  GEMM shapes (per offset in blocks of 4096 rows, or the offsets stacked along the inner
  dimension like the engine's im2col blocks). No implementation of the convolution can beat it: a ratio below 1 is
  rejected by the harness as a measurement error.
* **permuted**: the same voxels in a random row order (a user's own coordinates, several
  clouds concatenated) through the same public API; the engine must not care (within 10%).
* **spconv** (when installed) kernel-map build, 1 thread (its CPU convolutions race with
  more, see the spconv adapter) and the run's thread count.

* **bf16** (``--dtypes 32,bf16``, the default): the submanifold, strided and transposed
  convolutions under ``torch.autocast`` with bfloat16, against float32 in the same interleaved
  group (the speed-up of ``--precision bf16`` for the engine) and against the bf16 GEMM limit
  and in-cache bound (the same products in bfloat16).
* **--device cuda**: every row on the GPU, each timed call followed by
  ``torch.cuda.synchronize()``; with spconv's CUDA build installed, spconv's ``SubMConv3d``
  fwd+bwd on the same voxels (float32, and float16 when bf16 rows are asked for, spconv's
  reduced type) is the baseline of ours (skipped with the reason, recorded in the JSON's
  ``info.spconv_cuda``, when only spconv's CPU build is installed). Without a CUDA device the
  run prints why and writes nothing. Never run yet: the machines this project is developed on
  have no GPU (docs/gpu.md).

Useful FLOP/s counts only active pairs (2 * pairs * C_in * C_out per product; fwd+bwd is
three products). The padding the engine still multiplies is the figure
``subm_multiplied_pairs``: (row, offset) pairs in its tables per useful pair, after the
kernel-face grouping of ``SubmanifoldMap.plane_groups`` (the full table is in the label). Targets (issue 17): subm fwd+bwd <= 1.3x the GEMM limit on the large room
and <= 1.5x on the small one, permuted within 1.1x of sorted, strided and transposed
fwd+bwd <= 2.0x their GEMM limit. Writes ``benchmarks/results/engine.json``.
The whole-network figure (UNet training step) is ``benchmarks/bench_unet.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Bench, add_common_args

from fastai_sparse.engine import SparseConv3d, SparseInverseConv3d, SparseTensor, SubMConv3d
from fastai_sparse.engine.tensor import KernelMapCache


# ----------------------------------------------------------------------------- inputs
def _box_surface(occ, lo, hi, top_only=False):
    """Mark the (2-voxel-thick) surface of the box [lo, hi) in the occupancy grid."""
    x0, y0, z0 = lo
    x1, y1, z1 = hi
    occ[x0:x1, y0:y1, z1 - 2 : z1] = True  # top
    if top_only:
        return
    occ[x0 : x0 + 2, y0:y1, z0:z1] = True
    occ[x1 - 2 : x1, y0:y1, z0:z1] = True
    occ[x0:x1, y0 : y0 + 2, z0:z1] = True
    occ[x0:x1, y1 - 2 : y1, z0:z1] = True


def make_room(size_m=(8.0, 8.0, 3.0), voxel=0.05, walls=4, furniture=40, seed=0):
    """Coords int32 [M, 4] of a room: floor, walls and furniture surfaces, 2 voxels thick,
    sorted by (batch, x, y, z) like the voxelizer's output.

    Surfaces are perturbed (a bumpy floor, leaning boxes) so the map is not a perfect
    lattice. Batch index 0.
    """
    rng = np.random.default_rng(seed)
    X, Y, Z = (round(s / voxel) for s in size_m)
    occ = np.zeros((X, Y, Z), dtype=bool)
    # floor with a gentle bump field (1-2 voxels)
    bump = (rng.random((X, Y)) < 0.15).astype(int)
    for x in range(X):
        occ[x, np.arange(Y), bump[x]] = True
        occ[x, np.arange(Y), bump[x] + 1] = True
    if walls >= 1:
        occ[0:2, :, :] = True
    if walls >= 2:
        occ[:, 0:2, :] = True
    if walls >= 3:
        occ[X - 2 : X, :, :] = True
    if walls >= 4:
        occ[:, Y - 2 : Y, :] = True
    for _ in range(furniture):
        sx, sy = rng.integers(8, 30, size=2)
        sz = int(rng.integers(8, 20))
        x0 = int(rng.integers(3, max(4, X - sx - 3)))
        y0 = int(rng.integers(3, max(4, Y - sy - 3)))
        _box_surface(occ, (x0, y0, 0), (x0 + sx, y0 + sy, min(Z, sz)), top_only=rng.random() < 0.3)
    # sensor noise: drop a few voxels
    keep = rng.random(occ.shape) > 0.02
    idx = np.argwhere(occ & keep)
    coords = np.concatenate([np.zeros((len(idx), 1), dtype=np.int64), idx], axis=1)
    return torch.from_numpy(coords).int()


def rooms() -> dict[str, torch.Tensor]:
    """The large (~200k voxels, 8 x 8 x 3 m) and small (~24k voxels) rooms at 5 cm."""
    large = make_room((8.0, 8.0, 3.0), furniture=60, seed=0)
    small = make_room((3.0, 3.0, 2.4), walls=2, furniture=4, seed=1)
    return {"large": large, "small": small}


#: The device every tensor of the run lives on (``--device``) and the dtypes timed (``--dtypes``).
DEVICE = torch.device("cpu")
DTYPES = {"32", "bf16"}


def synced(rows: dict) -> dict:
    """``rows`` with a ``torch.cuda.synchronize()`` after every call on a GPU (wall-clock
    timing of asynchronous kernels), unchanged on the CPU."""
    if DEVICE.type != "cuda":
        return rows

    def wrap(fn):
        def run():
            fn()
            torch.cuda.synchronize(DEVICE)

        return run

    return {k: wrap(v) for k, v in rows.items()}


# ----------------------------------------------------------------------------- baselines
#: Rows per block of the in-cache bound's products (operands of one block stay in L2).
BOUND_BLOCK = 4096


def _pairs(nbr: torch.Tensor, n_in: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(input rows, output rows) int64 of every offset of a neighbour table."""
    out = []
    for k in range(nbr.shape[0]):
        o = (nbr[k] < n_in).nonzero().squeeze(1)
        out.append((nbr[k][o].long(), o))
    return out


def gemm_limit(pairs, x, weight, grad, backward: bool):
    """Per-offset torch.mm on pre-gathered contiguous rows, allocating outputs.

    ``pairs[k] = (rows of x, rows of grad)``; x float [N_in, C_in], grad float [N_out, C_out].
    """
    A = [x[i].contiguous() for i, _ in pairs]
    G = [grad[o].contiguous() for _, o in pairs] if backward else None
    wt = weight.transpose(1, 2).contiguous()

    def run():
        for k in range(len(A)):
            if len(A[k]) == 0:
                continue
            torch.mm(A[k], weight[k])
            if backward:
                torch.mm(G[k], wt[k])
                torch.mm(A[k].t(), G[k])

    return run


def in_cache_bound(pairs, weight, backward: bool, block: int, stacked: bool = False):
    """The same useful products with every operand in one cache-resident block, in one of two
    GEMM shapes: per offset (``[rows, C_in] @ W_k`` in blocks of ``block`` rows), or
    (``stacked``) the offsets stacked along the inner dimension
    (``[rows, K**3 * C_in] @ [K**3 * C_in, C_out]``, the shape of the engine's im2col blocks,
    faster per FLOP where small GEMMs are slow, e.g. bf16 without bf16 matrix units) with as
    many rows as make the same number of multiplications. The bound of a figure is the faster
    of the two in the same interleaved group (:func:`bound_of`)."""
    vol, c_in, c_out = weight.shape
    like = {"dtype": weight.dtype, "device": weight.device}
    wt = weight.transpose(1, 2).contiguous()
    sizes = []
    for k, (i, _) in enumerate(pairs):
        n = len(i)
        sizes += [(k, block)] * (n // block) + ([(k, n % block)] if n % block else [])
    A = torch.randn(block, c_in, **like)
    G = torch.randn(block, c_out, **like)
    out = torch.empty(block, c_out, **like)
    GI = torch.empty(block, c_in, **like)
    GW = torch.empty(c_in, c_out, **like)

    def per_offset():
        for k, r in sizes:
            torch.mm(A[:r], weight[k], out=out[:r])
            if backward:
                torch.mm(G[:r], wt[k], out=GI[:r])
                torch.mm(A[:r].t(), G[:r], out=GW)

    wide_rows = max(1, block // vol)  # the same bytes per block as the per-offset shape
    total = sum(len(i) for i, _ in pairs)  # stacked rows * vol == useful pairs
    n_rows = -(-total // vol)
    wsizes = [wide_rows] * (n_rows // wide_rows) + ([n_rows % wide_rows] if n_rows % wide_rows else [])
    W = weight.reshape(vol * c_in, c_out)
    WT = W.t().contiguous()
    AW = torch.randn(wide_rows, vol * c_in, **like)
    GWide = torch.empty(vol * c_in, c_out, **like)
    GIW = torch.empty(wide_rows, vol * c_in, **like)

    def stacked_run():
        for r in wsizes:
            torch.mm(AW[:r], W, out=out[:r])
            if backward:
                torch.mm(G[:r], WT, out=GIW[:r])
                torch.mm(AW[:r].t(), G[:r], out=GWide)

    return stacked_run if stacked else per_offset


def bounds(pairs, weight, backward: bool, prefix: str = "bound") -> dict:
    """The two shapes of :func:`in_cache_bound` as rows ``prefix`` and ``prefix + "_stacked"``."""
    return {
        prefix: in_cache_bound(pairs, weight, backward, BOUND_BLOCK),
        f"{prefix}_stacked": in_cache_bound(pairs, weight, backward, BOUND_BLOCK, stacked=True),
    }


def bound_of(g: dict, prefix: str = "bound"):
    """The faster of the two bound rows of an interleaved group (the tighter bound)."""
    return min(g[prefix], g[f"{prefix}_stacked"], key=lambda t: t.median)


def spconv_map_fn(coords: torch.Tensor):
    """spconv's submanifold 3^3 kernel-map build (``ops.get_indice_pairs``), or None."""
    try:
        import spconv.pytorch as spc
        from spconv.pytorch import ops
    except Exception:
        return None
    idx = coords.int().contiguous()
    shape = (idx[:, 1:].max(0).values + 1).tolist()
    algo = spc.ConvAlgo.Native

    def build():
        ops.get_indice_pairs(idx, 1, shape, algo, [3, 3, 3], [1] * 3, [1] * 3, [1] * 3, [0] * 3, True)

    return build


def with_threads(fn, n: int):
    def run():
        old = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            fn()
        finally:
            torch.set_num_threads(old)

    return run


# ----------------------------------------------------------------------------- one room
def fwd_bwd(conv, x: SparseTensor, grad: torch.Tensor):
    """fwd+bwd of ``conv`` on ``x`` (maps cached in x's cache), input and weight gradients."""
    feats = x.feats.detach().requires_grad_()
    xin = x.replace(feats)

    def run():
        conv.weight.grad = None
        feats.grad = None
        conv(xin).feats.backward(grad)

    return run


def fwd_only(conv, x: SparseTensor):
    def run():
        with torch.no_grad():
            conv(x)

    return run


def fwd_bwd_amp(conv, x: SparseTensor, grad: torch.Tensor, dtype: torch.dtype):
    """fwd+bwd of ``conv`` under ``torch.autocast`` with ``dtype`` (float32 weights and input)."""
    feats = x.feats.detach().requires_grad_()
    xin = x.replace(feats)
    g = grad.to(dtype)

    def run():
        conv.weight.grad = None
        feats.grad = None
        with torch.autocast(DEVICE.type, dtype=dtype):
            y = conv(xin).feats
        y.backward(g)

    return run


def spconv_cuda_missing() -> str | None:
    """Why spconv's CUDA convolution cannot be the baseline here, or None when it can."""
    try:
        import spconv
        from spconv.core_cc.cumm.common import CompileInfo
    except Exception as e:
        return (
            f"spconv not installed ({type(e).__name__}): pip install spconv-cu120 (the build for your CUDA)"
        )
    if tuple(CompileInfo.get_compiled_cuda_version()) == (-1, -1):
        return f"spconv {spconv.__version__} is its CPU-only build: pip install spconv-cu120 (the build for your CUDA)"
    return None


def cuda_missing() -> str | None:
    """Why ``--device cuda`` cannot run here, or None when it can."""
    if torch.cuda.is_available():
        return None
    built = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    return f"torch {torch.__version__} ({built}) sees no CUDA device"


def spconv_subm_fwd_bwd(coords: torch.Tensor, feats: torch.Tensor, weight: torch.Tensor, grad, dtype):
    """spconv's SubMConv3d fwd+bwd (CUDA build) on the same voxels and weights, or None."""
    if DEVICE.type != "cuda" or spconv_cuda_missing():
        return None
    import spconv.pytorch as spc

    c_in, c_out = weight.shape[1], weight.shape[2]
    conv = spc.SubMConv3d(c_in, c_out, 3, bias=False, indice_key="bench").to(DEVICE, dtype)
    with torch.no_grad():  # spconv's layout [C_out, 3, 3, 3, C_in]; ours [27, C_in, C_out]
        conv.weight.copy_(weight.reshape(3, 3, 3, c_in, c_out).permute(4, 0, 1, 2, 3).to(dtype))
    idx = coords.int().contiguous()
    shape = (idx[:, 1:].max(0).values + 1).tolist()
    f = feats.to(dtype).detach().requires_grad_()
    g = grad.to(dtype)

    def run():
        conv.weight.grad = None
        f.grad = None
        x = spc.SparseConvTensor(f, idx, shape, 1)
        conv(x).features.backward(g)

    return run


def run_room(bench: Bench, name: str, coords: torch.Tensor, repeat: int, label_size: str) -> None:
    t = torch.get_num_threads()
    torch.manual_seed(0)
    coords = coords.to(DEVICE)
    M = len(coords)
    perm = torch.randperm(M, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    feats = torch.randn(M, 32).to(DEVICE)
    x = SparseTensor(coords, feats)
    xp = SparseTensor(coords[perm], feats[perm])
    subm = SubMConv3d(32, 32, 3).to(DEVICE)
    down = SparseConv3d(32, 64, 2, 2).to(DEVICE)
    up = SparseInverseConv3d(64, 32, 2, 2).to(DEVICE)
    w = subm.weight.detach()
    kmap = x.cache.subm_map(1, 3)
    xp.cache.subm_map(1, 3)
    pairs = _pairs(kmap.nbr, M)
    n_pairs = sum(len(i) for i, _ in pairs)
    flops_fwd = 2.0 * n_pairs * 32 * 32
    grad = torch.randn(M, 32).to(DEVICE)
    tag = f"{name}/t{t}" if DEVICE.type == "cpu" else f"{name}/{DEVICE.type}"
    where = f"{label_size} room, " + (
        f"{t} thread{'s' if t > 1 else ''}" if DEVICE.type == "cpu" else str(DEVICE)
    )
    groups = kmap.plane_groups
    multiplied = groups.entries if groups is not None else M * kmap.volume
    bench.info.setdefault("rooms", {})[name] = {
        "voxels": M,
        "neighbours_per_voxel": n_pairs / M - 1.0,
        "useful_pairs_subm3": n_pairs,
        "multiplied_pairs_subm3": multiplied,
        "full_table_pairs_subm3": M * kmap.volume,
        "face_groups": None if groups is None else len(groups.groups),
    }
    if t == 1 or DEVICE.type != "cpu":  # a property of the voxels, the same at any thread count
        bench.figure(
            f"{name}/subm_multiplied_pairs",
            multiplied,
            "pairs",
            baseline=n_pairs,
            baseline_label="useful (active) pairs",
            limit=1.0,
            label=f"submanifold 3³: (row, offset) pairs multiplied per useful pair, {label_size} room "
            f"(full table: {M * kmap.volume / n_pairs:.2f}x)",
            readme=True,
        )

    # -- submanifold fwd+bwd
    g = bench.time(
        synced(
            {
                "gemm": gemm_limit(pairs, feats, w, grad, True),
                **bounds(pairs, w, True),
                "ours": fwd_bwd(subm, x, grad),
                "ours_permuted": fwd_bwd(subm, xp, grad[perm]),
            }
        ),
        repeat,
        group=f"{tag} subm fwd+bwd",
    )
    for row in ("ours", "ours_permuted"):
        bench.figure(
            f"{tag}/subm_fwdbwd/{row}_vs_bound",
            g[row],
            baseline=bound_of(g),
            baseline_label="in-cache GEMM bound",
            limit=1.0,
            label=f"subm 3^3 32->32 fwd+bwd ({row.replace('_', ' ')}) vs in-cache bound, {where}",
        )
    bench.figure(
        f"{tag}/subm_fwdbwd",
        g["ours"],
        baseline=g["gemm"],
        baseline_label="GEMM limit",
        target=1.3 if name == "large" else 1.5,
        label=f"submanifold conv 3³ 32→32 fwd+bwd, {where}",
        readme=True,
        useful_gflops=round(3 * flops_fwd / g["ours"].median / 1e9, 2),
    )
    bench.figure(
        f"{tag}/subm_fwdbwd_permuted",
        g["ours_permuted"],
        baseline=g["gemm"],
        baseline_label="GEMM limit",
        target=1.3 if name == "large" else 1.5,
        label=f"same, voxels in random order, {where}",
        readme=True,
        useful_gflops=round(3 * flops_fwd / g["ours_permuted"].median / 1e9, 2),
    )
    bench.figure(
        f"{tag}/subm_fwdbwd_permuted_vs_sorted",
        g["ours_permuted"],
        baseline=g["ours"],
        baseline_label="sorted rows",
        target=1.1,
        label=f"subm fwd+bwd, random row order vs sorted, {where}",
        readme=True,
    )

    # -- submanifold forward
    g = bench.time(
        synced(
            {
                "gemm": gemm_limit(pairs, feats, w, grad, False),
                **bounds(pairs, w, False),
                "ours": fwd_only(subm, x),
                "ours_permuted": fwd_only(subm, xp),
            }
        ),
        repeat,
        group=f"{tag} subm fwd",
    )
    for row in ("ours", "ours_permuted"):
        bench.figure(
            f"{tag}/subm_fwd/{row}_vs_bound",
            g[row],
            baseline=bound_of(g),
            baseline_label="in-cache GEMM bound",
            limit=1.0,
            label=f"subm 3^3 32->32 fwd ({row.replace('_', ' ')}) vs in-cache bound, {where}",
        )
        bench.figure(
            f"{tag}/subm_fwd/{row}",
            g[row],
            baseline=g["gemm"],
            baseline_label="GEMM limit",
            label=f"subm 3^3 32->32 fwd ({row.replace('_', ' ')}), {where}",
            useful_gflops=round(flops_fwd / g[row].median / 1e9, 2),
        )

    # -- strided 2^3 32->64 and transposed 64->32, fwd+bwd
    dmap = x.cache.down_map(1, 2, 2)
    xp.cache.down_map(1, 2, 2)
    dpairs = _pairs(dmap.nbr, M)  # (fine rows, coarse rows)
    wd = down.weight.detach()
    dgrad = torch.randn(dmap.n_out, 64).to(DEVICE)
    y = SparseTensor(dmap.out_coords, torch.randn(dmap.n_out, 64).to(DEVICE), stride=2, spatial_cache=x.cache)
    yp_coords = xp.cache.get(("coords", 2))
    y_p = SparseTensor(
        yp_coords, torch.randn(len(yp_coords), 64).to(DEVICE), stride=2, spatial_cache=xp.cache
    )
    upairs = [(o, i) for i, o in dpairs]  # (coarse rows, fine rows)
    wu = up.weight.detach()
    ugrad = torch.randn(M, 32).to(DEVICE)
    flops_down = 2.0 * sum(len(i) for i, _ in dpairs) * 32 * 64
    g = bench.time(
        synced(
            {
                "gemm_down": gemm_limit(dpairs, feats, wd, dgrad, True),
                **bounds(dpairs, wd, True, "bound_down"),
                "down": fwd_bwd(down, x, dgrad),
                "down_permuted": fwd_bwd(down, xp, dgrad),
                "gemm_up": gemm_limit(upairs, y.feats, wu, ugrad, True),
                **bounds(upairs, wu, True, "bound_up"),
                "up": fwd_bwd(up, y, ugrad),
                "up_permuted": fwd_bwd(up, y_p, ugrad[perm]),
            }
        ),
        repeat,
        group=f"{tag} strided+transposed fwd+bwd",
    )
    for kind, title in (("down", "strided 2³ 32→64"), ("up", "transposed 2³ 64→32")):
        for row in (kind, f"{kind}_permuted"):
            bench.figure(
                f"{tag}/{row}_fwdbwd_vs_bound",
                g[row],
                baseline=bound_of(g, f"bound_{kind}"),
                baseline_label="in-cache GEMM bound",
                limit=1.0,
                label=f"{title} fwd+bwd ({row.replace('_', ' ')}) vs in-cache bound, {where}",
            )
        bench.figure(
            f"{tag}/{kind}_fwdbwd",
            g[kind],
            baseline=g[f"gemm_{kind}"],
            baseline_label="GEMM limit",
            target=2.0,
            label=f"{title} fwd+bwd, {where}",
            readme=True,
            useful_gflops=round(3 * flops_down / g[kind].median / 1e9, 2),
        )
        bench.figure(
            f"{tag}/{kind}_fwdbwd_permuted",
            g[f"{kind}_permuted"],
            baseline=g[f"gemm_{kind}"],
            baseline_label="GEMM limit",
            target=2.0,
            label=f"{title} fwd+bwd, random row order, {where}",
        )

    if "bf16" in DTYPES:
        sub = (subm, x, grad, pairs, flops_fwd)
        _reduced_rows(bench, tag, where, name, repeat, sub, (down, up, y, dpairs, dgrad, ugrad))
    sp_rows = {}
    for dt in (torch.float32, *((torch.float16,) if "bf16" in DTYPES else ())):
        fn = spconv_subm_fwd_bwd(coords, feats, w, grad, dt)
        if fn is not None:
            sp_rows[f"spconv_{str(dt)[6:]}"] = fn
    if sp_rows:  # spconv's CUDA convolution against ours on the same voxels
        amp = {"ours_bf16": fwd_bwd_amp(subm, x, grad, torch.bfloat16)} if "bf16" in DTYPES else {}
        g = bench.time(
            synced({"ours": fwd_bwd(subm, x, grad), **amp, **sp_rows}), repeat, group=f"{tag} vs spconv cuda"
        )
        for row, base in (("ours", "spconv_float32"), ("ours_bf16", "spconv_float16")):
            if row in g and base in g:
                bench.figure(
                    f"{tag}/subm_fwdbwd_{row}_vs_{base}",
                    g[row],
                    baseline=g[base],
                    baseline_label=base.replace("_", " "),
                    label=f"submanifold conv 3³ 32→32 fwd+bwd ({row.replace('_', ' ')}) vs {base}, {where}",
                    readme=name == "large",
                )

    # -- kernel maps (fresh caches: coordinate index + map)
    def build_subm(c):
        def run():
            cache = KernelMapCache(1)
            cache.register_coords(1, c)
            cache.subm_map(1, 3)

        return run

    def build_down(c):
        def run():
            cache = KernelMapCache(1)
            cache.register_coords(1, c)
            cache.down_map(1, 2, 2)

        return run

    rows = {
        "map_subm": build_subm(coords),
        "map_subm_permuted": build_subm(coords[perm]),
        "map_down": build_down(coords),
    }
    rows = synced(rows)
    sp = spconv_map_fn(coords)
    if sp is not None:
        rows["spconv_map_subm_1t"] = with_threads(sp, 1)
        if t > 1:
            rows["spconv_map_subm"] = sp
    g = bench.time(rows, repeat, group=f"{tag} kernel maps")
    if sp is not None:
        best = (
            "spconv_map_subm"
            if t > 1 and g["spconv_map_subm"].median < g["spconv_map_subm_1t"].median
            else "spconv_map_subm_1t"
        )
        for row in ("map_subm", "map_subm_permuted"):
            bench.figure(
                f"{tag}/{row}",
                g[row],
                baseline=g[best],
                baseline_label=f"spconv {2 if best == 'spconv_map_subm' else 1} thr",
                label=f"kernel map subm 3³{' (random row order)' if 'perm' in row else ''}, {where}",
                readme=name == "large" and row == "map_subm",
            )
        bench.figure(
            f"{tag}/spconv_map_subm_1t",
            g["spconv_map_subm_1t"],
            label=f"spconv kernel map subm, 1 thread, {label_size} room",
        )
    else:
        bench.figure(
            f"{tag}/map_subm",
            g["map_subm"],
            label=f"kernel map subm 3³, {where}",
            note="spconv not installed",
        )
        bench.figure(
            f"{tag}/map_subm_permuted", g["map_subm_permuted"], baseline=g["map_subm"], baseline_label="sorted",
            label=f"kernel map subm 3³, random row order, {where}",
        )  # fmt: skip
    bench.figure(f"{tag}/map_down", g["map_down"], label=f"kernel map down 2³ s2, {where}")


def _reduced_rows(
    bench: Bench, tag: str, where: str, name: str, repeat: int, sub: tuple, strided: tuple
) -> None:
    """bf16 autocast rows: ours in bf16 vs ours in float32 (same group), vs the bf16 GEMM limit
    and the bf16 in-cache bound (the physical limit)."""
    subm, x, grad, pairs, flops_fwd = sub
    down, up, y, dpairs, dgrad, ugrad = strided
    bf = torch.bfloat16
    w = subm.weight.detach()
    upairs = [(o, i) for i, o in dpairs]
    g = bench.time(
        synced(
            {
                "ours": fwd_bwd(subm, x, grad),
                "ours_bf16": fwd_bwd_amp(subm, x, grad, bf),
                "gemm_bf16": gemm_limit(pairs, x.feats.to(bf), w.to(bf), grad.to(bf), True),
                **bounds(pairs, w.to(bf), True, "bound_bf16"),
                "down": fwd_bwd(down, x, dgrad),
                "down_bf16": fwd_bwd_amp(down, x, dgrad, bf),
                "up": fwd_bwd(up, y, ugrad),
                "up_bf16": fwd_bwd_amp(up, y, ugrad, bf),
                "gemm_up_bf16": gemm_limit(
                    upairs, y.feats.to(bf), up.weight.detach().to(bf), ugrad.to(bf), True
                ),
            }
        ),
        repeat,
        group=f"{tag} bf16 autocast fwd+bwd",
    )
    bench.figure(
        f"{tag}/subm_fwdbwd_bf16_vs_fp32",
        g["ours_bf16"],
        baseline=g["ours"],
        baseline_label="ours float32",
        label=f"submanifold conv 3³ 32→32 fwd+bwd, bf16 autocast vs float32, {where}",
        readme=True,
        useful_gflops=round(3 * flops_fwd / g["ours_bf16"].median / 1e9, 2),
    )
    bench.figure(
        f"{tag}/subm_fwdbwd_bf16",
        g["ours_bf16"],
        baseline=g["gemm_bf16"],
        baseline_label="bf16 GEMM limit",
        label=f"submanifold conv 3³ fwd+bwd in bf16 vs the bf16 GEMM limit, {where}",
    )
    bench.figure(
        f"{tag}/subm_fwdbwd_bf16_vs_bound",
        g["ours_bf16"],
        baseline=bound_of(g, "bound_bf16"),
        baseline_label="bf16 in-cache GEMM bound",
        limit=1.0,
        label=f"subm 3^3 fwd+bwd in bf16 vs the bf16 in-cache bound, {where}",
    )
    for kind, title in (("down", "strided 2³ 32→64"), ("up", "transposed 2³ 64→32")):
        bench.figure(
            f"{tag}/{kind}_fwdbwd_bf16_vs_fp32",
            g[f"{kind}_bf16"],
            baseline=g[kind],
            baseline_label="ours float32",
            label=f"{title} fwd+bwd, bf16 autocast vs float32, {where}",
            readme=name == "large",
        )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(ap)
    ap.add_argument("--threads", default="1,2", help="comma-separated torch thread counts (default 1,2)")
    ap.add_argument("--repeat", type=int, default=None, help="interleaved rounds (default 7, quick 2)")
    ap.add_argument("--rooms", default="large,small", help="which rooms (large, small)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/engine.json)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda (cuda:N)")
    ap.add_argument("--dtypes", default="32,bf16", help="32 and/or bf16 rows (default both)")
    args = ap.parse_args(argv)
    repeat = args.repeat or (2 if args.quick else 7)
    global DEVICE, DTYPES
    DEVICE = torch.device(args.device)
    DTYPES = {d.strip() for d in args.dtypes.split(",")}
    if DEVICE.type == "cuda" and cuda_missing():
        # skipped, not failed: a benchmark script run on every machine must not stop here
        print(f"bench_engine --device {args.device}: skipped: {cuda_missing()}; nothing written")
        return None
    bench = Bench(
        "engine" if DEVICE.type == "cpu" else f"engine-{DEVICE.type}",
        "sparse convolutions vs the per-offset GEMM limit and an in-cache bound, sorted and permuted rows",
        quick=args.quick,
        strict=args.strict,
        out=args.out,
    )
    inputs = rooms()
    sizes = {n: f"{len(c) / 1000:.0f}k-voxel" for n, c in inputs.items()}
    for t in [int(v) for v in args.threads.split(",")]:
        torch.set_num_threads(t)
        for name in args.rooms.split(","):
            run_room(bench, name, inputs[name], repeat, sizes[name])
    bench.info["repeat"] = repeat
    bench.info["device"] = str(DEVICE) if DEVICE.type == "cpu" else torch.cuda.get_device_name(DEVICE)
    bench.info["dtypes"] = sorted(DTYPES)
    if DEVICE.type == "cuda":
        bench.info["spconv_cuda"] = spconv_cuda_missing() or "measured"
        if spconv_cuda_missing():
            print(f"spconv rows skipped: {spconv_cuda_missing()}")
    bench.print_table()
    bench.write()


if __name__ == "__main__":
    main()
