"""ScanNet plugin benchmark: prepare time per scene and training step time at 20 voxels/m.

Run: ``python benchmarks/bench_scannet.py [--quick] [--vertices 150000]``. Uses a procedural
ScanNet-sized fixture scene written in the exact ScanNet v2 formats (no real data needed).
Baselines measured in the same run: reading the two PLYs with plain plyfile (prepare's floor),
and the model forward+backward alone (the step's floor, without the CPU-side augmentation).
The rows compared are timed interleaved (``benchmarks/harness.py``). Prints a table and writes
``benchmarks/results/scannet.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Bench, add_common_args


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(ap)
    ap.add_argument("--vertices", type=int, default=150_000)
    ap.add_argument(
        "--steps", type=int, default=None, help="interleaved training rounds (default 5, quick 2)"
    )
    ap.add_argument(
        "--repeat", type=int, default=None, help="interleaved prepare rounds (default 5, quick 2)"
    )
    ap.add_argument(
        "--out", type=Path, default=None, help="JSON path (default benchmarks/results/scannet.json)"
    )
    args = ap.parse_args()
    repeat = args.repeat or (2 if args.quick else 5)
    steps = args.steps or (2 if args.quick else 5)
    bench = Bench(
        "scannet",
        "ScanNet plugin: prepare time per scene and training step time at 20 voxels/m",
        quick=args.quick,
        strict=args.strict,
        out=args.out,
    )

    import plyfile

    from fastai_sparse.batch import collate
    from fastai_sparse.testing import registry_with
    from fastai_sparse_scannet.fixtures import make_fixture
    from fastai_sparse_scannet.prepare import prepare, scene_arrays
    from fastai_sparse_scannet.reader import read_label_table

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

        k = iter(range(1000))
        g = bench.time(
            {
                "plain_read": plain_read,
                "arrays": lambda: scene_arrays(d, table=table, labels=True),
                "prepare": lambda: prepare(root, out=Path(tmp) / f"c{next(k)}", jobs=1, quiet=True),
            },
            repeat,
            group="prepare",
        )
        for row, label in (
            ("arrays", "prepare: read + validate + map one scene"),
            ("prepare", "prepare: full, incl. atomic npz write"),
        ):
            bench.figure(
                row,
                g[row],
                baseline=g["plain_read"],
                baseline_label="plyfile read of both PLYs",
                label=f"ScanNet {label}, {n // 1000}k vertices",
                readme=row == "prepare",
            )

        reg = registry_with("scannet")
        task = reg.get("task", "scannet-seg")
        cloud = task.datasets(root, registry=reg)["train"][0]
        pipe = task.pipeline(train=True)
        rng = np.random.default_rng(0)
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

        def step():
            s = pipe(cloud, rng)
            xb, yb = collate([s], task.target)
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()

        g = bench.time(
            {"model": fwd_bwd, "augment": lambda: pipe(cloud, rng), "step": step}, steps, group="train step"
        )
        bench.figure(
            "augment",
            g["augment"],
            baseline=g["model"],
            baseline_label="model fwd+bwd+Adam",
            label="ScanNet train: augmentation + voxelize (one scene)",
        )
        bench.figure(
            "step",
            g["step"],
            baseline=g["model"],
            baseline_label="model fwd+bwd+Adam",
            limit=1.0,
            label=f"ScanNet train: full step, bs 1, {len(sample.coords) // 1000}k voxels",
            readme=True,
        )
    bench.info.update(
        vertices=int(n),
        voxels_per_scene=len(sample.coords),
        scale_voxels_per_m=task.voxelizer.scale,
        model=task.model,
    )
    bench.print_table()
    bench.write()


if __name__ == "__main__":
    main()
