"""Benchmark: the ScanNet training pipeline on one CPU thread, per scene.

A ScanNet-sized scene (150k coloured points on procedural room surfaces, 8 x 8 x 3 m) held as
cached arrays goes through the SparseConvNet ScanNet training recipe:

    affine noise (I + 0.1 randn) + flip x + scale 20 + rotation about z
    -> elastic distortion (6s//50, 40s/50) -> elastic distortion (20s//50, 160s/50)   [s = 20]
    -> random placement in a 4096^3 grid + crop -> colour shift -> voxelize (mean merging)

Ours is fastai_sparse's transforms + Voxelizer. The baseline, measured in the same run
(scene by scene, alternating which side runs first), is an independent implementation of
the SparseConvNet example's recipe (scipy box-blurred noise grids +
scipy.interpolate.RegularGridInterpolator, no voxel merging). Prints a table of the median
time of every stage and writes benchmarks/results/pipeline.json (through
``benchmarks/harness.py``).

    python benchmarks/bench_pipeline.py            # 20 scenes
    python benchmarks/bench_pipeline.py --quick    # 3 scenes, smoke run
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.interpolate
import scipy.ndimage
import torch

torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Bench, Timing, add_common_args, loadavg

from fastai_sparse.geometry import PointCloud
from fastai_sparse.transforms import (
    ColorShift,
    Compose,
    ElasticDistortion,
    FitToGrid,
    RandomAffineNoise,
    RandomFlip,
    RandomRotate,
    Scale,
    sample_rng,
)
from fastai_sparse.voxelize import Voxelizer

SCALE = 20.0  # voxels per metre (5 cm)
FULL_SCALE = 4096
TARGET_MS = 40.0
TARGET_RATIO = 0.2  # of the SparseConvNet recipe measured in the same run
# CPU time of this single-threaded process (default; robust when other jobs share the machine)
# or wall-clock time (--clock wall)
_clock = time.process_time
ROOM = (8.0, 8.0, 3.0)


# -- a procedural ScanNet-sized room ---------------------------------------------------------


def make_room(n_points: int = 150_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """xyz float32 [N, 3] (metres, z up, 0..room size) and colours float32 [N, 3] in [-1, 1]
    (cached arrays, normalised as the recipe does once per scene), on the floor, four walls
    and 14 box-shaped pieces of furniture, points spread in proportion to surface area."""
    rng = np.random.default_rng(seed)
    lx, ly, lz = ROOM
    rects = [  # (origin, edge u, edge v, colour)
        ((0, 0, 0), (lx, 0, 0), (0, ly, 0), (150, 120, 90)),
        ((0, 0, 0), (lx, 0, 0), (0, 0, lz), (220, 215, 200)),
        ((0, ly, 0), (lx, 0, 0), (0, 0, lz), (210, 210, 190)),
        ((0, 0, 0), (0, ly, 0), (0, 0, lz), (200, 205, 215)),
        ((lx, 0, 0), (0, ly, 0), (0, 0, lz), (205, 200, 210)),
    ]
    for _ in range(14):
        sx, sy, sz = rng.uniform([0.4, 0.4, 0.4], [2.0, 1.2, 1.8])
        x0, y0 = rng.uniform(0.1, lx - sx - 0.1), rng.uniform(0.1, ly - sy - 0.1)
        col = tuple(rng.integers(30, 230, 3))
        o = np.array([x0, y0, 0.0])
        rects += [
            (tuple(np.add(o, (0, 0, sz))), (sx, 0, 0), (0, sy, 0), col),
            (tuple(o), (sx, 0, 0), (0, 0, sz), col),
            (tuple(np.add(o, (0, sy, 0))), (sx, 0, 0), (0, 0, sz), col),
            (tuple(o), (0, sy, 0), (0, 0, sz), col),
            (tuple(np.add(o, (sx, 0, 0))), (0, sy, 0), (0, 0, sz), col),
        ]
    areas = np.array([np.linalg.norm(np.cross(u, v)) for _, u, v, _ in rects])
    counts = rng.multinomial(n_points, areas / areas.sum())
    xyz, rgb = [], []
    for (o, u, v, col), k in zip(rects, counts):
        st = rng.random((k, 2))
        xyz.append(np.asarray(o) + st[:, :1] * np.asarray(u) + st[:, 1:] * np.asarray(v))
        rgb.append(np.clip(np.asarray(col) + rng.normal(0, 12, (k, 3)), 0, 255))
    perm = rng.permutation(n_points)
    xyz = np.concatenate(xyz)[perm].astype(np.float32)
    rgb = (np.concatenate(rgb)[perm] / 127.5 - 1).astype(np.float32)
    return xyz, rgb


# -- ours ------------------------------------------------------------------------------------


def our_stages(s: float = SCALE):
    """(name, transform) stages of the recipe; the four affine steps are fused by Compose."""
    return [
        (
            "affine+flip+scale+rotate",
            Compose([RandomAffineNoise(0.1), RandomFlip(("x",)), Scale(s), RandomRotate("z")]),
        ),
        # the recipe rounds the granularities down to whole voxels: (2, 16) and (8, 64) at s = 20
        ("elastic 1", ElasticDistortion(6 * s // 50, 40 * s / 50)),
        ("elastic 2", ElasticDistortion(20 * s // 50, 160 * s / 50)),
        ("place + crop", FitToGrid(FULL_SCALE, scale=1.0)),
        ("colour shift", ColorShift(0.1)),
    ]


def run_ours(cloud: PointCloud, stages, voxelizer: Voxelizer, rng) -> tuple[dict[str, float], object]:
    times = {}
    for name, t in stages:
        t0 = _clock()
        cloud = t(cloud, rng)
        times[name] = _clock() - t0
    t0 = _clock()
    sample = voxelizer(cloud, rng)
    times["voxelize (mean)"] = _clock() - t0
    return times, sample


# -- reference: the SparseConvNet ScanNet example's recipe, written independently ------------


def ref_elastic(x: np.ndarray, gran: float, mag: float, rng: np.random.Generator) -> np.ndarray:
    """Noise on a grid symmetric about the origin, box-blurred (3 taps, each axis, twice) with
    scipy.ndimage.convolve, sampled by RegularGridInterpolator (zero outside)."""
    kernels = [np.full(shape, 1 / 3, np.float32) for shape in ((3, 1, 1), (1, 3, 1), (1, 1, 3))]
    bb = (np.abs(x).max(0) // gran + 3).astype(np.int32)
    noise = [rng.standard_normal(bb).astype(np.float32) for _ in range(3)]
    for _ in range(2):
        for k in kernels:
            noise = [scipy.ndimage.convolve(n, k, mode="constant", cval=0) for n in noise]
    axes = [np.linspace(-(b - 1) * gran, (b - 1) * gran, b) for b in bb]
    interp = [
        scipy.interpolate.RegularGridInterpolator(axes, n, bounds_error=False, fill_value=0) for n in noise
    ]
    return x + np.hstack([f(x)[:, None] for f in interp]) * mag


def run_reference(xyz: np.ndarray, rgb: np.ndarray, rng: np.random.Generator, s: float = SCALE):
    times = {}
    t0 = _clock()
    m = np.eye(3) + rng.normal(0, 0.1, (3, 3))
    m[0][0] *= rng.integers(0, 2) * 2 - 1
    m *= s
    theta = rng.uniform(0, 2 * np.pi)
    m = m @ np.array([[np.cos(theta), np.sin(theta), 0], [-np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    a = (xyz - xyz.mean(0)) @ m  # the example centres each scene
    times["affine+flip+scale+rotate"] = _clock() - t0
    t0 = _clock()
    a = ref_elastic(a, 6 * s // 50, 40 * s / 50, rng)
    times["elastic 1"] = _clock() - t0
    t0 = _clock()
    a = ref_elastic(a, 20 * s // 50, 160 * s / 50, rng)
    times["elastic 2"] = _clock() - t0
    t0 = _clock()
    lo, hi = a.min(0), a.max(0)
    offset = -lo + np.clip(FULL_SCALE - hi + lo - 0.001, 0, None) * rng.random(3)
    offset += np.clip(FULL_SCALE - hi + lo + 0.001, None, 0) * rng.random(3)
    a += offset
    keep = (a.min(1) >= 0) & (a.max(1) < FULL_SCALE)
    a = a[keep]
    times["place + crop"] = _clock() - t0
    t0 = _clock()
    b = rgb[keep] + rng.normal(0, 0.1, 3)
    times["colour shift"] = _clock() - t0
    t0 = _clock()
    coords = torch.from_numpy(a).long()  # integer coordinates; no merging of duplicates
    feats = torch.from_numpy(b.astype(np.float32))
    times["voxelize (mean)"] = _clock() - t0
    return times, (coords, feats)


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(ap)
    ap.add_argument("--scenes", type=int, default=None, help="scenes to time (default 20, quick 3)")
    ap.add_argument("--points", type=int, default=150_000)
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="process CPU time or wall time")
    ap.add_argument(
        "--out", type=Path, default=None, help="JSON path (default benchmarks/results/pipeline.json)"
    )
    args = ap.parse_args(argv)
    global _clock
    _clock = time.process_time if args.clock == "cpu" else time.perf_counter
    scenes = args.scenes or (3 if args.quick else 20)
    bench = Bench(
        "pipeline",
        "ScanNet training recipe per scene: affine noise + flip + scale + z rotation, elastic x2, "
        "placement + crop in 4096^3, colour shift, voxelize at 20/m with mean merging",
        quick=args.quick,
        strict=args.strict,
        out=args.out,
    )

    xyz, rgb = make_room(args.points)
    cloud = PointCloud(xyz, {"rgb": rgb}, meta={"id": "procedural-room"})
    stages = our_stages()
    vox = Voxelizer(scale=1.0, features=("rgb",), full_scale=FULL_SCALE, mode="mean", origin="none")

    run_ours(cloud, stages, vox, sample_rng(0, 0, 0))  # warm-up (imports, caches)
    run_reference(xyz, rgb, np.random.default_rng(0))
    ours, ref, voxels, kept = [], [], [], []
    load_before = loadavg()
    for i in range(scenes):
        # interleaved, alternating which side runs first
        for side in ("ours", "ref") if i % 2 == 0 else ("ref", "ours"):
            if side == "ours":
                t, sample = run_ours(cloud, stages, vox, sample_rng(1, 0, i))
                ours.append(t)
                voxels.append(sample.num_voxels)
                kept.append(sample.num_points)
            else:
                ref.append(run_reference(xyz, rgb, np.random.default_rng(i))[0])
    load = {"group": "pipeline per scene", "before": load_before, "after": loadavg(), "repeat": scenes}
    clock = "cpu" if args.clock == "cpu" else "wall"
    threads = torch.get_num_threads()

    def timing(name, per_scene):
        return Timing(name, per_scene, threads, load, clock)

    names = list(ours[0])
    for k in names:
        bench.figure(
            f"stage/{k}",
            timing(f"ours {k}", [t[k] for t in ours]),
            baseline=timing(f"ref {k}", [t[k] for t in ref]),
            baseline_label="SparseConvNet recipe",
            label=f"{k}, per scene",
        )
    total_ours = timing("ours", [sum(t.values()) for t in ours])
    total_ref = timing("reference", [sum(t.values()) for t in ref])
    bench.figure(
        "total",
        total_ours,
        baseline=total_ref,
        baseline_label="SparseConvNet recipe",
        target=TARGET_RATIO,
        value_target=TARGET_MS,
        label=f"ScanNet-sized augmentation + voxelization, {args.points // 1000}k points, {threads} thread",
        readme=True,
    )
    bench.info.update(
        points=args.points,
        scenes=scenes,
        median_voxels=int(np.median(voxels)),
        median_points_kept=int(np.median(kept)),
        reference="SparseConvNet ScanNet example recipe (scipy box blur + RegularGridInterpolator, "
        "no voxel merging), reimplemented in this file",
    )
    tot = total_ours.ms
    bench.print_table()
    verdict = "meets" if tot <= TARGET_MS else "MISSES"
    print(
        f"target <= {TARGET_MS:.0f} ms per scene: {verdict} ({tot:.1f} ms, median {args.clock} time); "
        f"voxels per scene {int(np.median(voxels))} from {int(np.median(kept))} points"
    )
    bench.write()
    return bench.result()


if __name__ == "__main__":
    main()
