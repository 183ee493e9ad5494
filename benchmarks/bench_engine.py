"""Benchmark of the sparse convolution engine on two procedural ScanNet-like rooms.

Run from the repository root::

    python benchmarks/bench_engine.py            # full run, ~ a few minutes
    python benchmarks/bench_engine.py --quick    # fewer repeats

Every figure is printed next to a baseline measured in the same run (the ratio):

* GEMM limit: for each kernel offset, ``torch.mm`` of the rows that offset touches,
  pre-gathered and contiguous (forward: ``A_k @ W_k``; forward+backward adds
  ``G_k @ W_k^T`` and ``A_k^T @ G_k``). Gathering, scattering and the kernel map are free.
  A second, stricter variant writes into preallocated outputs (``out=``), which removes
  allocation and page-fault costs from the baseline.
* spconv (when installed) on CPU with 1 torch thread (with 2 threads spconv 2.3.x returns
  wrong rows); its kernel-map build time and its convolution time.

Runs with ``torch.set_num_threads(2)`` (override with ``--threads``), prints a table and
writes ``benchmarks/results/engine.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "core" / "src"))

from fastai_sparse.engine import SparseTensor
from fastai_sparse.engine.functional import down_conv, subm_conv
from fastai_sparse.engine.tensor import KernelMapCache
from fastai_sparse.models import UNet


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
    """Coords int32 [M, 4] of a room: floor, walls and furniture surfaces, 2 voxels thick.

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


def rooms():
    large = make_room((8.0, 8.0, 3.0), furniture=60, seed=0)
    small = make_room((3.0, 3.0, 2.4), walls=2, furniture=4, seed=1)
    return {"large": large, "small": small}


# ----------------------------------------------------------------------------- timing
def timeit(fn, repeat, warmup=1):
    """Best of ``repeat`` wall-clock runs in ms (the machine may be shared: min, not median)."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts) * 1e3


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return _status_mb("VmHWM")


def rss_mb() -> float:
    return _status_mb("VmRSS")


def gemm_limit(nbr, feats, weight, grad, backward, prealloc):
    """Per-offset torch.mm on pre-gathered contiguous rows (kernel maps etc. for free)."""
    A, G, outs = [], [], []
    for k in range(weight.shape[0]):
        mask = nbr[k] < feats.shape[0]
        rows = nbr[k][mask].long()
        A.append(feats[rows].contiguous())
        G.append(grad[mask].contiguous() if backward else None)
        outs.append(torch.empty(len(rows), weight.shape[2]) if prealloc else None)
    gw = torch.empty_like(weight[0])
    gi = [torch.empty(len(a), weight.shape[1]) for a in A] if prealloc and backward else None
    wt = weight.transpose(1, 2).contiguous()

    def run():
        for k in range(len(A)):
            if prealloc:
                torch.mm(A[k], weight[k], out=outs[k])
                if backward:
                    torch.mm(G[k], wt[k], out=gi[k])
                    torch.mm(A[k].t(), G[k], out=gw)
            else:
                torch.mm(A[k], weight[k])
                if backward:
                    torch.mm(G[k], wt[k])
                    torch.mm(A[k].t(), G[k])

    return run


def spconv_available():
    try:
        import spconv.pytorch  # noqa: F401

        return True
    except Exception:
        return False


def bench_spconv(coords, feats, weight, repeat):
    """spconv kernel-map build (subm 3x3x3) and SubMConv forward, 1 torch thread."""
    import spconv.pytorch as spc
    from spconv.pytorch import ops

    res = {}
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        c = coords.int()
        idx = c.contiguous()
        shape = (c[:, 1:].max(0).values + 1).tolist()
        algo = spc.ConvAlgo.Native

        def build():
            ops.get_indice_pairs(idx, 1, shape, algo, [3, 3, 3], [1] * 3, [1] * 3, [1] * 3, [0] * 3, True)

        res["map_subm_ms"] = timeit(build, repeat)
        if old != 1:
            torch.set_num_threads(old)
            res["map_subm_nthreads_ms"] = timeit(build, repeat)
            torch.set_num_threads(1)
        res["map_subm_best_ms"] = min(res["map_subm_ms"], res.get("map_subm_nthreads_ms", 1e30))
        conv = spc.SubMConv3d(32, 32, 3, bias=False, algo=algo)
        with torch.no_grad():
            conv.weight.copy_(weight.reshape(3, 3, 3, 32, 32).permute(4, 0, 1, 2, 3))

        def fwd():
            t = spc.SparseConvTensor(feats, idx, shape, 1)
            with torch.no_grad():
                conv(t)

        res["subm_fwd_incl_map_ms"] = timeit(fwd, repeat)
    finally:
        torch.set_num_threads(old)
    return res


def unet_step_fn(coords):
    """One UNet (m=16, 5 levels) SGD step on ``coords``, kernel maps included."""
    torch.manual_seed(0)
    net = UNet(3, m=16, levels=5)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    f3 = torch.randn(len(coords), 3)

    def step():
        opt.zero_grad()
        y = net(SparseTensor(coords, f3, batch_size=1))  # fresh cache: maps included
        y.feats.square().mean().backward()
        opt.step()

    return step


def unet_peak_memory(name: str, threads: int) -> dict:
    """Peak RSS of UNet training steps, measured in a fresh process (MB above its baseline)."""
    cmd = [sys.executable, __file__, "--unet-peak", name, "--threads", str(threads)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=True)
        return json.loads(res.stdout.strip().splitlines()[-1])
    except Exception as e:
        return {"unet_peak_error": repr(e)}


def _unet_peak_child(name: str) -> None:
    coords = rooms()[name]
    step = unet_step_fn(coords)
    base = rss_mb()
    step()
    step()
    print(json.dumps({"unet_peak_rss_mb": peak_rss_mb() - base, "rss_before_mb": base}))


# ----------------------------------------------------------------------------- main
def run_room(name, coords, repeat, do_unet):
    torch.manual_seed(0)
    M = len(coords)
    row = {"name": name, "voxels": M}
    feats = torch.randn(M, 32)
    w = torch.randn(27, 32, 32) * 0.05
    w_down = torch.randn(8, 32, 64) * 0.05

    def build_subm():
        cache = KernelMapCache(1)
        cache.register_coords(1, coords)
        return cache.subm_map(1, 3)

    def build_down():
        cache = KernelMapCache(1)
        cache.register_coords(1, coords)
        return cache.down_map(1, 2, 2)

    row["map_subm_ms"] = timeit(build_subm, repeat)
    row["map_down_ms"] = timeit(build_down, repeat)
    x = SparseTensor(coords, feats)
    kmap = x.cache.subm_map(1, 3)
    dmap = x.cache.down_map(1, 2, 2)
    counts = kmap.counts
    row["neighbours_per_voxel"] = float(counts.sum()) / M - 1.0
    grad = torch.randn(M, 32)

    for pre in (False, True):
        tag = "_prealloc" if pre else ""
        row["gemm_fwd" + tag + "_ms"] = timeit(gemm_limit(kmap.nbr, feats, w, grad, False, pre), repeat)
        row["gemm_fwdbwd" + tag + "_ms"] = timeit(gemm_limit(kmap.nbr, feats, w, grad, True, pre), repeat)

    row["subm_fwd_ms"] = timeit(lambda: subm_conv(feats, w, kmap), repeat)
    fr = feats.clone().requires_grad_()
    wr = w.clone().requires_grad_()

    def subm_fb():
        subm_conv(fr, wr, kmap).backward(grad)

    row["subm_fwdbwd_ms"] = timeit(subm_fb, repeat)

    dnbr = dmap.nbr
    dgrad = torch.randn(dmap.n_out, 64)
    row["gemm_down_fwd_ms"] = timeit(gemm_limit(dnbr, feats, w_down, dgrad, False, False), repeat)
    row["gemm_down_fwdbwd_ms"] = timeit(gemm_limit(dnbr, feats, w_down, dgrad, True, False), repeat)
    row["down_fwd_ms"] = timeit(lambda: down_conv(feats, w_down, dmap), repeat)
    wd = w_down.clone().requires_grad_()
    row["down_fwdbwd_ms"] = timeit(lambda: down_conv(fr, wd, dmap).backward(dgrad), repeat)

    if spconv_available():
        try:
            row["spconv"] = bench_spconv(coords, feats, w, repeat)
        except Exception as e:
            row["spconv"] = {"error": repr(e)}

    if do_unet:
        row["unet_step_ms"] = timeit(unet_step_fn(coords), max(1, repeat // 2))
        row.update(unet_peak_memory(row["name"], torch.get_num_threads()))
    return row


def fmt(v, base=None):
    if v is None:
        return "-"
    s = f"{v:8.1f}"
    if base:
        s += f" ({v / base:4.2f}x)"
    return s


def print_table(run: dict, repeat: int) -> None:
    t = run["threads"]
    print(f"\n######## {t} torch thread(s); times in ms, best of {repeat}")
    print(
        "ratio = figure / baseline in the same run; GEMM limit = per-offset torch.mm on "
        "pre-gathered rows (allocating its outputs); [prealloc] = the same into preallocated "
        "outputs"
    )
    for r in run["rooms"]:
        sp = r.get("spconv", {})
        print(
            f"\n== {r['name']} room: {r['voxels']} voxels, {r['neighbours_per_voxel']:.1f} neighbours/voxel"
        )
        print(f"{'figure':38s} {'ms':>8s} (vs GEMM limit)  vs [prealloc]")
        for key, label in (("fwd", "fwd"), ("fwdbwd", "fwd+bwd")):
            g, gp = r[f"gemm_{key}_ms"], r[f"gemm_{key}_prealloc_ms"]
            print(f"{'GEMM limit subm ' + label:38s} {fmt(g)}   [prealloc {gp:.1f}]")
        for key, label in (("fwd", "fwd"), ("fwdbwd", "fwd+bwd")):
            v, g, gp = r[f"subm_{key}_ms"], r[f"gemm_{key}_ms"], r[f"gemm_{key}_prealloc_ms"]
            print(f"{'subm 3^3 32->32 ' + label:38s} {fmt(v, g)}   {v / gp:4.2f}x")
        print(f"{'strided 2^3 32->64 fwd':38s} {fmt(r['down_fwd_ms'], r['gemm_down_fwd_ms'])}")
        print(f"{'strided 2^3 32->64 fwd+bwd':38s} {fmt(r['down_fwdbwd_ms'], r['gemm_down_fwdbwd_ms'])}")
        spm = sp.get("map_subm_best_ms")
        print(f"{'kernel map subm 3^3 (vs spconv)':38s} {fmt(r['map_subm_ms'], spm)}")
        print(f"{'kernel map down 2^3 s2':38s} {fmt(r['map_down_ms'])}")
        if spm:
            print(
                f"{'spconv kernel map subm 1 / n threads':38s} {sp['map_subm_ms']:8.1f} / "
                f"{sp.get('map_subm_nthreads_ms', float('nan')):.1f}"
            )
        if "subm_fwd_incl_map_ms" in sp:
            print(f"{'spconv subm fwd incl. map (1 thread)':38s} {fmt(sp['subm_fwd_incl_map_ms'])}")
        if "error" in sp:
            print(f"spconv failed: {sp['error']}")
        if "unet_step_ms" in r:
            peak = r.get("unet_peak_rss_mb", float("nan"))
            print(
                f"{'UNet m16 5 levels train step':38s} {fmt(r['unet_step_ms'])}  "
                f"peak RSS +{peak:.0f} MB (fresh process, over {r.get('rss_before_mb', 0):.0f} MB)"
            )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, skip the UNet step")
    ap.add_argument("--threads", default="2", help="comma-separated torch thread counts")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "engine.json"))
    ap.add_argument("--unet-peak", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.unet_peak:
        torch.set_num_threads(int(args.threads.split(",")[0]))
        _unet_peak_child(args.unet_peak)
        return
    repeat = 3 if args.quick else 7
    results = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "loadavg_before": os.getloadavg(),
        },
        "timing": f"wall clock, best of {repeat}",
        "runs": [],
    }
    inputs = rooms()
    for t in [int(v) for v in args.threads.split(",")]:
        torch.set_num_threads(t)
        run = {"threads": torch.get_num_threads(), "rooms": []}
        for name, coords in inputs.items():
            run["rooms"].append(run_room(name, coords, repeat, do_unet=not args.quick))
        results["runs"].append(run)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs")
    for run in results["runs"]:
        print_table(run, repeat)
    results["machine"]["loadavg_after"] = os.getloadavg()
    print(
        f"\nload average before/after: {results['machine']['loadavg_before']} / "
        f"{results['machine']['loadavg_after']} on {os.cpu_count()} CPUs (a loaded machine "
        "inflates the multi-thread figures)"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
