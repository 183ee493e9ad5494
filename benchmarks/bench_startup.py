"""Benchmark: start-up time of the package and of the listing commands.

Each row is one fresh interpreter, timed from outside (wall clock of the subprocess):

    import        python -c "import fastai_sparse"
    --help        fastai-sparse --help
    tasks         fastai-sparse tasks        (builds every task of every installed plugin)
    plugins       fastai-sparse plugins
    list models   fastai-sparse list models

with the packages of a source tree put first on ``PYTHONPATH`` (``core/src`` and every
``plugins/*/src``), so the installed entry points (the four packages: core, scannet,
shapenet, classification) load that tree's code. ``--before DIR`` adds the same rows for
another tree, e.g. an export of an older commit::

    mkdir /tmp/before && git archive <commit> | tar -x -C /tmp/before
    python benchmarks/bench_startup.py --before /tmp/before --before-label <commit>

A plugin installed after that commit (its source is not in the old tree) would load from the
current tree on the "before" rows: pass ``--plugins`` with the plugins both trees have.

Rows of both trees are interleaved (round-robin, rotating order) so load from other
processes hits both alike; each "after" figure is reported next to its "before" baseline
with the median of the per-round ratios. Every row also records which heavy modules
(torch, fastai, scipy) the command left in ``sys.modules`` (one extra, untimed run).
Target: ``fastai-sparse tasks`` under 1 s; ``--help`` stays as fast as before.

    python benchmarks/bench_startup.py                 # 10 rounds
    python benchmarks/bench_startup.py --quick         # 3 rounds, smoke run
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ROOT, Bench, add_common_args

TARGET_TASKS_MS = 1000.0
HEAVY = ("torch", "fastai", "scipy")

#: row name -> CLI arguments (None: only ``import fastai_sparse``)
COMMANDS: dict[str, list[str] | None] = {
    "import": None,
    "--help": ["--help"],
    "tasks": ["tasks"],
    "plugins": ["plugins"],
    "list models": ["list", "models"],
}

# what the console script does, plus (with PROBE) a report of the heavy modules loaded
RUN = """
import sys
if {probe}:
    import atexit
    atexit.register(lambda: print("HEAVY:" + ",".join(m for m in {heavy!r} if m in sys.modules)))
if {args!r} is None:
    import fastai_sparse
else:
    from fastai_sparse.cli import main
    sys.argv = ["fastai-sparse", *{args!r}]
    main()
"""


def source_path(tree: Path) -> str:
    """PYTHONPATH for a source tree: core/src and every plugins/*/src."""
    dirs = [tree / "core" / "src", *sorted((tree / "plugins").glob("*/src"))]
    missing = [d for d in dirs[:1] if not d.is_dir()]
    if missing:
        sys.exit(f"{tree}: no core/src folder; expected a checkout of fastai-sparse")
    return os.pathsep.join(str(d) for d in dirs)


def command(args: list[str] | None, probe: bool = False) -> list[str]:
    return [sys.executable, "-c", RUN.format(args=args, probe=probe, heavy=HEAVY)]


def run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[-1][:60]!r} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(ap)
    ap.add_argument("--repeat", type=int, default=None, help="timed rounds (default 10, quick 3)")
    ap.add_argument("--tree", type=Path, default=ROOT, help="the source tree to measure (default: this one)")
    ap.add_argument("--before", type=Path, help="a source tree to compare with (e.g. an older commit)")
    ap.add_argument("--before-label", default=None, help="what --before is (e.g. its commit id)")
    ap.add_argument(
        "--plugins",
        default=None,
        help="FASTAI_SPARSE_PLUGINS for every row (default: every installed plugin); e.g. "
        "scannet,shapenet,classification to compare with a tree that predates a newer plugin",
    )
    args = ap.parse_args()
    repeat = args.repeat or (3 if args.quick else 10)

    trees = {"after": args.tree.resolve()}
    if args.before is not None:
        trees["before"] = args.before.resolve()
    envs = {}
    for label, tree in trees.items():
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=source_path(tree))
        env.pop("FASTAI_SPARSE_PLUGINS", None)  # every installed plugin ...
        if args.plugins:  # ... unless asked otherwise
            env["FASTAI_SPARSE_PLUGINS"] = args.plugins
        envs[label] = env

    bench = Bench("startup", "start-up wall time of import, --help, tasks, plugins", quick=args.quick)
    bench.info["trees"] = {k: str(v) for k, v in trees.items()}
    bench.info["before_label"] = args.before_label
    bench.info["plugins"] = sorted(
        ep.name for ep in __import__("importlib.metadata").metadata.entry_points(group="fastai_sparse")
    )
    bench.info["FASTAI_SPARSE_PLUGINS"] = args.plugins
    heavy: dict[str, dict[str, list[str]]] = {label: {} for label in trees}
    rows = {}
    for name, cli_args in COMMANDS.items():
        for label in trees:
            out = run(command(cli_args, probe=True), envs[label]).stdout
            loaded = out.rsplit("HEAVY:", 1)[-1].strip()
            heavy[label][name] = [m for m in loaded.split(",") if m]
            rows[f"{label}: {name}"] = functools.partial(run, command(cli_args), envs[label])
    bench.info["heavy_modules_loaded"] = heavy
    t = bench.time(rows, repeat=repeat, warmup=1, group="startup")

    for name in COMMANDS:
        after = t[f"after: {name}"]
        kw = dict(label=f"fastai-sparse {name}" if name != "import" else "import fastai_sparse")
        extra = {"heavy_modules": heavy["after"][name]}
        if name == "tasks":
            extra["target_ms"] = TARGET_TASKS_MS
            extra["meets_target_ms"] = bool(after.ms < TARGET_TASKS_MS)
        if "before" in trees:
            before = t[f"before: {name}"]
            extra["heavy_modules_before"] = heavy["before"][name]
            bench.figure(
                name,
                after,
                baseline=before,
                baseline_label=f"before ({args.before_label or 'old tree'})",
                readme=name in ("tasks", "--help"),
                **kw,
                **extra,
            )
        else:
            bench.figure(name, after, readme=name in ("tasks", "--help"), **kw, **extra)
    bench.print_table()
    for label in trees:
        print(
            f"heavy modules loaded ({label}): "
            + "; ".join(f"{k}: {v or '-'}" for k, v in heavy[label].items())
        )
    bench.write()


if __name__ == "__main__":
    main()
