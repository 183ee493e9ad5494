"""How many CPU threads torch computes with: the thread policy of every computing command.

Why a policy: torch starts one OpenMP thread per physical core, and between two operations
those threads spin, waiting for each other. On a machine busy with other work a thread is
often not running when the others need it, and the waiting grows: with torch's default two
threads on a two-core machine loaded by two other processes, the demo's ``lr_find`` took
621 s against 52 s with one thread. ``benchmarks/bench_threads.py`` measures the options;
its table is in ``docs/training.md``.

The count (:func:`choose_threads`), first that applies:

1. the count asked for: ``--threads N`` on the command line, ``set_threads(N)`` in Python;
2. ``OMP_NUM_THREADS`` when it is set (``torchrun`` sets it to 1 for every process);
3. the free cores: the usable cores (:func:`usable_cores`: the CPUs this process may run on,
   a container's CPU quota, physical cores rather than hyper-threads) minus the other work
   (:func:`busy_cpus`), rounded, shared by the processes of one job (``torchrun``'s processes
   on this machine, ``prepare``'s jobs) after one core per DataLoader worker; never less
   than 1.

The other work is the 1-minute load average, unless that says half a core or more while the
usable CPUs, measured over the next :data:`SAMPLE_SECONDS` (``/proc/stat``; this process
sleeps meanwhile), did less than :data:`IDLE_CPUS` of work: then the measurement. The average
lags a minute behind: right after ``pip install`` it still counts the finished install, and on
some virtual machines it stays at 0.5-0.9 with nothing running (measured on the 2-core machine
this project is developed on: load average 0.84, CPUs 0.0 busy over 1 s). Trusting it there
ran the demo on one thread, 222 s against 153 s on two. Only a machine measured idle
overrules the average: a neighbour that merely paused during the measurement would otherwise
get spinning threads back, the tenfold slowdown above, while a needless thread less costs
about 1.5x.

And the wait (:func:`wants_passive_wait`): on a machine that is already busy (half a core or
more of other work) waiting OpenMP threads sleep (``OMP_WAIT_POLICY=PASSIVE``) instead of
spinning; on an idle machine OpenMP's own spin-then-sleep is kept, because sleeping costs
every parallel region a wake-up: the demo's epochs took 1.7x as long with two passive threads
on an idle 2-core machine (7.3 s against 4.3 s). OpenMP reads the policy once, when torch
loads, which is why it is set before anything imports torch: ``import fastai_sparse`` decides
from the load average alone (importing stays instant), and the command line (:func:`set_threads`
with ``wait=True``) decides again with the measured CPUs, replacing the import's choice but
never a value the user set. A Python program that wants it sets it before ``import torch``
(:func:`set_threads` cannot change it afterwards and says so in its line).

Every computing command takes ``--threads N`` (:func:`threads_option`) and prints one line
saying what it chose and why (``demo`` and ``train`` when their work starts, the others on
stderr when they finish, so that an error stays the only line); ``train`` records it in
``run.json`` and the demo in ``metrics.json`` (:func:`current`). In Python::

    import fastai_sparse
    print(fastai_sparse.set_threads())    # the policy; set_threads(1) for one thread

This module imports neither torch nor fastai at import time (the command line's ``--help``
stays fast): :func:`set_threads` imports torch when it applies the count.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import time
from dataclasses import asdict, dataclass

__all__ = [
    "PASSIVE",
    "ThreadChoice",
    "apply_wait_policy",
    "busy_cpus",
    "choose_threads",
    "current",
    "set_threads",
    "threads_option",
    "usable_cores",
    "wants_passive_wait",
]

PASSIVE = "PASSIVE"
#: The environment variables that decide the count and the wait, as OpenMP reads them.
ENV_THREADS, ENV_WAIT = "OMP_NUM_THREADS", "OMP_WAIT_POLICY"

#: Seconds over which :func:`busy_cpus` measures the CPUs when the load average says busy.
SAMPLE_SECONDS = 0.5
#: Work (in CPUs) under which a measured machine counts as idle whatever its load average.
IDLE_CPUS = 0.25

_current: ThreadChoice | None = None
_env_set_by_us: str | None = None  # the OMP_NUM_THREADS value this module exported, if any
_wait_set_by_us = False  # whether this module exported OMP_WAIT_POLICY
_busy_seen: tuple[float, float | None, float | None] | None = None  # (when, load, busy)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class ThreadChoice:
    """What :func:`choose_threads` decided.

    threads: torch's intra-op thread count for this process; source: ``"asked"`` (an explicit
    count), ``"env"`` (``OMP_NUM_THREADS``) or ``"policy"`` (the free cores); reason: why, in
    words; cores / cores_why: the usable cores and how they were counted; load: the 1-minute
    load average read (None where the system has none); workers: DataLoader workers
    (one thread each) and processes: processes of the job sharing the cores; passive: whether
    OpenMP's waiting threads sleep (``OMP_WAIT_POLICY=PASSIVE``) in this process; busy: the
    other work the policy counted in CPUs (:func:`busy_cpus`; the load average unless the
    CPUs were measured idle).
    """

    threads: int
    source: str
    reason: str
    cores: int
    cores_why: str
    load: float | None
    workers: int = 0
    processes: int = 1
    passive: bool = False
    busy: float | None = None

    @property
    def line(self) -> str:
        """The one line a command prints: ``threads: 1 of 2 cores (...); --threads N to choose``."""
        wait = "waiting threads sleep" if self.passive else "waiting threads spin"
        how = "" if self.source == "asked" else "; --threads N to choose"
        return f"threads: {self.threads} of {_plural(self.cores, 'core')} ({self.reason}; {wait}){how}"

    def __str__(self) -> str:
        return self.line

    def as_dict(self) -> dict:
        """The record written to ``run.json`` / ``metrics.json``."""
        return {**asdict(self), "line": self.line}


# -- counting cores --------------------------------------------------------------------------
def _allowed_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return list(range(os.cpu_count() or 1))


def _physical_cores(cpus: list[int]) -> int | None:
    """Distinct (package, core) pairs among ``cpus`` (Linux sysfs); None when unknown."""
    seen = set()
    for c in cpus:
        base = f"/sys/devices/system/cpu/cpu{c}/topology"
        try:
            with open(f"{base}/core_id") as f:
                core = f.read().strip()
            with open(f"{base}/physical_package_id") as f:
                pkg = f.read().strip()
        except OSError:
            return None
        seen.add((pkg, core))
    return len(seen) or None


def _cgroup_quota() -> float | None:
    """The CPU quota of this process's cgroup in cores (cgroup v2 ``cpu.max``, v1
    ``cpu.cfs_quota_us``); None without a quota."""
    candidates = []
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                parts = line.strip().split(":", 2)
                if len(parts) == 3 and (parts[1] == "" or "cpu" in parts[1].split(",")):
                    candidates.append(parts[2])
    except OSError:
        return None
    for rel in candidates:
        for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"):
            path = os.path.join(root, rel.lstrip("/"))
            try:
                with open(os.path.join(path, "cpu.max")) as f:
                    quota, period = f.read().split()[:2]
                if quota != "max":
                    return int(quota) / int(period)
                return None
            except (OSError, ValueError):
                pass
            try:
                with open(os.path.join(path, "cpu.cfs_quota_us")) as f:
                    quota = int(f.read())
                with open(os.path.join(path, "cpu.cfs_period_us")) as f:
                    period = int(f.read())
                return quota / period if quota > 0 else None
            except (OSError, ValueError):
                pass
    return None


def usable_cores() -> tuple[int, str]:
    """``(cores, how they were counted)``: the CPUs this process may run on (affinity), as
    physical cores (hyper-threads of one core share its arithmetic units), capped by a
    container's CPU quota."""
    cpus = _allowed_cpus()
    n, why = len(cpus), f"{_plural(len(cpus), 'CPU')} allowed"
    phys = _physical_cores(cpus)
    if phys is not None and phys < n:
        n, why = phys, f"{why}, {_plural(phys, 'physical core')}"
    quota = _cgroup_quota()
    if quota is not None and math.ceil(quota) < n:
        n, why = max(1, math.ceil(quota)), f"{why}, CPU quota {quota:g}"
    return max(1, n), why


def _load() -> float | None:
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def _read_stat() -> str | None:
    try:
        with open("/proc/stat") as f:
            return f.read()
    except OSError:
        return None


def _cpu_ticks(stat: str, cpus: list[int]) -> dict[int, tuple[int, int]]:
    """``{cpu: (idle, total)}`` clock ticks since boot of those of ``cpus`` that ``stat`` (the
    text of ``/proc/stat``) lists. Fields: user nice system idle iowait irq softirq steal
    (guest time is already inside user and nice); iowait counts as idle, steal as busy."""
    want, out = {f"cpu{c}": c for c in cpus}, {}
    for line in stat.splitlines():
        parts = line.split()
        if len(parts) < 9 or parts[0] not in want:
            continue
        try:
            ticks = [int(v) for v in parts[1:9]]
        except ValueError:
            continue
        out[want[parts[0]]] = (ticks[3] + ticks[4], sum(ticks))
    return out


def _busy_between(before: str, after: str, cpus: list[int]) -> float | None:
    """CPUs' worth of work on ``cpus`` between two readings of ``/proc/stat``; None unless
    every one of them is in both with time elapsed (a container may renumber or hide them)."""
    a, b = _cpu_ticks(before, cpus), _cpu_ticks(after, cpus)
    if not cpus or any(c not in a or c not in b or b[c][1] <= a[c][1] for c in cpus):
        return None
    return sum(1.0 - (b[c][0] - a[c][0]) / (b[c][1] - a[c][1]) for c in cpus)


def _measured_busy(seconds: float) -> float | None:
    """CPUs' worth of work done on the usable CPUs over ``seconds`` while this process sleeps
    (Linux ``/proc/stat``); None where it cannot be measured."""
    cpus, before = _allowed_cpus(), _read_stat()
    if before is None:
        return None
    time.sleep(seconds)
    after = _read_stat()
    return None if after is None else _busy_between(before, after, cpus)


def busy_cpus(measure: bool = True) -> tuple[float | None, float | None]:
    """``(load average, other work in CPUs)``: the 1-minute load average, and what the policy
    counts as busy: the load average, or, when it says half a core or more, ``measure`` is
    set and the CPUs measured over :data:`SAMPLE_SECONDS` did less than :data:`IDLE_CPUS` of
    work, that measurement. A measurement is reused for 10 s (the command line asks twice: for
    the wait, then the count)."""
    global _busy_seen
    load = _load()
    if load is None or load < 0.5 or not measure:
        return load, load
    now = time.monotonic()
    if _busy_seen is not None and now - _busy_seen[0] < 10.0:
        return _busy_seen[1], _busy_seen[2]
    seen = _measured_busy(SAMPLE_SECONDS)
    busy = seen if seen is not None and seen < IDLE_CPUS else load
    _busy_seen = (now, load, busy)
    return load, busy


def _local_processes() -> int:
    """Processes of one ``torchrun`` job on this machine (``LOCAL_WORLD_SIZE``), else 1."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def _passive() -> bool:
    return os.environ.get(ENV_WAIT, "").strip().upper() == PASSIVE


def wants_passive_wait(load: float | None = None, measure: bool = True) -> bool:
    """Whether waiting OpenMP threads should sleep: when the other work (``load``, default:
    :func:`busy_cpus`, measuring the CPUs when ``measure``) takes half a core or more, or
    cannot be read. On a busy machine a spinning thread waits for one that is not running
    (tenfold slower steps, see the module docstring); on an idle one sleeping only adds
    wake-ups."""
    if load is None:
        load = busy_cpus(measure)[1]
    return load is None or load >= 0.5


def apply_wait_policy(measure: bool = True) -> None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` when :func:`wants_passive_wait`, or clear the one this
    module set earlier when it no longer does; nothing once torch is loaded (too late) or when
    the user set the variable. ``import fastai_sparse`` passes ``measure=False`` (the load
    average alone: importing does not wait)."""
    global _wait_set_by_us
    ours = _wait_set_by_us and os.environ.get(ENV_WAIT) == PASSIVE
    if "torch" in sys.modules or (ENV_WAIT in os.environ and not ours):
        return
    if wants_passive_wait(measure=measure):
        os.environ[ENV_WAIT], _wait_set_by_us = PASSIVE, True
    elif ours:
        del os.environ[ENV_WAIT]
        _wait_set_by_us = False


# -- the policy ------------------------------------------------------------------------------
def choose_threads(
    requested: int | None = None,
    workers: int = 0,
    processes: int | None = None,
    *,
    load: float | None = None,
    cores: int | None = None,
) -> ThreadChoice:
    """The thread count for this process (see the module docstring); nothing is applied.

    requested: an explicit count (``--threads``); workers: DataLoader worker processes (each
    computes with one thread); processes: processes of the job sharing the cores (default:
    ``torchrun``'s local world size, else 1); load, cores: the load average and usable cores to
    use instead of reading them (tests, benchmarks).
    """
    if requested is not None and int(requested) < 1:
        from .errors import OptionError

        raise OptionError(f"threads: {requested} threads; expected 1 or more")
    if cores is None:
        cores, cores_why = usable_cores()
    else:
        cores_why = "given"
    given = load is not None
    if not given:
        load = _load()
    processes = _local_processes() if processes is None else max(1, int(processes))
    workers = max(0, int(workers or 0))
    common = dict(
        cores=cores,
        cores_why=cores_why,
        load=load,
        workers=workers,
        processes=processes,
        passive=_passive(),
        busy=load,
    )
    if requested is not None:
        n = int(requested)
        note = " (more than the cores: they will take turns)" if n * processes + workers > cores else ""
        return ThreadChoice(n, "asked", f"asked for {n}{note}", **common)
    env = os.environ.get(ENV_THREADS, "").strip()
    if env and env != _env_set_by_us:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n >= 1:
            return ThreadChoice(n, "env", f"{ENV_THREADS}={env}", **common)
    # measured only when the waits spin: a count raised by the measurement next to threads that
    # sleep (an inherited or the user's PASSIVE, or torch loaded with it) is the slow pairing.
    # The load average and the work counted come from one reading, so the line agrees with both
    busy = load
    if not given and not _passive():
        load, busy = busy_cpus()
    common.update(load=load, busy=busy)
    free = max(0, cores - (0 if busy is None else int(busy + 0.5)))
    n = max(1, (free - workers) // processes)
    parts = [f"load average {load:.1f}" if load is not None else "no load average on this system"]
    if load is not None and busy is not None and busy < load:
        parts[0] += f" but the CPUs idle over {SAMPLE_SECONDS:g} s ({busy:.1f} busy)"
    if load is not None:
        parts[0] += f" leave{'s' if busy == load else ''} {_plural(free, 'core') if free else 'none'} free"
    if workers:
        parts.append(f"DataLoader workers take {workers}")
    if processes > 1:
        parts.append(f"shared by {processes} processes")
    return ThreadChoice(n, "policy", ", ".join(parts), **common)


def current() -> ThreadChoice:
    """The choice in effect in this process: the last :func:`set_threads`, else a description of
    torch's own setting (``OMP_NUM_THREADS`` or torch's default)."""
    if _current is not None:
        return _current
    import torch

    cores, cores_why = usable_cores()
    n = int(torch.get_num_threads())
    env = os.environ.get(ENV_THREADS)
    source, reason = ("env", f"{ENV_THREADS}={env}") if env else ("torch", "torch's default")
    load = _load()
    return ThreadChoice(n, source, reason, cores, cores_why, load, passive=_passive(), busy=load)


def set_threads(
    n: int | None = None, workers: int = 0, processes: int | None = None, *, wait: bool = False
) -> ThreadChoice:
    """Choose torch's thread count (:func:`choose_threads`: ``n`` when given, else the policy)
    and apply it; returns the choice (``print`` it for the one line; :func:`current` later).

    Before torch is loaded the count goes to ``OMP_NUM_THREADS`` (torch reads it when it
    loads) and, with ``wait=True`` (what the command line does) or when this module set the
    wait at import, :func:`apply_wait_policy`; once torch is loaded the count goes to
    ``torch.set_num_threads`` and the wait policy can no longer change.
    """
    global _current, _env_set_by_us
    if wait or _wait_set_by_us:  # the wait this module set follows the count's measurement
        apply_wait_policy()
    choice = choose_threads(n, workers, processes)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(choice.threads)
    else:
        os.environ[ENV_THREADS] = _env_set_by_us = str(choice.threads)
    _current = choice
    return choice


# -- the command-line option -----------------------------------------------------------------
THREADS_HELP = "CPU threads torch computes with [default: the cores other work leaves free]."


def threads_option(workers: str | None = None, processes: str | None = None, announce: bool = True):
    """Decorator adding ``--threads N`` to a click command that computes: before the command
    runs, the thread count is chosen (``N``, or the policy) and applied (:func:`set_threads`,
    with the passive wait).

    workers: the name of the command's parameter holding its DataLoader workers; processes:
    the name of the one holding its worker processes that share the cores (``prepare --jobs``).
    announce: print the choice's line on stderr when the command has finished (an error stays
    the only line); pass False when the command says it itself once its work starts (``demo``,
    ``train``: :func:`current`). Place the decorator directly above the function (the option is
    then listed last).
    """
    import click

    def decorate(func):
        @functools.wraps(func)
        def command(*args, **kwargs):
            n = kwargs.pop("threads", None)
            w = (kwargs.get(workers) or 0) if workers else 0
            p = (kwargs.get(processes) or 1) if processes else None
            choice = set_threads(n, w, p, wait=True)
            result = func(*args, **kwargs)
            if announce:
                click.echo(choice.line, err=True)
            return result

        return click.option(
            "--threads",
            "threads",
            type=click.IntRange(min=1),
            default=None,
            metavar="N",
            help=THREADS_HELP,
        )(command)

    return decorate
