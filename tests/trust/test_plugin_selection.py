"""Plugin selection by name and entry-point name clashes: an unknown name in
FASTAI_SPARSE_PLUGINS is reported with a suggestion; two distributions offering one name are
both reported and neither is loaded; one distribution listed twice (an editable install's
egg-info next to its dist-info) is one plugin."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from fastai_sparse import plugins
from fastai_sparse.plugins import PluginLoadWarning, discover

MODULE = """
from fastai_sparse import hookimpl

@hookimpl
def register_metrics(register):
    pass
"""


def _distribution(root: Path, dist: str, version: str, ep_name: str, module: str, egg: bool = False) -> Path:
    """A minimal installed distribution in ``root`` (put ``root`` on sys.path)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(MODULE)
    meta = root / (
        f"{dist.replace('-', '_')}.egg-info" if egg else f"{dist.replace('-', '_')}-{version}.dist-info"
    )
    meta.mkdir()
    (meta / ("PKG-INFO" if egg else "METADATA")).write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n"
    )
    (meta / "entry_points.txt").write_text(f"[fastai_sparse]\n{ep_name} = {module}\n")
    return root


def test_two_distributions_with_one_name_are_both_reported_and_neither_loads(
    tmp_path, monkeypatch, fresh_registry
):
    monkeypatch.syspath_prepend(
        str(_distribution(tmp_path / "one", "clash-a", "1.0", "samename", "clash_a_mod"))
    )
    monkeypatch.syspath_prepend(
        str(_distribution(tmp_path / "two", "clash-b", "2.0", "samename", "clash_b_mod"))
    )
    infos = [i for i in discover({"samename"}) if i.name == "samename"]
    assert sorted(i.distribution for i in infos) == ["clash-a", "clash-b"]
    for i in infos:
        assert not i.ok and i.obj is None
        assert "offered by 2 distributions ('clash-a', 'clash-b'); none of them is loaded" in i.error


def test_an_editable_install_listed_twice_is_one_plugin(tmp_path, monkeypatch, fresh_registry):
    monkeypatch.syspath_prepend(
        str(_distribution(tmp_path / "src", "edit-me", "0.1", "editme", "edit_me_mod", egg=True))
    )
    monkeypatch.syspath_prepend(
        str(_distribution(tmp_path / "site", "edit_me", "0.1", "editme", "edit_me_mod2"))
    )
    infos = [i for i in discover({"editme"}) if i.name == "editme"]
    assert len(infos) == 1 and infos[0].ok, infos


def test_unknown_selected_name_warns_with_a_suggestion(monkeypatch, fresh_registry):
    pytest.importorskip("fastai_sparse_scannet")
    monkeypatch.setenv("FASTAI_SPARSE_PLUGINS", "scanet,shapenet")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        infos = plugins.discovered()
    [missing] = [i for i in infos if not i.installed]
    assert missing.name == "scanet" and missing.status == "NOT INSTALLED"
    assert "did you mean 'scannet'?" in missing.error
    assert any(issubclass(w.category, PluginLoadWarning) and "'scanet'" in str(w.message) for w in caught)
    assert "shapenet" in {i.name for i in infos if i.ok}


def test_cli_prints_library_warnings_as_one_line():
    """In a real process (pytest records warnings in-process): one ``Warning:`` line, no source line."""
    env = {**os.environ, "FASTAI_SPARSE_PLUGINS": "nosuchplugin"}
    proc = subprocess.run(
        [sys.executable, "-m", "fastai_sparse.cli", "tasks"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        "Warning: fastai-sparse plugin 'nosuchplugin' was skipped: FASTAI_SPARSE_PLUGINS names 'nosuchplugin', "
        "but no installed plugin has that name; check the name (installed: "
        + lines[0].split("(installed: ")[1]
    ]
