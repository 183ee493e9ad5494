"""Shared timing and result plumbing of the benchmarks (one schema for every JSON file).

Every benchmark script does the same four things, and this module does them once:

* **interleaved repeats**: :meth:`Bench.time` runs the rows it compares round-robin
  (row A, row B, row C, then again, rotating the order each round) in one process, so a
  burst of load from another process hits every row alike; a ratio is the median of the
  per-round ratios (:func:`paired_ratio`), never two figures taken minutes apart;
* **the conditions**: load average before and after the whole run and around each timed
  group, torch's intra-op thread count of each figure, and the environment (Python, torch,
  numpy, CPU model, core count, ``OMP_NUM_THREADS``);
* **physical limits**: a figure may state the smallest ratio that is physically possible
  (ours over a GEMM-only lower bound cannot be below 1). A ratio below it is a measurement
  error: the figure is rejected (kept in the JSON under ``rejected`` with the reason, never
  under ``figures``) or, with ``strict=True``, :class:`PhysicalLimitError` is raised;
* **JSON**: ``benchmarks/results/<name>.json`` (``--quick`` runs go to
  ``benchmarks/results/quick/``, which git ignores), schema :data:`SCHEMA`; the README's
  benchmark table is generated from these files by ``benchmarks/readme_table.py``.

Usage::

    from harness import Bench

    bench = Bench("engine", "sparse conv vs the GEMM limit", quick=args.quick)
    t = bench.time({"gemm": gemm_fn, "ours": ours_fn}, repeat=7, group="large subm fwd+bwd")
    bench.figure("large/subm_fwdbwd", t["ours"], baseline=t["gemm"], baseline_label="GEMM limit",
                 limit=1.0, target=1.3, label="submanifold conv 3^3 32->32 fwd+bwd, 200k voxels",
                 readme=True)
    bench.write()

Written by hand: pytest-benchmark and asv time one function at a time (no round-robin of
several rows inside one process, no paired ratios), and neither records load averages or
rejects physically impossible ratios.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "fastai-sparse-benchmark/1"
RESULTS = Path(__file__).resolve().parent / "results"
QUICK_RESULTS = RESULTS / "quick"
ROOT = RESULTS.parents[1]


try:  # the project's error base class when the core is importable (it always is in the venv)
    from fastai_sparse.errors import FastaiSparseError as _Base
except Exception:  # pragma: no cover - harness used without the core installed
    _Base = Exception


class PhysicalLimitError(_Base):
    """A measured ratio is below what is physically possible: the measurement is wrong."""


# ----------------------------------------------------------------------------- environment
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def loadavg() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_state(load: dict[str, Any] | None, threads: int | None, ncpu: int | None = None) -> str | None:
    """ "quiet", "busy" or "oversubscribed" from a timed group's load averages.

    Our own process accounts for up to ``threads`` of the 1-minute load; the rest is other
    work. More runnable threads than CPUs with ``threads > 1`` is "oversubscribed": OpenMP
    barriers then wait for descheduled partner threads and small parallel ops can be tens
    of times slower, so such a timing says nothing about the code.
    """
    if not load or not load.get("before") or not load.get("after"):
        return None
    ncpu = ncpu or os.cpu_count() or 1
    t = threads or 1
    others = max(load["before"][0], load["after"][0]) - t
    if t > 1 and others + t > ncpu + 0.5:
        return "oversubscribed"
    return "busy" if others >= 0.5 else "quiet"


def torch_threads() -> int | None:
    """torch's intra-op thread count (None when torch is not installed)."""
    try:
        import torch
    except ImportError:
        return None
    return int(torch.get_num_threads())


def environment() -> dict[str, Any]:
    """Versions and machine facts recorded with every result."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    import importlib

    for mod in ("torch", "numpy"):  # always recorded (every benchmark uses them)
        with contextlib.suppress(ImportError):
            importlib.import_module(mod)
    for mod in ("torch", "numpy", "scipy", "spconv", "sparseconvnet", "fastai"):
        m = sys.modules.get(mod)
        if m is not None:
            env[mod] = str(getattr(m, "__version__", "?"))
    try:
        import subprocess

        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
        if rev.returncode == 0:
            env["git_commit"] = rev.stdout.strip()
    except Exception:
        pass
    return env


# ----------------------------------------------------------------------------- memory
def _status_kb(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb() -> float | None:
    """Resident set size of this process in MB (Linux ``/proc/self/status`` VmRSS)."""
    kb = _status_kb("VmRSS")
    return None if kb is None else kb / 1024


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process in MB (VmHWM, since start or the last reset)."""
    kb = _status_kb("VmHWM")
    return None if kb is None else kb / 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0); False if impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_delta_mb(fn: Callable[[], Any]) -> dict[str, float | None]:
    """Run ``fn`` once and return its peak RSS above the RSS just before it, in MB.

    Peak resident memory of the whole process (torch's allocator included, which
    ``tracemalloc`` does not see), via ``/proc/self/clear_refs`` + VmHWM.
    """
    ok = reset_peak_rss()
    before = rss_mb()
    fn()
    peak = peak_rss_mb()
    if not ok or before is None or peak is None:
        return {"peak_rss_delta_mb": None, "rss_before_mb": before, "method": "unavailable"}
    return {
        "peak_rss_delta_mb": round(peak - before, 1),
        "rss_before_mb": round(before, 1),
        "method": "VmHWM after /proc/self/clear_refs reset, minus VmRSS before",
    }


# ----------------------------------------------------------------------------- timing
@dataclass
class Timing:
    """Wall-clock (or CPU) samples of one row, in seconds, in round order."""

    name: str
    samples: list[float]
    threads: int | None = None
    load: dict[str, Any] = field(default_factory=dict)
    clock: str = "wall"

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def ms(self) -> float:
        """Median in milliseconds (the figure the tables show)."""
        return self.median * 1e3

    def __repr__(self) -> str:
        return f"Timing({self.name!r}, median {self.ms:.2f} ms, min {self.min * 1e3:.2f} ms, n={len(self.samples)})"


def interleave(
    rows: dict[str, Callable[[], Any]],
    repeat: int,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Time ``rows`` round-robin: ``repeat`` rounds, each row once per round.

    The order rotates every round (round r starts at row r mod n), so no row always runs
    right after the same neighbour. ``warmup`` untimed rounds come first. Returns seconds
    per row, in round order.
    """
    names = list(rows)
    for _ in range(warmup):
        for n in names:
            rows[n]()
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeat):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            fn = rows[n]
            t0 = clock()
            fn()
            out[n].append(clock() - t0)
    return out


def paired_ratio(a: Timing | float, b: Timing | float) -> float:
    """Ratio ``a / b``: median of per-round ratios when both are timings of one interleaved
    group (same number of samples), else the ratio of the medians / plain values."""
    if isinstance(a, Timing) and isinstance(b, Timing):
        if len(a.samples) == len(b.samples) and a.load.get("group") == b.load.get("group"):
            return statistics.median(x / y for x, y in zip(a.samples, b.samples))
        return a.median / b.median
    va = a.median if isinstance(a, Timing) else float(a)
    vb = b.median if isinstance(b, Timing) else float(b)
    return va / vb


# ----------------------------------------------------------------------------- the bench
def _round(v: float | None, nd: int = 4) -> float | None:
    if v is None:
        return None
    return float(f"{v:.{nd}g}")


class Bench:
    """Collects the figures of one benchmark run and writes them as one JSON file.

    Args:
        name: file stem of the result (``benchmarks/results/<name>.json``).
        description: one line, what is measured.
        quick: a smoke run (written under ``results/quick/``; never in the README).
        strict: raise :class:`PhysicalLimitError` instead of rejecting an impossible ratio.
        command: the command that reproduces the file (default: this script's path).
    """

    def __init__(
        self,
        name: str,
        description: str,
        quick: bool = False,
        strict: bool = False,
        command: str | None = None,
        out: str | Path | None = None,
    ):
        self.name = name
        self.description = description
        self.quick = bool(quick)
        self.strict = bool(strict)
        script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
        if command is None and script is not None and script.suffix == ".py":
            try:
                rel = script.relative_to(ROOT)
            except ValueError:
                rel = script
            command = f"python {rel}" + (" --quick" if quick else "")
        self.command = command
        self.out = Path(out) if out else (QUICK_RESULTS if self.quick else RESULTS) / f"{name}.json"
        self.started = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
        self.load_before = loadavg()
        self.figures: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        self.info: dict[str, Any] = {}
        self._t0 = time.perf_counter()

    # -- timing
    def time(
        self,
        rows: dict[str, Callable[[], Any]],
        repeat: int,
        warmup: int = 1,
        group: str | None = None,
        clock: str = "wall",
    ) -> dict[str, Timing]:
        """Interleaved timing of ``rows`` (see :func:`interleave`); ``clock`` "wall" or "cpu"."""
        clk = time.perf_counter if clock == "wall" else time.process_time
        group = group or ",".join(rows)
        before = loadavg()
        raw = interleave(rows, repeat, warmup, clk)
        load = {"group": group, "before": before, "after": loadavg(), "repeat": repeat}
        return {n: Timing(n, s, torch_threads(), load, clock) for n, s in raw.items()}

    # -- figures
    def figure(
        self,
        name: str,
        value: Timing | float,
        unit: str | None = None,
        *,
        baseline: Timing | float | None = None,
        baseline_label: str | None = None,
        limit: float | None = None,
        target: float | None = None,
        higher_is_better: bool = False,
        value_target: float | None = None,
        label: str | None = None,
        readme: bool = False,
        note: str | None = None,
        **extra: Any,
    ) -> dict[str, Any] | None:
        """Record one figure, optionally next to a baseline of the same run.

        ``value`` / ``baseline``: a :class:`Timing` (recorded as its median in ms, with its
        samples) or a number in ``unit``. ``limit``: the smallest physically possible ratio
        ``value / baseline``; below it the figure is rejected (or raises when strict).
        ``target``: the ratio the project aims for (``<=`` it, or ``>=`` it when
        ``higher_is_better``); without a baseline it applies to the value itself.
        ``value_target``: a target for the value when ``target`` is the ratio's (the same
        direction). ``readme``: the figure appears in the README's table.
        Returns the record, or None when rejected.
        """
        rec: dict[str, Any] = {"name": name, "label": label or name}
        if isinstance(value, Timing):
            rec.update(value=_round(value.ms), unit=unit or "ms", stat="median", clock=value.clock)
            rec["samples_ms"] = [_round(s * 1e3) for s in value.samples]
            rec["min"] = _round(value.min * 1e3)
            rec["threads"] = value.threads
            rec["load"] = value.load
        else:
            rec.update(value=_round(float(value)), unit=unit or "")
            rec["threads"] = torch_threads()
            rec["load"] = {"group": "run", "before": self.load_before, "after": loadavg()}
        if baseline is not None:
            b = baseline.ms if isinstance(baseline, Timing) else float(baseline)
            rec["baseline"] = {"label": baseline_label or "baseline", "value": _round(b)}
            if isinstance(baseline, Timing):
                rec["baseline"]["samples_ms"] = [_round(s * 1e3) for s in baseline.samples]
            if b == 0 or (isinstance(baseline, Timing) and min(baseline.samples) <= 0):
                rec["ratio"] = None  # a zero baseline (e.g. a baseline scoring 0): no ratio
                if rec.get("load"):
                    rec["machine"] = machine_state(rec["load"], rec.get("threads"))
                if readme:
                    rec["readme"] = True
                if note:
                    rec["note"] = note
                rec.update(extra)
                self.figures.append(rec)
                return rec
            ratio = paired_ratio(value, baseline)
            rec["ratio"] = _round(ratio)
            rec["ratio_stat"] = (
                "median of per-round ratios (interleaved)"
                if isinstance(value, Timing)
                and isinstance(baseline, Timing)
                and value.load.get("group") == baseline.load.get("group")
                else "ratio of values"
            )
            if limit is not None:
                rec["limit"] = limit
                if ratio < limit:
                    msg = (
                        f"{self.name}/{name}: ratio {ratio:.3f} is below the physical limit {limit} "
                        f"({rec['baseline']['label']}): a measurement error (load {loadavg()})"
                    )
                    if self.strict:
                        raise PhysicalLimitError(msg)
                    rec["rejected"] = msg
                    self.rejected.append(rec)
                    print(f"REJECTED {msg}", file=sys.stderr)
                    return None
            if target is not None:
                rec["target"] = target
                rec["target_op"] = ">=" if higher_is_better else "<="
                rec["meets_target"] = bool(ratio >= target if higher_is_better else ratio <= target)
        elif target is not None:
            rec["target"] = target
            rec["target_op"] = ">=" if higher_is_better else "<="
            v = rec["value"]
            rec["meets_target"] = bool(v >= target if higher_is_better else v <= target)
        if value_target is not None:
            rec["value_target"] = value_target
            rec["value_target_op"] = ">=" if higher_is_better else "<="
            v = rec["value"]
            rec["meets_value_target"] = bool(v >= value_target if higher_is_better else v <= value_target)
        if readme:
            rec["readme"] = True
        if note:
            rec["note"] = note
        rec.update(extra)
        if rec.get("load") and "machine" not in rec:
            rec["machine"] = machine_state(rec["load"], rec.get("threads"))
        self.figures.append(rec)
        return rec

    def ratio_figure(self, name: str, a: Timing, b: Timing, **kw: Any) -> dict[str, Any] | None:
        """A figure whose value is the paired ratio ``a / b`` of two timings (unit "x")."""
        return self.figure(name, a, baseline=b, **kw)

    # -- output
    def result(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "benchmark": self.name,
            "description": self.description,
            "command": self.command,
            "quick": self.quick,
            "started": self.started,
            "seconds": round(time.perf_counter() - self._t0, 1),
            "environment": environment(),
            "threads": torch_threads(),
            "load_before": self.load_before,
            "load_after": loadavg(),
            "figures": self.figures,
            "rejected": self.rejected,
            "info": self.info,
        }

    def write(self, path: str | Path | None = None) -> Path:
        """Write the JSON (atomically: a temporary file renamed over the old one)."""
        out = Path(path) if path else self.out
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_text(json.dumps(self.result(), indent=2) + "\n")
        tmp.replace(out)
        print(f"wrote {out}")
        return out

    def print_table(self, figures: Sequence[dict[str, Any]] | None = None) -> None:
        """Print the figures (value, baseline, ratio, threads) as a plain table."""
        figs = self.figures if figures is None else figures
        print(
            f"\n{self.name}: load average before {self.load_before}, now {loadavg()}, "
            f"{os.cpu_count()} CPUs ({cpu_model()})"
        )
        print(f"{'figure':58s} {'value':>12s} {'baseline':>24s} {'ratio':>7s} {'thr':>3s}")
        for f in figs:
            v = f"{f['value']:.4g} {f['unit']}".strip()
            b = ""
            if "baseline" in f:
                b = f"{f['baseline']['value']:.4g} {f['baseline']['label']}"[:24]
            r = f"{f['ratio']:.2f}x" if f.get("ratio") is not None else ""
            if f.get("target") is not None:
                r += "" if f.get("meets_target") else " !"
            print(f"{f['label'][:58]:58s} {v:>12s} {b:>24s} {r:>7s} {f.get('threads') or '':>3}")
        for f in self.rejected:
            print(f"REJECTED: {f['rejected']}")


def add_common_args(ap) -> None:
    """``--quick`` and ``--strict`` for an argparse parser."""
    ap.add_argument("--quick", action="store_true", help="few repeats, small inputs: a smoke run")
    ap.add_argument(
        "--strict", action="store_true", help="raise on a ratio below its physical limit (else reject it)"
    )
