"""Plugins use core's public API only (defined in the docstring of ``fastai_sparse/__init__.py``).

Every Python file of every plugin (the plugins in this repository, the example third-party
plugin, and any other installed distribution with a ``fastai_sparse`` entry point) is parsed
and each reference to core is checked: ``import fastai_sparse.X``, ``from fastai_sparse.X
import y``, ``from fastai_sparse import y`` and ``"fastai_sparse.X:y"`` factory strings.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from importlib import metadata
from pathlib import Path

import pytest

import fastai_sparse

ROOT = Path(__file__).resolve().parents[2]
FACTORY_STRING = re.compile(r"^(fastai_sparse(?:\.[A-Za-z_][\w.]*)?):([A-Za-z_][\w.]*)$")


def private_references(source: str) -> list[str]:
    """Each reference of ``source`` to a non-public part of core, as ``"line N: what"``."""
    public_modules = fastai_sparse._PUBLIC_MODULES
    public_names = set(fastai_sparse.__all__) | set(fastai_sparse._SUBMODULES)

    def check(line: int, module: str, name: str | None) -> list[str]:
        where = f"line {line}: {module}" + (f".{name}" if name else "")
        if module == "fastai_sparse":
            if name is not None and name != "*" and name not in public_names:
                return [f"{where} (not in fastai_sparse.__all__)"]
            return []
        rel = module.removeprefix("fastai_sparse.")
        if rel not in public_modules:
            return [f"{where} (fastai_sparse.{rel} is not a public module)"]
        if name is not None and name.startswith("_"):
            return [f"{where} (a private name)"]
        return []

    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "fastai_sparse":
                for alias in node.names:
                    found += check(node.lineno, node.module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "fastai_sparse":
                    found += check(node.lineno, alias.name, None)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            m = FACTORY_STRING.match(node.value)
            if m:
                found += check(node.lineno, m.group(1), m.group(2).split(".")[0])
    return found


def plugin_sources() -> dict[str, Path]:
    """Package folder of every plugin: this repository's, the example plugin, installed ones."""
    dirs = {p.parent.name: p.parent for p in ROOT.glob("plugins/*/src/*/__init__.py")}
    dirs.update({p.parent.name: p.parent for p in ROOT.glob("tests/example_plugin/src/*/__init__.py")})
    for ep in metadata.entry_points(group="fastai_sparse"):
        top = ep.value.split(":")[0].split(".")[0]
        if top in dirs or top == "fastai_sparse":
            continue
        spec = importlib.util.find_spec(top)
        if spec is not None and spec.submodule_search_locations:
            dirs[top] = Path(next(iter(spec.submodule_search_locations)))
    return dirs


PLUGINS = plugin_sources()


def test_the_scan_finds_the_plugins_of_this_repository():
    assert {"fastai_sparse_scannet", "fastai_sparse_shapenet", "fastai_sparse_classification"} <= set(PLUGINS)


@pytest.mark.parametrize("package", sorted(PLUGINS))
def test_plugin_imports_only_public_core_api(package):
    bad = []
    for path in sorted(PLUGINS[package].rglob("*.py")):
        bad += [
            f"{path.relative_to(PLUGINS[package].parent)}: {r}" for r in private_references(path.read_text())
        ]
    assert not bad, "plugins must use core's public API only:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from fastai_sparse import Task, hookimpl", []),
        ("from fastai_sparse import transforms as T", []),
        ("from fastai_sparse.transforms.points import RandomFlip", []),
        ("import fastai_sparse.engine.backends", []),
        ("from fastai_sparse.builtin.synthetic import SyntheticParts", ["fastai_sparse.builtin.synthetic"]),
        ("from fastai_sparse.task import Task", ["fastai_sparse.task is not"]),
        ("from fastai_sparse.io.ply import read_ply", ["fastai_sparse.io.ply is not"]),
        ("from fastai_sparse.io import _atomic_path", ["a private name"]),
        ("from fastai_sparse import _LAZY", ["not in fastai_sparse.__all__"]),
        ("x = 'fastai_sparse.builtin.synthetic:SyntheticShapes'", ["fastai_sparse.builtin.synthetic"]),
        ("x = 'fastai_sparse.models:UNet'", []),
    ],
)
def test_the_scan_tells_public_from_private(source, expected):
    found = private_references(source)
    assert len(found) == len(expected), found
    for f, e in zip(found, expected):
        assert e in f


def test_every_public_module_imports():
    for rel in sorted(fastai_sparse._PUBLIC_MODULES):
        assert importlib.util.find_spec(f"fastai_sparse.{rel}") is not None, rel
