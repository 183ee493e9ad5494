"""ScanNet plugin benchmark: prepare time per scene and training step time at 20 voxels/m.

Run: ``python benchmarks/bench_scannet.py [--vertices 150000] [--steps 3]``. Uses a procedural
ScanNet-sized fixture scene written in the exact ScanNet v2 formats (no real data needed).
Baselines measured in the same run: reading the two PLYs with plain plyfile (prepare's floor),
and the model forward+backward alone (the step's floor, without the CPU-side augmentation).
Prints a table and writes ``benchmarks/results/scannet.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vertices", type=int, default=150_000)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "scannet.json")
    args = ap.parse_args()

    import plyfile

    from fastai_sparse.batch import collate
    from fastai_sparse.testing import registry_with
    from fastai_sparse_scannet.fixtures import make_fixture
    from fastai_sparse_scannet.prepare import prepare, scene_arrays
    from fastai_sparse_scannet.reader import read_label_table

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = make_fixture(Path(tmp) / "root", scenes={"train": ["scene0000_00"], "val": []},
                            vertices=args.vertices)  # fmt: skip
        d = root / "scans" / "scene0000_00"
        n = plyfile.PlyData.read(str(d / "scene0000_00_vh_clean_2.ply"))["vertex"].count
        table = read_label_table(root / "scannetv2-labels.combined.tsv")

        def plain_read():
            for name in ("scene0000_00_vh_clean_2.ply", "scene0000_00_vh_clean_2.labels.ply"):
                ply = plyfile.PlyData.read(str(d / name), known_list_len={"face": {"vertex_indices": 3}})
                # copies force the memory-mapped bytes to be read
                _ = np.array(ply["vertex"].data["x"]), np.array(ply["face"].data["vertex_indices"])

        base = _best(plain_read, args.repeat)
        arrays = _best(lambda: scene_arrays(d, table=table, labels=True), args.repeat)
        k = iter(range(1000))
        full = _best(lambda: prepare(root, out=Path(tmp) / f"c{next(k)}", jobs=1, quiet=True), args.repeat)
        rows += [
            ("prepare: plyfile read of both PLYs (baseline)", base, 1.0),
            ("prepare: read + validate + map one scene", arrays, arrays / base),
            ("prepare: full, incl. atomic npz write", full, full / base),
        ]

        reg = registry_with("scannet")
        task = reg.get("task", "scannet-seg")
        cloud = task.datasets(root, registry=reg)["train"][0]
        pipe = task.pipeline(train=True)
        rng = np.random.default_rng(0)
        aug = _best(lambda: pipe(cloud, rng), args.repeat)
        sample = pipe(cloud, rng)
        x, y = collate([sample], task.target)
        model = task.build_model(int(x["feats"].shape[1]), registry=reg)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        loss_fn = task.loss_func()

        def fwd_bwd():
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()

        fwd_bwd()  # warm-up
        model_t = _best(fwd_bwd, args.steps)

        def step():
            s = pipe(cloud, rng)
            xb, yb = collate([s], task.target)
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()

        step_t = _best(step, args.steps)
        rows += [
            ("train: model forward+backward+Adam, bs 1 (baseline)", model_t, 1.0),
            ("train: augmentation + voxelize (one scene)", aug, aug / model_t),
            ("train: full step (augment, collate, model), bs 1", step_t, step_t / model_t),
        ]
    result = {
        "vertices": int(n),
        "voxels_per_scene": len(sample.coords),
        "scale_voxels_per_m": task.voxelizer.scale,
        "model": task.model,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_avg": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "machine": platform.platform(),
        "rows": [{"what": w, "seconds": round(t, 4), "ratio_to_baseline": round(r, 2)} for w, t, r in rows],
    }
    print(f"ScanNet-sized fixture scene: {n} vertices, {result['voxels_per_scene']} voxels at 20/m; "
          f"{result['threads']} torch threads, {result['cpus']} CPUs, load {result['load_avg']:.1f}")  # fmt: skip
    print(f"{'what':58s} {'seconds':>9s} {'x baseline':>11s}")
    for w, t, r in rows:
        print(f"{w:58s} {t:9.3f} {r:11.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
