"""The thread policy: the count chosen from cores, load, workers and processes; what a command
applies before torch loads; ``--threads`` on every command that computes."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from fastai_sparse import threads
from fastai_sparse.errors import OptionError


@pytest.fixture(autouse=True)
def _fresh_state(monkeypatch):
    """No remembered wait or CPU measurement from another test."""
    monkeypatch.setattr(threads, "_wait_set_by_us", False)
    monkeypatch.setattr(threads, "_busy_seen", None)


@pytest.fixture
def no_env(monkeypatch):
    """No OMP_NUM_THREADS from the test run (the suite sets it to 1) and no remembered choice."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "_env_set_by_us", None)
    monkeypatch.setattr(threads, "_current", None)


def _machine(monkeypatch, load, measured):
    """A load average of ``load`` and ``measured`` CPUs busy when measured (None: no /proc/stat)."""
    monkeypatch.setattr(threads, "_load", lambda: load)
    monkeypatch.setattr(threads, "_measured_busy", lambda seconds: measured)


@pytest.mark.parametrize(
    ("cores", "load", "workers", "processes", "expected"),
    [
        (2, 0.0, 0, 1, 2),  # idle: every core
        (2, 0.4, 0, 1, 2),  # less than half a core busy
        (2, 0.6, 0, 1, 1),  # one core busy (rounded)
        (2, 13.5, 0, 1, 1),  # far more work than cores: never less than one
        (8, 2.2, 0, 1, 6),
        (8, 0.0, 3, 1, 5),  # one core per DataLoader worker
        (8, 0.0, 0, 2, 4),  # two processes of one job share the free cores
        (8, 1.0, 1, 2, 3),  # (8 - 1 - 1) // 2
        (4, 0.0, 8, 1, 1),  # more workers than cores
    ],
)
def test_policy_counts_the_free_cores(no_env, cores, load, workers, processes, expected):
    c = threads.choose_threads(workers=workers, processes=processes, load=load, cores=cores)
    assert (c.threads, c.source) == (expected, "policy")
    assert c.threads * c.processes + c.workers <= max(cores, c.processes + c.workers)


def test_asked_and_environment_come_first(no_env, monkeypatch):
    c = threads.choose_threads(3, load=0.0, cores=2)
    assert (c.threads, c.source) == (3, "asked") and "take turns" in c.reason
    assert "--threads N to choose" not in c.line  # the user chose already
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    c = threads.choose_threads(load=0.0, cores=8)
    assert (c.threads, c.source, c.reason) == (1, "env", "OMP_NUM_THREADS=1")
    assert threads.choose_threads(2, load=0.0, cores=8).threads == 2
    with pytest.raises(OptionError, match="0 threads; expected 1 or more"):
        threads.choose_threads(0)


def test_the_line_says_what_and_why(no_env):
    c = threads.choose_threads(load=13.5, cores=2)
    assert c.line.startswith("threads: 1 of 2 cores (load average 13.5 leaves none free")
    assert c.line.endswith("; --threads N to choose")
    c = threads.choose_threads(load=0.0, cores=1, workers=1)
    assert "1 of 1 core (" in c.line and "DataLoader workers take 1" in c.line
    record = c.as_dict()
    assert record["threads"] == 1 and record["line"] == c.line and json.dumps(record)


def test_set_threads_applies_the_count_to_torch(no_env):
    import torch

    before = torch.get_num_threads()
    try:
        c = threads.set_threads(1)
        assert torch.get_num_threads() == 1 and threads.current() is c
        assert "OMP_NUM_THREADS" not in os.environ  # torch was loaded: no environment change
    finally:
        torch.set_num_threads(before)


def test_usable_cores_follow_the_affinity():
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this system")
    code = (
        "import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
        "from fastai_sparse.threads import usable_cores; print(usable_cores()[0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


#: A command as a plugin writes one; it reports what torch runs with, and whether torch had
#: been loaded and the wait policy set before its body ran.
PROBE = """
import json, os, sys
import click
from fastai_sparse.cli import main
from fastai_sparse.threads import threads_option

@main.command("probe")
@click.option("--workers", type=int, default=0)
@threads_option(workers="workers")
def probe(workers):
    loaded = "torch" in sys.modules
    wait = os.environ.get("OMP_WAIT_POLICY")
    import torch
    click.echo(json.dumps({"loaded_before": loaded, "wait": wait, "threads": torch.get_num_threads()}))

main(sys.argv[1:], prog_name="fastai-sparse")
"""


def probe(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    return subprocess.run(
        [sys.executable, "-c", PROBE, "probe", *args],
        capture_output=True,
        text=True,
        env={**e, **(env or {})},
    )


def test_a_command_applies_the_count_and_the_passive_wait_before_torch_loads():
    res = probe("--threads", "1")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    # the passive wait is set on a busy machine only (test_the_wait_sleeps_only_on_a_busy_machine);
    # either way the line says which one torch got
    assert out["loaded_before"] is False and out["threads"] == 1 and out["wait"] in ("PASSIVE", None)
    assert ("waiting threads sleep" in res.stderr) == (out["wait"] == "PASSIVE")
    first = res.stderr.splitlines()[0]
    assert first.startswith("threads: 1 of ") and "(asked for 1" in first
    # without --threads: the policy, and the line says which count it chose
    res = probe()
    out = json.loads(res.stdout)
    assert f"threads: {out['threads']} of " in res.stderr and "load average" in res.stderr
    # the user's own settings are kept
    res = probe(env={"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "ACTIVE"})
    out = json.loads(res.stdout)
    assert out["threads"] == 1 and out["wait"] == "ACTIVE" and "OMP_NUM_THREADS=1" in res.stderr
    assert "waiting threads spin" in res.stderr
    bad = probe("--threads", "0")
    assert bad.returncode == 2 and "--threads" in bad.stderr


def test_dataloader_workers_take_cores_from_the_command(no_env, monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: (4, "4 CPUs allowed"))
    monkeypatch.setattr(threads, "_load", lambda: 0.0)
    seen = {}

    @click.command()
    @click.option("--workers", type=int, default=0)
    @threads.threads_option(workers="workers")
    def cmd(workers):
        seen["workers"] = workers

    import torch

    before = torch.get_num_threads()
    try:
        res = CliRunner().invoke(cmd, ["--workers", "3"])
        assert res.exit_code == 0, res.output
        assert seen == {"workers": 3} and torch.get_num_threads() == 1
        assert (
            "threads: 1 of 4 cores (load average 0.0 leaves 4 cores free, DataLoader workers take 3"
            in res.stderr
        )
    finally:
        torch.set_num_threads(before)


def _commands(group: click.Group, ctx: click.Context, prefix: str = "") -> dict[str, click.Command]:
    out = {}
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            out.update(_commands(cmd, ctx, f"{prefix}{name} "))
        else:
            out[f"{prefix}{name}"] = cmd
    return out


def test_every_command_that_computes_takes_threads():
    from fastai_sparse.cli import main

    cmds = _commands(main, click.Context(main))
    computing = {"demo", "train", "predict", "prepare"}
    plugin_computing = {"classify", "shapenet predict", "semantickitti predict"}
    for name in computing | (plugin_computing & set(cmds)):
        opts = {o for p in cmds[name].params for o in getattr(p, "opts", [])}
        assert "--threads" in opts, f"`fastai-sparse {name}` has no --threads"
    for name in ("tasks", "plugins", "list"):
        assert "--threads" not in {o for p in cmds[name].params for o in getattr(p, "opts", [])}


def test_the_wait_sleeps_only_on_a_busy_machine(monkeypatch):
    assert threads.wants_passive_wait(load=0.0) is False
    assert threads.wants_passive_wait(load=0.49) is False
    assert threads.wants_passive_wait(load=0.5) is True
    assert threads.wants_passive_wait(load=13.0) is True
    monkeypatch.setattr(threads, "_load", lambda: None)  # no load average: the safe choice
    assert threads.wants_passive_wait() is True
    # applied before torch loads, never over the user's own value; a load average the CPUs
    # contradict (a finished pip install, an idle virtual machine) gives way to the measurement
    for load, measured, expect in (
        (0.1, 2.0, None),  # under half a core: not measured at all
        (1.5, 1.2, "PASSIVE"),
        (1.5, 0.3, "PASSIVE"),  # not idle: a neighbour may only have paused
        (1.5, 0.0, None),
        (1.5, None, "PASSIVE"),  # nothing to measure with: the load average
    ):
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)  # a fresh process each time
        monkeypatch.setattr(threads, "_busy_seen", None)
        monkeypatch.setattr(threads, "_wait_set_by_us", False)
        _machine(monkeypatch, load, measured)
        monkeypatch.delitem(sys.modules, "torch", raising=False)  # restored after the test
        threads.apply_wait_policy()
        assert os.environ.get("OMP_WAIT_POLICY") == expect, (load, measured)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    threads.apply_wait_policy()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_import_uses_the_load_average_and_the_command_line_measures(monkeypatch):
    """``import fastai_sparse`` decides from the average alone; the command line measures and
    replaces that choice (and only that one) before torch loads."""
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    _machine(monkeypatch, 0.84, 0.0)  # the development machine, idle
    threads.apply_wait_policy(measure=False)
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    threads.apply_wait_policy()
    assert "OMP_WAIT_POLICY" not in os.environ and threads._wait_set_by_us is False
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # the user's own: kept
    threads.apply_wait_policy()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


def test_the_count_follows_the_measured_cpus(no_env, monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: (2, "2 CPUs allowed"))
    monkeypatch.setattr(threads, "_passive", lambda: False)
    _machine(monkeypatch, 0.84, 0.04)
    c = threads.choose_threads()
    assert (c.threads, c.load, c.busy) == (2, 0.84, 0.04)
    assert "load average 0.8 but the CPUs idle over 0.5 s (0.0 busy) leave 2 cores free" in c.line
    monkeypatch.setattr(threads, "_busy_seen", None)
    _machine(monkeypatch, 0.84, 0.3)  # not idle: the average is kept
    c = threads.choose_threads()
    assert (c.threads, c.busy) == (1, 0.84) and "load average 0.8 leaves 1 core free" in c.line
    # a load average that moves between two readings: the line names the one that was counted
    monkeypatch.setattr(threads, "_busy_seen", None)
    readings = itertools.chain([0.84], itertools.repeat(0.64))
    monkeypatch.setattr(threads, "_load", lambda: next(readings))
    c = threads.choose_threads()
    assert c.busy == c.load and "CPUs idle" not in c.line
    assert f"load average {c.load:.1f} leaves 1 core free" in c.line
    # torch loaded with sleeping waits: the wait cannot follow, so the count keeps the average
    monkeypatch.setattr(threads, "_busy_seen", None)
    monkeypatch.setattr(threads, "_passive", lambda: True)

    def must_not_measure(seconds):
        raise AssertionError("measured although the wait can no longer change")

    monkeypatch.setattr(threads, "_measured_busy", must_not_measure)
    assert threads.choose_threads().threads == 1
    assert threads.choose_threads(2).threads == 2  # asked for: nothing to measure either


#: Two readings of /proc/stat 1 s apart (100 ticks per CPU): cpu0 spent 60 ticks in user, 10
#: in iowait, 20 idle and 10 stolen by the hypervisor; cpu1 was idle; guest time (the last two
#: fields) is already inside user.
STAT_BEFORE = """cpu  300 0 100 2000 50 0 0 10 40 0
cpu0 200 0 50 1000 25 0 0 5 40 0
cpu1 100 0 50 1000 25 0 0 5 0 0
intr 12345
"""
STAT_AFTER = """cpu  360 0 100 2120 60 0 0 20 70 0
cpu0 260 0 50 1020 35 0 0 15 70 0
cpu1 100 0 50 1100 25 0 0 5 0 0
intr 12399
"""


def test_the_cpu_measurement_reads_proc_stat_fields():
    # cpu0: 60 user + 10 steal busy, 20 idle + 10 iowait idle, of 100 ticks; cpu1: idle
    assert threads._busy_between(STAT_BEFORE, STAT_AFTER, [0]) == pytest.approx(0.7)
    assert threads._busy_between(STAT_BEFORE, STAT_AFTER, [1]) == pytest.approx(0.0)
    assert threads._busy_between(STAT_BEFORE, STAT_AFTER, [0, 1]) == pytest.approx(0.7)
    # a CPU the file does not list (a container renumbering them), or no time elapsed: unknown
    assert threads._busy_between(STAT_BEFORE, STAT_AFTER, [0, 2]) is None
    assert threads._busy_between(STAT_BEFORE, STAT_BEFORE, [0]) is None
    assert threads._cpu_ticks("cpu0 1 2 3\ncpu1 x 0 0 0 0 0 0 0\n", [0, 1]) == {}
    live = threads._read_stat()
    if live is not None:  # Linux: the real file parses for every CPU this process may use
        assert set(threads._cpu_ticks(live, threads._allowed_cpus())) == set(threads._allowed_cpus())
