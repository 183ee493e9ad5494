"""The thread policy: time per training step for each way of choosing torch's CPU threads, on an
idle machine and on one the benchmark loads itself, and which row the policy picks.

Run from the repository root (on a quiet machine: the "idle" rows mean what they say only
there)::

    python benchmarks/bench_threads.py            # 5 interleaved rounds, 60 s for the load to settle
    python benchmarks/bench_threads.py --quick    # 2 rounds, 5 s settle: a smoke run

The step is the demo's: one training step (forward, loss, backward, Adam) of
``synthetic-rooms-seg`` (UNet m16 + linear head, a batch of 4 rooms of 8000 points at 5 cm).
Each row is a worker process of its own, because OpenMP reads ``OMP_WAIT_POLICY`` once, when
torch loads: the rows are 1 thread, ``c`` threads for every distinct count ``c`` up to the
physical cores (the largest is torch's default), each with OpenMP's default wait policy
(spin, then sleep) and with ``OMP_WAIT_POLICY=PASSIVE`` (sleep at once). The rows run
round-robin (the harness's interleaving: a burst of outside load hits every row alike), each
round asking every worker for ``--steps`` steps.

Conditions: **idle** (nothing started by the benchmark) and **loaded** (one busy Python
process per core, started by the benchmark and stopped after the rows: the situation of a
machine shared with other work), and with ``--half`` also **half** (one busy process per two
cores). Before timing a condition the benchmark waits ``--settle`` seconds so the 1-minute
load average reflects it, then asks :func:`fastai_sparse.threads.choose_threads` what it would
choose with that load (the thread count and the wait policy the CLI applies), and marks that
row. Every figure is the median time of one step, next to the 1-thread row of the same
condition (a paired ratio); a "policy" figure compares the chosen row with the best row.

Writes ``benchmarks/results/threads.json`` (``results/quick/`` for ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import Bench, add_common_args, loadavg

BUSY = "while True:\n    pass\n"


# ----------------------------------------------------------------------------- the worker
def _worker(threads: int, bs: int, points: int) -> None:
    """A row: build the demo's step once, then run ``n`` steps for every ``n`` read from stdin
    and answer with the seconds they took (torch loads here, after the parent set the env)."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from fastai_sparse import get_task
    from fastai_sparse.batch import collate

    task = get_task("synthetic-rooms-seg")
    rooms = task.dataset_factory()(split="train", n=bs, seed=0, points=points)
    pipe = task.pipeline(train=True)
    rng = np.random.default_rng(0)
    x, y = collate([pipe(rooms[i], rng) for i in range(bs)], task.target)
    torch.manual_seed(0)
    model = task.build_model(int(x["feats"].shape[1]))
    loss_fn = task.loss_func()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    step()  # warm-up: first-call allocations
    print(json.dumps({"ready": True, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        n = int(line)
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        print(json.dumps({"seconds": time.perf_counter() - t0}), flush=True)


class Row:
    """A worker process with its own environment: ``threads`` torch threads, ``wait`` the
    OpenMP wait policy (None: OpenMP's default)."""

    def __init__(self, threads: int, wait: str | None, bs: int, points: int):
        self.threads, self.wait = threads, wait
        env = {**os.environ}
        env.pop("OMP_NUM_THREADS", None)
        env.pop("OMP_WAIT_POLICY", None)
        if wait:
            env["OMP_WAIT_POLICY"] = wait
        cmd = [sys.executable, __file__, "--worker", str(threads), "--bs", str(bs), "--points", str(points)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        ready = json.loads(self._read())
        if ready["threads"] != threads:
            raise SystemExit(f"worker asked for {threads} threads runs {ready['threads']}")

    @property
    def name(self) -> str:
        return f"{self.threads} thread{'s' if self.threads > 1 else ''}" + (
            f", {self.wait.lower()} wait" if self.wait else ""
        )

    def _read(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"worker {self.threads}/{self.wait} died (exit code {self.proc.wait()})")
        return line

    def run(self, steps: int) -> float:
        self.proc.stdin.write(f"{steps}\n")
        self.proc.stdin.flush()
        return json.loads(self._read())["seconds"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


class Load:
    """``n`` busy processes (one core each) for the duration of a ``with`` block."""

    def __init__(self, n: int):
        self.n, self.procs = n, []

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(self.n)]
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()


# ----------------------------------------------------------------------------- the run
def thread_counts(cores: int) -> list[int]:
    """1, the powers of two below ``cores``, and ``cores`` (torch's default)."""
    counts, c = {1, cores}, 2
    while c < cores:
        counts.add(c)
        c *= 2
    return sorted(counts)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(ap)
    ap.add_argument("--repeat", type=int, default=None, help="interleaved rounds (default 5, quick 2)")
    ap.add_argument("--steps", type=int, default=None, help="training steps per row and round (default 3)")
    ap.add_argument(
        "--settle", type=float, default=None, help="seconds before timing a condition (60; quick 5)"
    )
    ap.add_argument("--half", action="store_true", help="also a half-loaded condition")
    ap.add_argument("--bs", type=int, default=4, help=argparse.SUPPRESS)
    ap.add_argument("--points", type=int, default=8000, help=argparse.SUPPRESS)
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/threads.json)")
    args = ap.parse_args(argv)
    if args.worker is not None:
        return _worker(args.worker, args.bs, args.points)

    from fastai_sparse import threads as policy

    repeat = args.repeat or (2 if args.quick else 5)
    steps = args.steps or (1 if args.quick else 3)
    settle = args.settle if args.settle is not None else (5.0 if args.quick else 60.0)
    cores, cores_why = policy.usable_cores()
    bench = Bench(
        "threads",
        "thread policy: demo training step per torch thread count and OpenMP wait policy, "
        "idle and with one busy process per core",
        quick=args.quick,
        strict=args.strict,
        out=args.out,
    )
    bench.info.update(cores=cores, cores_why=cores_why, cpu_count=os.cpu_count(), steps=steps, settle=settle)
    rows = [Row(t, w, args.bs, args.points) for t in thread_counts(cores) for w in (None, "PASSIVE")]
    rows = [r for r in rows if not (r.threads == 1 and r.wait)] + [
        r for r in rows if r.threads == 1 and r.wait
    ]
    conditions = [("idle", 0), ("loaded", cores)]
    if args.half and cores > 1:
        conditions.insert(1, ("half", cores // 2))
    table = []
    try:
        for cond, busy in conditions:
            with Load(busy):
                time.sleep(settle)
                choice = policy.choose_threads(load=loadavg()[0] if loadavg() else None, cores=cores)
                fns = {r.name: (lambda r=r: r.run(steps)) for r in rows}
                t = bench.time(fns, repeat=repeat, warmup=1, group=f"{cond}")
            for r in rows:  # the harness records this process's count; each row has its own
                t[r.name].threads = r.threads
            base = t["1 thread"]
            wait = policy.PASSIVE if choice.passive else None
            chosen = next((r.name for r in rows if (r.threads, r.wait) == (choice.threads, wait)), None)
            best = min(t, key=lambda n: t[n].median)
            bench.info.setdefault("choices", {})[cond] = {**choice.as_dict(), "row": chosen, "best_row": best}
            for r in rows:
                fig = bench.figure(
                    f"{cond}/{r.name}",
                    t[r.name],
                    baseline=base if r.name != "1 thread" else None,
                    baseline_label="1 thread",
                    label=f"{cond} ({busy} busy processes): demo step, {r.name}",
                    busy_processes=busy,
                    wait_policy=r.wait or "default (spin, then sleep)",
                    per_step=steps,
                    chosen=r.name == chosen,
                )
                table.append((cond, r.name, fig, r.name == chosen))
            if chosen is not None:
                bench.figure(
                    f"{cond}/policy_vs_best",
                    t[chosen],
                    baseline=t[best],
                    baseline_label=f"best row ({best})",
                    limit=1.0,
                    target=1.25,
                    label=f"{cond}: the policy's row ({chosen}) vs the best row",
                    readme=cond == "loaded",
                )
    finally:
        for r in rows:
            r.close()
    print_table(bench, table, steps)
    bench.print_table()
    bench.write()


def print_table(bench: Bench, table: list, steps: int) -> None:
    print(
        f"\nthread policy ({bench.info['cores']} usable cores: {bench.info['cores_why']}); {steps} steps per sample"
    )
    print(f"{'condition':10s} {'row':28s} {'s/step':>8s} {'vs 1 thread':>12s}  chosen")
    for cond, name, fig, chosen in table:
        if fig is None:
            continue
        per = fig["value"] / 1e3 / steps
        ratio = f"{fig['ratio']:.2f}x" if fig.get("ratio") is not None else "1.00x"
        print(f"{cond:10s} {name:28s} {per:8.3f} {ratio:>12s}  {'<-' if chosen else ''}")
    for cond, c in bench.info.get("choices", {}).items():
        print(f"{cond}: {c['line']}")


if __name__ == "__main__":
    main()
