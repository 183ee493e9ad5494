"""A third-party plugin, pip-installed into a temporary folder, is found through its entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from fastai_sparse import plugins


def _cli(args, pythonpath, env_extra=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(pythonpath), os.environ.get("PYTHONPATH", "")])}
    env.update(env_extra or {})
    code = "import sys; from fastai_sparse.cli import main; sys.exit(main(sys.argv[1:], prog_name='fastai-sparse'))"
    return subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_installed_plugin_is_discovered_by_entry_point(example_plugin_on_path):
    names = [i.name for i in plugins.discover(None)]
    assert "example" in names
    example = next(i for i in plugins.discover(None) if i.name == "example")
    assert example.ok, example.error
    assert example.distribution == "fastai-sparse-example" and example.version == "0.1.0"
    assert example.hooks == ["register_datasets", "register_tasks"]


def test_env_var_chooses_which_plugins_load(example_plugin_on_path, monkeypatch):
    monkeypatch.setenv(plugins.ENV_PLUGINS, "none")
    assert [i.name for i in plugins.discover(plugins.selected_names())] == ["builtin"]
    monkeypatch.setenv(plugins.ENV_PLUGINS, "example")
    assert "example" in [i.name for i in plugins.discover(plugins.selected_names())]
    monkeypatch.setenv(plugins.ENV_PLUGINS, "someother")
    assert "example" not in [i.name for i in plugins.discover(plugins.selected_names())]


def test_cli_lists_the_installed_plugin_and_its_task(example_plugin_dir):
    proc = _cli(["plugins", "--json"], example_plugin_dir)
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["example"]["ok"], rows["example"]["error"]
    assert rows["example"]["registered"] == {"dataset": ["example-blobs"], "task": ["example-blobs-seg"]}
    proc = _cli(["tasks", "example-*", "--json"], example_plugin_dir)
    assert [r["name"] for r in json.loads(proc.stdout)] == ["example-blobs-seg"]
    proc = _cli(["tasks", "example-*", "--json"], example_plugin_dir, {plugins.ENV_PLUGINS: "none"})
    assert json.loads(proc.stdout) == []


def test_two_distributions_with_one_entry_point_name_are_reported(
    example_plugin_dir, tmp_path, monkeypatch, fresh_registry
):
    # a second distribution claiming the entry-point name "example"
    dist = tmp_path / "fastai_sparse_clash-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fastai-sparse-clash\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[fastai_sparse]\nexample = json\n")
    monkeypatch.syspath_prepend(str(example_plugin_dir))
    monkeypatch.syspath_prepend(str(tmp_path))
    infos = [i for i in plugins.discover(None) if i.name == "example"]
    assert len(infos) == 2
    # neither is loaded: which one would win depends on sys.path order (issue 13)
    assert all(not i.ok and i.obj is None for i in infos)
    assert all("offered by 2 distributions" in i.error and "fastai-sparse-clash" in i.error for i in infos)
