"""The plugin author's documentation stays true: its examples run, its messages are the ones users
get, its hook reference matches ``fastai_sparse.hookspecs``.

Pages: ``docs/plugin-authoring.md`` and the pages it leads to (:data:`PAGES`). Every ```python
block on them carries a check marker, an HTML comment on the line before the block:

``<!-- check: verbatim PATH -->``
    the block is the repository file PATH, character for character;
``<!-- check: module NAME -->``
    the block is written to ``NAME.py`` in a folder on ``sys.path`` (later blocks import it);
``<!-- check: plugin NAME -->``
    as ``module``, then ``check_plugin`` passes on it (its tasks built end to end);
``<!-- check: plugin-error NAME: TEXT -->``
    as ``module``, then ``check_plugin`` raises ConformanceError containing TEXT;
``<!-- check: pytest NAME -->``
    the block is a test file, ``test_NAME.py``, run by pytest in this process (the conformance
    kit's fixtures come from its ``pytest11`` entry point); every test in it must pass;
``<!-- check: run -->``
    executed in the page's namespace (shared by the page's ``run`` blocks) in a temporary
    folder, one torch thread;
``<!-- check: error TEXT -->``
    executed in that namespace, and raises an exception whose message contains TEXT;
``<!-- check: skip REASON -->``
    not executed (a fragment, or a shell command), with the reason.

A python block without a marker fails the test: nothing goes unchecked by accident.

The hook reference (``docs/hooks.md``) has one section per hook, headed by its exact signature
from ``hookspecs``, and every section's first plugin example implements that hook and registers
at least one object of the hook's kind (``register_commands``: adds a working command). So every
hook is exercised by running its documentation, not by finding its name in some test file.
"""

from __future__ import annotations

import importlib
import inspect
import linecache
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from fastai_sparse import hookspecs
from fastai_sparse.errors import ConformanceError

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
GUIDE = DOCS / "plugin-authoring.md"
PAGES = ["plugin-authoring.md", "hooks.md", "disk-datasets.md"]
HOOKS = [*hookspecs.HOOK_KINDS, "register_commands"]

MARKED = re.compile(r"<!-- check: (?P<check>.*?) -->\n```(?P<lang>[\w-]*)\n(?P<code>.*?)```", re.S)
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<code>.*?)^```", re.S | re.M)


@dataclass
class Block:
    kind: str
    arg: str
    code: str
    line: int

    def __str__(self) -> str:
        return f"line {self.line} ({self.kind} {self.arg})".rstrip()


def blocks(text: str) -> list[Block]:
    """The marked blocks of a page, in order; AssertionError for a python block without a marker."""
    marked = {m.start("lang") - 3: m for m in MARKED.finditer(text)}  # where each fence starts
    out = []
    for fence in FENCE.finditer(text):
        m = marked.get(fence.start())
        line = text.count("\n", 0, fence.start()) + 1
        if m is None:
            assert fence.group("lang") != "python", f"line {line}: a python block without a check marker"
            continue
        kind, _, arg = m.group("check").partition(" ")
        out.append(Block(kind, arg.strip(), m.group("code"), line))
    return out


class _Outcomes:
    """A pytest plugin that records the outcome of each test it sees."""

    def __init__(self):
        self.passed: list[str] = []
        self.failed: list[str] = []

    def pytest_runtest_logreport(self, report):
        if report.when == "call" and report.passed:
            self.passed.append(report.nodeid)
        elif report.failed:
            self.failed.append(report.nodeid)


class PageRunner:
    """Runs the blocks of one page (see the module docstring)."""

    def __init__(self, tmp_path: Path, monkeypatch):
        self.modules_dir = tmp_path / "modules"
        self.modules_dir.mkdir()
        self.work = tmp_path / "work"
        self.work.mkdir()
        monkeypatch.syspath_prepend(str(self.modules_dir))
        monkeypatch.chdir(self.work)
        self.namespace: dict = {}
        self.modules: dict = {}
        self.summaries: dict = {}
        self.imported: list[str] = []
        self.page = ""

    def module(self, name: str, code: str):
        (self.modules_dir / f"{name}.py").write_text(code)
        importlib.invalidate_caches()
        sys.modules.pop(name, None)
        self.imported.append(name)
        self.modules[name] = importlib.import_module(name)
        return self.modules[name]

    def compiled(self, block: Block):
        """The block's code, its source known to tracebacks (which then show the failing line)."""
        name = f"<docs {self.page} {block}>"
        linecache.cache[name] = (len(block.code), None, block.code.splitlines(True), name)
        return compile(block.code, name, "exec")

    def run(self, block: Block) -> None:
        from fastai_sparse.testing import check_plugin

        if block.kind == "verbatim":
            assert block.code == (ROOT / block.arg).read_text(), f"{block}: no longer the file {block.arg}"
        elif block.kind == "module":
            self.module(block.arg, block.code)
        elif block.kind == "plugin":
            mod = self.module(block.arg, block.code)
            self.summaries[block.arg] = check_plugin((block.arg, mod))
        elif block.kind == "plugin-error":
            name, _, text = block.arg.partition(": ")
            mod = self.module(name, block.code)
            with pytest.raises(ConformanceError) as exc:
                check_plugin((name, mod))
            assert text in str(exc.value), f"{block}: the message is now\n{exc.value}"
        elif block.kind == "pytest":
            path = self.modules_dir / f"test_{block.arg}.py"
            path.write_text(block.code)
            ran = _Outcomes()
            code = pytest.main([str(path), "-q", "-p", "no:cacheprovider", "-W", "ignore"], plugins=[ran])
            assert code == 0 and ran.passed and not ran.failed, (
                f"{block}: pytest exit {code}, failed {ran.failed}"
            )
        elif block.kind == "run":
            exec(self.compiled(block), self.namespace)
        elif block.kind == "error":
            with pytest.raises(Exception) as exc:
                exec(self.compiled(block), self.namespace)
            assert block.arg in str(exc.value), f"{block}: the message is now\n{exc.value}"
        elif block.kind != "skip" or not block.arg:
            raise AssertionError(f"{block}: unknown check, or a skip without its reason")

    def run_page(self, text: str, page: str = "") -> list[Block]:
        import torch

        self.page = page
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = blocks(text)
                for block in found:
                    self.run(block)
        finally:
            torch.set_num_threads(threads)
        return found

    def close(self) -> None:
        for name in self.imported:
            sys.modules.pop(name, None)


@pytest.fixture
def runner(tmp_path, monkeypatch):
    r = PageRunner(tmp_path, monkeypatch)
    yield r
    r.close()


def test_every_page_is_linked_from_the_guide():
    guide = GUIDE.read_text()
    for page in PAGES[1:]:
        assert (DOCS / page).is_file(), page
        assert f"({page})" in guide, f"docs/plugin-authoring.md does not link {page}"


def test_the_other_doc_runner_leaves_these_pages_to_this_one():
    from tests.core import test_doc_blocks

    assert set(PAGES) == test_doc_blocks.PLUGIN_PAGES
    assert not {p.name for p in test_doc_blocks.DOCS} & set(PAGES)


def test_a_python_block_without_a_marker_is_refused():
    with pytest.raises(AssertionError, match="line 2: a python block without a check marker"):
        blocks("text\n```python\nx = 1\n```\n")
    assert [b.kind for b in blocks("<!-- check: run -->\n```python\nx = 1\n```\n```toml\n[a]\n```\n")] == [
        "run"
    ]


@pytest.mark.parametrize("page", [p for p in PAGES if p != "hooks.md"])
def test_page_examples_run_and_messages_are_true(page, runner):
    found = runner.run_page((DOCS / page).read_text(), page)
    assert any(b.kind != "skip" for b in found), f"{page} checks nothing"


def test_the_guide_shows_the_example_plugin_verbatim():
    verbatim = {b.arg for b in blocks(GUIDE.read_text()) if b.kind == "verbatim"}
    assert verbatim == {
        "tests/example_plugin/pyproject.toml",
        "tests/example_plugin/src/fastai_sparse_example/__init__.py",
        "tests/example_plugin/test_example_plugin.py",
    }


def hook_sections(text: str) -> dict[str, tuple[str, str]]:
    """``{hook name: (signature as written in the heading, section text)}``."""
    parts = re.split(r"^## `(register_\w+)(\(.*?\))`\n", text, flags=re.M)
    return {parts[i]: (parts[i] + parts[i + 1], parts[i + 2]) for i in range(1, len(parts), 3)}


def test_every_hook_is_documented_with_its_exact_signature():
    specs = sorted(n for n, f in vars(hookspecs).items() if n.startswith("register_") and callable(f))
    assert specs == sorted(HOOKS)
    sections = hook_sections((DOCS / "hooks.md").read_text())
    assert list(sections) == HOOKS, "docs/hooks.md: one section per hook, in the order of hookspecs"
    for name in HOOKS:
        func = getattr(hookspecs, name)
        assert func.__doc__ and len(func.__doc__) > 200, f"hookspec {name} needs a real docstring"
        assert sections[name][0] == f"{name}{inspect.signature(func)}", f"docs/hooks.md: signature of {name}"
        text = sections[name][1]
        assert "What goes wrong" in text, f"docs/hooks.md: {name} says nothing of what goes wrong"
        kinds = [b.kind for b in blocks(text)]
        assert "plugin" in kinds and ("plugin-error" in kinds or "error" in kinds), (name, kinds)


def test_every_hook_example_runs_and_registers_its_kind(runner):
    import click
    from click.testing import CliRunner

    sections = hook_sections((DOCS / "hooks.md").read_text())
    runner.run_page((DOCS / "hooks.md").read_text(), "hooks.md")
    for name in HOOKS:
        example = next(b.arg for b in blocks(sections[name][1]) if b.kind == "plugin")
        module = runner.modules[example]
        impl = getattr(module, name, None)
        assert impl is not None and hasattr(impl, "fastai_sparse_impl"), (
            f"{example} does not implement {name}"
        )
        if name == "register_commands":
            cli = click.Group("fastai-sparse")
            impl(cli=cli)
            assert cli.commands, f"{example}: register_commands added no command"
            for command in list(cli.commands):
                res = CliRunner().invoke(cli, [command, "--help"])
                assert res.exit_code == 0, res.output
        else:
            kind = hookspecs.HOOK_KINDS[name]
            assert runner.summaries[example]["registered"].get(kind), f"{example} registered no {kind}"


def anchors(text: str) -> set[str]:
    """GitHub's anchors of a page's headings: lowercase, punctuation dropped, spaces to dashes."""
    out = set()
    for m in re.finditer(r"^#+ (.*)$", text, flags=re.M):
        out.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out


@pytest.mark.parametrize("page", PAGES)
def test_links_between_pages_resolve(page):
    text = (DOCS / page).read_text()
    for target, anchor in re.findall(r"\]\(([\w\-./]+\.md|)(?:#([\w\-]+))?\)", text):
        path = (DOCS / page).parent / target if target else DOCS / page
        assert path.is_file(), f"docs/{page} links {target}, which does not exist"
        if anchor:
            assert anchor in anchors(path.read_text()), (
                f"docs/{page} links {target}#{anchor}: no such heading"
            )
