"""Documentation stays true: the plugin-authoring page shows the example plugin verbatim, and
every hook is documented and exercised by a test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from fastai_sparse import hookspecs

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugin-authoring.md"
EXAMPLE = ROOT / "tests" / "example_plugin"


def code_blocks(text: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"```[a-z]*\n(.*?)```", text, flags=re.S)]


def test_plugin_authoring_page_matches_the_example_plugin():
    blocks = code_blocks(DOC.read_text())
    for path in ["pyproject.toml", "src/fastai_sparse_example/__init__.py", "test_example_plugin.py"]:
        source = (EXAMPLE / path).read_text()
        assert source in blocks, f"docs/plugin-authoring.md no longer shows {path} verbatim"


def test_every_hook_is_documented_with_its_signature():
    specs = [name for name in dir(hookspecs) if name.startswith("register_")]
    assert sorted(specs) == sorted([*hookspecs.HOOK_KINDS, "register_commands"])
    doc = DOC.read_text()
    for name in specs:
        func = getattr(hookspecs, name)
        assert func.__doc__ and len(func.__doc__) > 80, f"hookspec {name} needs a real docstring"
        params = list(inspect.signature(func).parameters)
        assert params == (["cli"] if name == "register_commands" else ["register"]), name
        assert f"`{name}`" in doc, f"docs/plugin-authoring.md does not mention {name}"


def test_every_hook_has_a_test():
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    tests += "\n".join(p.read_text() for p in (ROOT / "tests").rglob("plugin_factory.py"))
    for name in [*hookspecs.HOOK_KINDS, "register_commands"]:
        assert re.search(rf"\b{name}\b", tests.replace("test_docs", "")), f"no test exercises hook {name}"
