"""What the data checks cost: reading a prepared cache with its freshness check against reading
the npz alone, and PLY reading with the body-count check against plyfile alone.

Run: ``python benchmarks/bench_trust_data.py [--quick] [--vertices 150000]``. A procedural
ScanNet-sized scene written in the exact ScanNet v2 formats (no real data needed):

* cache: :meth:`fastai_sparse.cache.CacheFormat.load` of the scene's prepared file (the record
  read, six ``stat`` calls, the comparison, the arrays) against ``np.load`` of every array of
  the same file (the floor: no check);
* labels: ScanNet's ``read_scene`` with the label-source check (range, aggregation, floor)
  against the same read without it;
* PLY: :func:`fastai_sparse.io.read_plydata` against ``plyfile.PlyData.read`` on the binary
  mesh (the check reads the header and adds up the body's bytes) and on an ASCII copy of its
  vertices (the check counts the body's lines once more).

The rows compared are timed interleaved (``benchmarks/harness.py``). Prints a table and writes
``benchmarks/results/trust_data.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Bench, add_common_args


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(ap)
    ap.add_argument("--vertices", type=int, default=150_000)
    ap.add_argument("--repeat", type=int, default=None, help="interleaved rounds (default 7, quick 2)")
    ap.add_argument(
        "--out", type=Path, default=None, help="JSON path (default benchmarks/results/trust_data.json)"
    )
    args = ap.parse_args()
    repeat = args.repeat or (2 if args.quick else 7)
    bench = Bench(
        "trust_data",
        "cost of the data checks: cache freshness on load, PLY body counts",
        quick=args.quick,
        strict=args.strict,
        out=args.out,
    )

    import plyfile

    from fastai_sparse.io import read_plydata
    from fastai_sparse_scannet.fixtures import make_fixture
    from fastai_sparse_scannet.prepare import cache_format, prepare, scene_item

    with tempfile.TemporaryDirectory() as tmp:
        root = make_fixture(Path(tmp) / "root", scenes={"train": ["scene0000_00"], "val": []},
                            vertices=args.vertices)  # fmt: skip
        d = root / "scans" / "scene0000_00"
        out = Path(tmp) / "cache"
        prepare(root, out=out, jobs=1, quiet=True)
        item = scene_item(root, "scene0000_00", d, out, labelled=True)
        fmt = cache_format(root)
        assert fmt.check(item).status == "fresh"

        def plain_load():
            with np.load(item.path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}

        g = bench.time(
            {"np_load": plain_load, "checked_load": lambda: fmt.load(item)}, repeat, group="cache load"
        )
        n = len(plain_load()["coords"])
        bench.figure(
            "cache_load",
            g["checked_load"],
            baseline=g["np_load"],
            baseline_label="np.load of the same file, no check",
            label=f"ScanNet cache load with the freshness check, {n // 1000}k vertices",
            readme=True,
        )

        from fastai_sparse_scannet.reader import read_label_table, read_scene

        table = read_label_table(root / "scannetv2-labels.combined.tsv")
        g = bench.time(
            {
                "unchecked": lambda: read_scene(d, table=table, labels=True, check_labels=False),
                "checked": lambda: read_scene(d, table=table, labels=True),
            },
            repeat,
            group="ScanNet labels check",
        )
        bench.figure(
            "label_source_check",
            g["checked"],
            baseline=g["unchecked"],
            baseline_label="read_scene, check_labels=False",
            label=f"ScanNet read_scene with the label-source check, {n // 1000}k vertices",
        )

        mesh = d / "scene0000_00_vh_clean_2.ply"
        fast = {"face": {"vertex_indices": 3}}
        g = bench.time(
            {
                "plyfile": lambda: plyfile.PlyData.read(str(mesh), known_list_len=fast),
                "checked": lambda: read_plydata(mesh, known_list_len=fast),
            },
            repeat,
            group="binary PLY",
        )
        bench.figure(
            "ply_binary",
            g["checked"],
            baseline=g["plyfile"],
            baseline_label="plyfile alone",
            label=f"binary PLY read with the body-count check, {n // 1000}k vertices + faces",
        )

        ascii_ply = Path(tmp) / "points_ascii.ply"
        src = plyfile.PlyData.read(str(mesh))["vertex"].data
        vert = np.empty(len(src), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
        for c in "xyz":
            vert[c] = src[c]
        plyfile.PlyData([plyfile.PlyElement.describe(vert, "vertex")], text=True).write(str(ascii_ply))
        g = bench.time(
            {
                "plyfile": lambda: plyfile.PlyData.read(str(ascii_ply)),
                "checked": lambda: read_plydata(ascii_ply),
            },
            repeat,
            group="ASCII PLY",
        )
        bench.figure(
            "ply_ascii",
            g["checked"],
            baseline=g["plyfile"],
            baseline_label="plyfile alone",
            label=f"ASCII PLY read with the body-count check, {n // 1000}k points",
        )
    bench.info.update(vertices=int(n))
    bench.print_table()
    bench.write()


if __name__ == "__main__":
    main()
