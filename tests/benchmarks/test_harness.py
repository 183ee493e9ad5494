"""The benchmark harness: interleaving, paired ratios, physical limits, the JSON schema."""

from __future__ import annotations

import json

import pytest

from fastai_sparse.errors import FastaiSparseError


def test_interleave_rotates_the_order_and_times_every_row(harness):
    calls = []
    rows = {n: (lambda n=n: calls.append(n)) for n in "abc"}
    ticks = iter(range(1000))
    out = harness.interleave(rows, repeat=4, warmup=1, clock=lambda: next(ticks))
    assert calls[:3] == ["a", "b", "c"]  # the warm-up round
    assert calls[3:] == list("abcbcacababc")
    assert {n: len(s) for n, s in out.items()} == {"a": 4, "b": 4, "c": 4}
    assert all(v == 1 for s in out.values() for v in s)  # one tick per call


def test_paired_ratio_is_the_median_of_per_round_ratios(harness):
    load = {"group": "g"}
    a = harness.Timing("a", [2.0, 10.0, 3.0], load=load)
    b = harness.Timing("b", [1.0, 10.0, 1.0], load=load)
    # per round 2, 1, 3 -> median 2 (the ratio of medians would be 3 / 1 = 3)
    assert harness.paired_ratio(a, b) == 2.0
    c = harness.Timing("c", [1.0, 1.0, 1.0], load={"group": "other"})
    assert harness.paired_ratio(a, c) == 3.0  # different groups: ratio of medians
    assert harness.paired_ratio(6.0, 3.0) == 2.0


def test_ratio_below_the_physical_limit_is_rejected_not_recorded(harness, tmp_path, capsys):
    bench = harness.Bench("unit", "test", out=tmp_path / "unit.json")
    load = {"group": "g"}
    ours = harness.Timing("ours", [0.7, 0.72, 0.71], load=load)
    limit = harness.Timing("gemm", [1.0, 1.0, 1.0], load=load)
    assert bench.figure("fast", ours, baseline=limit, limit=1.0, readme=True) is None
    assert bench.figures == []
    assert len(bench.rejected) == 1 and "below the physical limit 1.0" in bench.rejected[0]["rejected"]
    assert "REJECTED" in capsys.readouterr().err
    strict = harness.Bench("unit", "test", strict=True, out=tmp_path / "s.json")
    with pytest.raises(harness.PhysicalLimitError, match="below the physical limit") as e:
        strict.figure("fast", ours, baseline=limit, limit=1.0)
    assert isinstance(e.value, FastaiSparseError)


def test_json_schema_round_trip(harness, tmp_path):
    bench = harness.Bench("unit", "a unit test", out=tmp_path / "unit.json")
    t = bench.time({"base": lambda: None, "ours": lambda: None}, repeat=3, group="noop")
    rec = bench.figure(
        "ours",
        t["ours"],
        baseline=t["base"],
        baseline_label="nothing",
        target=1e9,
        label="no-op",
        readme=True,
    )
    bench.figure("miou", 0.9, "", baseline=0.1, baseline_label="chance", target=2.0, higher_is_better=True)
    path = bench.write()
    data = json.loads(path.read_text())
    assert data["schema"] == harness.SCHEMA and data["benchmark"] == "unit" and not data["quick"]
    for k in ("python", "cpu_model", "cpu_count", "torch"):
        assert data["environment"][k]
    assert len(data["load_before"]) == 3 and len(data["load_after"]) == 3
    f, g = data["figures"]
    assert f == rec and f["unit"] == "ms" and len(f["samples_ms"]) == 3 and f["readme"]
    assert f["load"]["group"] == "noop" and f["threads"] >= 1 and f["meets_target"]
    assert g["ratio"] == 9.0 and g["meets_target"] and g["target_op"] == ">="
    assert not (tmp_path / "unit.json.tmp").exists()


def test_quick_results_go_to_their_own_folder(harness):
    assert harness.Bench("x", "y", quick=True).out == harness.QUICK_RESULTS / "x.json"
    assert harness.Bench("x", "y").out == harness.RESULTS / "x.json"


def test_peak_rss_delta_sees_torch_allocations(harness):
    torch = pytest.importorskip("torch")
    if not harness.reset_peak_rss():
        pytest.skip("/proc/self/clear_refs is not writable here")

    def alloc():
        x = torch.ones(64 * 2**20 // 4)  # 64 MB, touched
        return float(x[-1])

    r = harness.peak_rss_delta_mb(alloc)
    assert 56 <= r["peak_rss_delta_mb"] <= 200, r


def test_zero_baseline_records_no_ratio(harness, tmp_path):
    bench = harness.Bench("unit", "test", out=tmp_path / "unit.json")
    rec = bench.figure("map", 0.4, baseline=0.0, baseline_label="a baseline scoring 0", higher_is_better=True)
    assert rec["ratio"] is None and rec["baseline"]["value"] == 0.0 and bench.figures == [rec]


def test_machine_state(harness, monkeypatch):
    monkeypatch.setattr(harness.os, "cpu_count", lambda: 2)
    load = lambda a, b: {"before": [a, 0, 0], "after": [b, 0, 0]}  # noqa: E731
    assert harness.machine_state(load(2.1, 1.9), 2) == "quiet"  # our own two threads
    assert harness.machine_state(load(1.2, 1.0), 1) == "quiet"
    assert harness.machine_state(load(2.0, 2.2), 1) == "busy"
    assert harness.machine_state(load(3.0, 4.0), 2) == "oversubscribed"
    assert harness.machine_state(None, 2) is None


def test_docs_example_runs(harness, tmp_path, monkeypatch, capsys):
    import re

    from .conftest import BENCH

    text = (BENCH.parent / "docs" / "benchmarks.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "Bench(" in b)
    monkeypatch.setattr(harness, "QUICK_RESULTS", tmp_path)
    monkeypatch.chdir(BENCH.parent)
    exec(compile(code, "docs/benchmarks.md", "exec"), {})
    data = json.loads((tmp_path / "mything.json").read_text())
    assert [f["name"] for f in data["figures"]] == ["step", "accuracy"]
    assert "my thing, one step" in capsys.readouterr().out
