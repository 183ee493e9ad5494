"""Benchmark: one UNet m16 training step on the large procedural room, ours vs the others.

Run from the repository root::

    python benchmarks/bench_unet.py            # 1 and 2 threads, 5 interleaved rounds
    python benchmarks/bench_unet.py --quick    # 2 rounds, 1 thread, a smoke run

The step: a fresh :class:`SparseTensor` (kernel maps built inside the step, as in training),
the SparseConvNet-style UNet (m=16, 5 levels, one block per level) plus a linear 20-class
head, cross-entropy against fixed random labels, backward, one SGD step. Rows timed
interleaved in one process:

* **ours**: the built-in torch backend, voxels in the voxelizer's sorted order;
* **ours, permuted rows**: the same voxels in a random order;
* **spconv**: the SAME model on the spconv backend (the spconv adapter: spconv's kernel maps
  and convolutions, on one thread because its CPU convolutions race with more; batch norm and
  the rest on the run's threads). Same weights and inputs, so the first step's loss must
  agree with ours (checked);
* **SparseConvNet**: its own ``scn.UNet`` with the same planes when ``import sparseconvnet``
  works; otherwise the row is skipped with the reason (it is not on PyPI; the row's code
  follows SparseConvNet's ScanNet example and has not been run where it is missing).

Peak memory: each model in a fresh process (``--peak`` child): the peak resident set size
during its first two training steps minus the RSS just before them (Linux ``VmHWM`` after
a ``/proc/self/clear_refs`` reset; counts torch's allocations, which ``tracemalloc`` does
not see), with glibc's mmap threshold fixed at 64 KB so that freed blocks leave the RSS. Target (issue 17): ours >= 2x faster than SparseConvNet's UNet
with peak memory no higher. Writes ``benchmarks/results/unet.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_engine import rooms
from harness import Bench, add_common_args, peak_rss_delta_mb

CLASSES = 20
M_PLANES = 16
LEVELS = 5


def scn_available() -> tuple[bool, str]:
    try:
        import sparseconvnet  # noqa: F401
    except Exception as e:
        return False, f"import sparseconvnet failed ({type(e).__name__}: {e}); it is not on PyPI"
    return True, ""


def spconv_available() -> tuple[bool, str]:
    from fastai_sparse.engine import SpconvBackend

    b = SpconvBackend()
    return (True, "") if b.available() else (False, b.why_unavailable())


def inputs(room: str, permuted: bool):
    coords = rooms()[room]
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(len(coords), 3, generator=g)
    labels = torch.randint(0, CLASSES, (len(coords),), generator=g)
    if permuted:
        p = torch.randperm(len(coords), generator=torch.Generator().manual_seed(1))
        coords, feats, labels = coords[p], feats[p], labels[p]
    return coords, feats, labels


def our_step(backend: str, room: str, permuted: bool = False):
    """(step function, first loss) of our UNet + linear head on ``backend``."""
    from fastai_sparse.engine import SparseLinear, SparseTensor
    from fastai_sparse.models import UNet

    coords, feats, labels = inputs(room, permuted)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        UNet(3, m=M_PLANES, levels=LEVELS, backend=backend), SparseLinear(M_PLANES, CLASSES)
    )
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        out = net(SparseTensor(coords, feats, batch_size=1))  # fresh cache: maps included
        loss = loss_fn(out.feats, labels)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def scn_step(room: str):
    """SparseConvNet's own UNet (same planes, reps 1, no residual blocks) + linear head."""
    import sparseconvnet as scn

    coords, feats, labels = inputs(room, False)
    full = 1 << int(coords[:, 1:].max()).bit_length()  # a power of two: 4 halvings line up
    torch.manual_seed(0)
    net = scn.Sequential(
        scn.InputLayer(3, full, mode=4),
        scn.SubmanifoldConvolution(3, 3, M_PLANES, 3, False),
        scn.UNet(3, 1, [M_PLANES * (i + 1) for i in range(LEVELS)], residual_blocks=False, downsample=[2, 2]),
        scn.BatchNormReLU(M_PLANES),
        scn.OutputLayer(3),
    )
    head = torch.nn.Linear(M_PLANES, CLASSES)
    params = list(net.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    loc = torch.cat([coords[:, 1:].long(), coords[:, :1].long()], dim=1)  # SCN: (x, y, z, batch)

    def step():
        opt.zero_grad()
        loss = loss_fn(head(net([loc, feats])), labels)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def make_step(row: str, room: str):
    if row == "ours":
        return our_step("torch", room)
    if row == "ours_permuted":
        return our_step("torch", room, permuted=True)
    if row == "spconv":
        return our_step("spconv", room)
    if row == "scn":
        return scn_step(room)
    raise ValueError(row)


def peak_memory(row: str, room: str, threads: int) -> dict:
    """Peak RSS of one training step of ``row``, measured in a fresh process."""
    cmd = [sys.executable, __file__, "--peak", row, "--room", room, "--threads", str(threads)]
    # a fixed mmap threshold: glibc then returns every large block to the OS when it is
    # freed, so the RSS follows the live memory instead of what earlier steps left cached
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 16)}
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=True, env=env)
        return json.loads(res.stdout.strip().splitlines()[-1])
    except subprocess.CalledProcessError as e:
        return {"error": (e.stderr or "").strip().splitlines()[-1:]}
    except Exception as e:
        return {"error": repr(e)}


def _peak_child(row: str, room: str) -> None:
    step = make_step(row, room)

    def two_steps():  # the second step also holds the optimizer's momentum buffers
        step()
        step()

    print(json.dumps(peak_rss_delta_mb(two_steps)))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(ap)
    ap.add_argument(
        "--threads", default=None, help="comma-separated torch thread counts (default 1,2; quick 1)"
    )
    ap.add_argument("--repeat", type=int, default=None, help="interleaved rounds (default 5, quick 2)")
    ap.add_argument("--room", default="large", choices=("large", "small"))
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/unet.json)")
    ap.add_argument("--peak", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.peak:
        torch.set_num_threads(int((args.threads or "1").split(",")[0]))
        _peak_child(args.peak, args.room)
        return
    threads = [int(t) for t in (args.threads or ("1" if args.quick else "1,2")).split(",")]
    repeat = args.repeat or (2 if args.quick else 5)
    bench = Bench(
        "unet",
        f"UNet m{M_PLANES} ({LEVELS} levels) training step incl. kernel maps on the {args.room} room: "
        "ours vs spconv (same model) and SparseConvNet's UNet",
        quick=args.quick,
        strict=args.strict,
        out=args.out,
    )
    voxels = len(rooms()[args.room])
    bench.info.update(room=args.room, voxels=voxels, classes=CLASSES, m=M_PLANES, levels=LEVELS)
    rows = ["ours", "ours_permuted"]
    ok, why = spconv_available()
    if ok:
        rows.append("spconv")
    else:
        bench.info["spconv_skipped"] = why
    ok, why = scn_available()
    if ok:
        rows.append("scn")
    else:
        bench.info["scn_skipped"] = why
        print(f"SparseConvNet row skipped: {why}")
    size = f"{voxels / 1000:.0f}k-voxel room"
    for t in threads:
        torch.set_num_threads(t)
        steps = {r: make_step(r, args.room) for r in rows}
        first = {r: steps[r]() for r in rows}  # also the warm-up
        bench.info.setdefault("first_loss", {})[f"t{t}"] = first
        if "spconv" in first and abs(first["spconv"] - first["ours"]) > 1e-4 * abs(first["ours"]):
            raise SystemExit(f"spconv and ours disagree on the first loss: {first}")
        g = bench.time(steps, repeat, warmup=0, group=f"unet step t{t}")
        where = f"{size}, {t} thread{'s' if t > 1 else ''}"
        bench.figure(
            f"t{t}/ours",
            g["ours"],
            baseline=g.get("spconv"),
            baseline_label="spconv backend, same model",
            label=f"UNet m16 training step, {where}",
            readme=True,
        )
        bench.figure(
            f"t{t}/ours_permuted",
            g["ours_permuted"],
            baseline=g["ours"],
            baseline_label="sorted rows",
            target=1.1,
            label=f"same, voxels in random order, {where}",
        )
        if "spconv" in g:
            bench.figure(f"t{t}/spconv", g["spconv"], label=f"spconv backend UNet step, {where}")
        if "scn" in g:
            bench.figure(
                f"t{t}/ours_vs_scn",
                g["ours"],
                baseline=g["scn"],
                baseline_label="SparseConvNet UNet",
                target=0.5,
                label=f"UNet m16 training step vs SparseConvNet, {where}",
                readme=True,
            )
        del steps
    if not args.no_memory:
        t = threads[-1]
        mem = {r: peak_memory(r, args.room, t) for r in rows}
        bench.info["peak_memory"] = {
            "threads": t,
            "method": "fresh process per model; VmHWM during its first two training steps minus VmRSS "
            "before them, glibc MALLOC_MMAP_THRESHOLD_=65536",
            **mem,
        }
        base = mem.get("scn") or mem.get("spconv") or {}
        ours = mem["ours"].get("peak_rss_delta_mb")
        if ours is not None:
            b = base.get("peak_rss_delta_mb")
            bench.figure(
                "peak_memory_ours",
                ours,
                "MB",
                baseline=b,
                baseline_label="SparseConvNet" if "scn" in mem else "spconv backend",
                target=1.0 if "scn" in mem else None,
                label=f"UNet m16 step peak memory (RSS above the start of the step), {size}",
                readme=True,
                method=mem["ours"].get("method"),
            )
        for r, m in mem.items():
            if r != "ours" and m.get("peak_rss_delta_mb") is not None:
                bench.figure(f"peak_memory_{r}", m["peak_rss_delta_mb"], "MB", label=f"peak memory, {r}")
    bench.print_table()
    bench.write()


if __name__ == "__main__":
    main()
