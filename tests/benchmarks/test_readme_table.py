"""The README's benchmark table is generated from benchmarks/results/*.json."""

from __future__ import annotations

import json

import pytest

from .conftest import BENCH, load

ROOT = BENCH.parent


@pytest.fixture
def rt():
    return load("readme_table")


def test_readme_table_matches_the_results(rt):
    text = (ROOT / "README.md").read_text()
    want = rt.render_readme(text, rt.load_results())
    assert text == want, "README.md's benchmark table is out of date: run python benchmarks/readme_table.py"


def _result(harness, tmp_path, name, **kw):
    bench = harness.Bench(name, "unit", out=tmp_path / f"{name}.json", **kw)
    t = bench.time({"base": lambda: None, "ours": lambda: None}, repeat=2, group="g")
    bench.figure("shown", t["ours"], baseline=t["base"], baseline_label="nothing", label="a row", readme=True)
    bench.figure("hidden", 1.0, "s", label="not in the README")
    bench.figure("impossible", 0.5, baseline=1.0, limit=1.0)
    bench.write()


def test_rows_come_from_readme_figures_only(rt, harness, tmp_path):
    _result(harness, tmp_path, "engine")
    _result(harness, tmp_path, "zzz")
    res = rt.load_results(tmp_path)
    assert [r["benchmark"] for r in res] == ["engine", "zzz"]  # ORDER first, then by name
    table = rt.render_table(res)
    rows = [line for line in table.splitlines() if line.startswith("| engine") or line.startswith("| zzz")]
    assert len(rows) == 2 and all("a row" in r and "nothing:" in r for r in rows)
    assert "not in the README" not in table
    assert "1 figure(s) rejected" in table
    text = "# x\n\n<!-- benchmark-table -->\nold\n<!-- /benchmark-table -->\ntail\n"
    new = rt.render_readme(text, res)
    assert new.startswith("# x\n\n<!-- benchmark-table -->\n") and new.endswith(
        "<!-- /benchmark-table -->\ntail\n"
    )
    assert "old" not in new and rt.render_readme(new, res) == new


def test_bad_results_and_readme_are_named(rt, tmp_path):
    (tmp_path / "old.json").write_text(json.dumps({"machine": {}}))
    with pytest.raises(rt.ReadmeTableError, match=r"old\.json: field 'schema' is None"):
        rt.load_results(tmp_path)
    (tmp_path / "old.json").write_text(json.dumps({"schema": rt.SCHEMA, "benchmark": "x", "quick": True}))
    with pytest.raises(rt.ReadmeTableError, match="--quick result"):
        rt.load_results(tmp_path)
    with pytest.raises(rt.ReadmeTableError, match="exactly once"):
        rt.render_readme("no markers", [])


def test_check_mode_exit_status(rt, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- benchmark-table -->\n<!-- /benchmark-table -->\n")
    (tmp_path / "results").mkdir()
    args = ["--readme", str(readme), "--results", str(tmp_path / "results")]
    assert rt.main([*args, "--check"]) == 1
    assert rt.main(args) == 0
    assert rt.main([*args, "--check"]) == 0
