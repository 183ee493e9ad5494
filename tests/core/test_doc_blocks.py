"""Every ```python block of README.md and docs/*.md runs as written.

One test per Markdown file: its blocks run in order in one fresh Python process (they share
one namespace, as a reader running them in one session would), in an empty temporary folder,
with one CPU thread. A failure names the file and the line of the block.

A block may carry directives in HTML comments on the lines just above its fence (invisible on
GitHub), one directive per comment:

* ``<!-- doc-test: skip: REASON -->``: the block is not run; the suite reports it as a skipped
  test with the reason (``pytest -rs`` lists them). For blocks that need a GPU, the network or
  a launcher such as ``torchrun``.
* ``<!-- doc-test: slow -->``: the file's test is marked slow (``-m "not slow"`` leaves it out).
* ``<!-- doc-test: small: OLD => NEW -->``: the suite runs the block with the text ``OLD``
  replaced by ``NEW`` (a smaller setting of a long run, e.g. ``fit_one_cycle(40, 1e-2) =>
  fit_one_cycle(1, 1e-2)``). ``OLD`` must occur in the block, so the directive cannot go stale.
* ``<!-- doc-test: copy: PATH [PATH ...] -->``: copy these files of the repository (paths from
  its root) into the temporary folder first, for blocks run from the repository root.

An unknown directive is an error. Docs added later are covered without change here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The plugin-author pages run in tests/core/test_docs.py, whose check markers give each block its
# meaning (a module to import, a plugin for the conformance kit, an error and its message).
PLUGIN_PAGES = {"plugin-authoring.md", "hooks.md", "disk-datasets.md"}
DOCS = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name not in PLUGIN_PAGES)]
FENCE = re.compile(r"^```python\s*$")
DIRECTIVE = re.compile(r"^<!--\s*doc-test:\s*(.*?)\s*-->\s*$")
KNOWN = ("skip", "slow", "small", "copy")


class DocTestMarkerError(Exception):
    """A doc-test directive that cannot be followed."""


@dataclass
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    code: str
    skip: str | None = None
    slow: bool = False
    small: list[tuple[str, str]] = field(default_factory=list)
    copy: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{_rel(self.doc)}:{self.line}"

    def source(self) -> str:
        """The code the suite runs: the block, with its ``small`` replacements."""
        code = self.code
        for old, new in self.small:
            if old not in code:
                raise DocTestMarkerError(
                    f"{self.where}: 'small: {old} => {new}': {old!r} is not in the block"
                )
            code = code.replace(old, new)
        return code


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _apply(block: Block, directive: str) -> None:
    name, _, arg = directive.partition(":")
    name, arg = name.strip(), arg.strip()
    if name not in KNOWN:
        raise DocTestMarkerError(
            f"{block.where}: unknown doc-test directive {name!r}; known: {', '.join(KNOWN)}"
        )
    if name == "skip":
        if not arg:
            raise DocTestMarkerError(f"{block.where}: 'doc-test: skip' needs a reason ('skip: needs a GPU')")
        block.skip = arg
    elif name == "slow":
        block.slow = True
    elif name == "small":
        old, sep, new = arg.partition("=>")
        if not sep or not old.strip():
            raise DocTestMarkerError(f"{block.where}: write 'doc-test: small: OLD => NEW', got {arg!r}")
        block.small.append((old.strip(), new.strip()))
    else:
        if not arg:
            raise DocTestMarkerError(f"{block.where}: 'doc-test: copy' needs paths")
        block.copy.extend(arg.split())


def python_blocks(doc: Path, text: str | None = None) -> list[Block]:
    """The ```python blocks of ``doc`` with their directives."""
    lines = (doc.read_text() if text is None else text).splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if not FENCE.match(lines[i]):
            if lines[i].startswith("```"):  # another fenced block: skip to its end
                j = i + 1
                while j < len(lines) and not lines[j].startswith("```"):
                    j += 1
                i = j
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        block = Block(doc, i + 1, "\n".join(lines[i + 1 : j]) + "\n")
        k, directives = i - 1, []
        while k >= 0 and (DIRECTIVE.match(lines[k]) or (not lines[k].strip() and k == i - 1)):
            m = DIRECTIVE.match(lines[k])
            if m:
                directives.append(m.group(1))
            k -= 1
        for d in reversed(directives):
            _apply(block, d)
        blocks.append(block)
        i = j + 1
    return blocks


RUNNER = textwrap.dedent(
    """
    import json, sys, traceback
    blocks = json.load(open(sys.argv[1]))
    ns = {"__name__": "__main__"}
    for b in blocks:
        print(f"--- running {b['where']}", flush=True)
        try:
            exec(compile(b["code"], b["where"], "exec"), ns)
        except BaseException:
            traceback.print_exc()
            print(f"DOC BLOCK FAILED: {b['where']}", flush=True)
            sys.exit(1)
    print("ALL DOC BLOCKS RAN", flush=True)
    """
)


def run_blocks(blocks: list[Block], folder: Path, timeout: float = 3000) -> subprocess.CompletedProcess:
    """Run ``blocks`` (their ``small`` versions) in order in one new Python process in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for b in blocks:
        for rel in b.copy:
            src = ROOT / rel
            if not src.is_file():
                raise DocTestMarkerError(f"{b.where}: 'copy: {rel}': no such file in the repository")
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, folder / rel)
    spec = folder.parent / f".{folder.name}-blocks.json"
    spec.write_text(json.dumps([{"where": b.where, "code": b.source()} for b in blocks]))
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-c", RUNNER, str(spec)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _params():
    params = []
    for doc in DOCS:
        blocks = python_blocks(doc)
        if not blocks:
            continue
        marks = [pytest.mark.slow] if any(b.slow and not b.skip for b in blocks) else []
        params.append(pytest.param(doc, marks=marks, id=_rel(doc)))
    return params


def _skipped():
    return [pytest.param(b, id=f"{b.where} (skipped)") for doc in DOCS for b in python_blocks(doc) if b.skip]


@pytest.mark.parametrize("doc", _params())
def test_doc_blocks_run(doc, tmp_path):
    blocks = [b for b in python_blocks(doc) if not b.skip]
    proc = run_blocks(blocks, tmp_path / "cwd")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "ALL DOC BLOCKS RAN" in proc.stdout, out[-6000:]


@pytest.mark.parametrize("block", _skipped())
def test_doc_blocks_not_run(block):
    pytest.skip(f"{block.where} not run: {block.skip}")


def test_every_directive_is_valid():
    """Directives parse (python_blocks raises on unknown ones), skips have reasons, replacements
    match their blocks, copied files exist; and the README snippet runs without replacements."""
    for doc in DOCS:
        for b in python_blocks(doc):
            b.source()
            for rel in b.copy:
                assert (ROOT / rel).is_file(), f"{b.where}: copy: {rel} does not exist"
    readme = python_blocks(ROOT / "README.md")
    assert readme and all(not b.small and not b.skip for b in readme), "README's Python runs verbatim"


def test_the_runner_reports_the_failing_block_and_follows_directives(tmp_path):
    text = textwrap.dedent(
        """\
        # A page

        ```python
        x = 40
        ```

        <!-- doc-test: small: x + 2 => x + 1 -->
        ```python
        assert x + 1 == 41
        y = x + 2
        ```

        ```bash
        echo not python
        ```

        <!-- doc-test: skip: needs a GPU -->
        ```python
        import torch; torch.zeros(1, device="cuda")
        ```

        ```python
        assert y == 41, y
        raise SystemExit("unreachable if y were 42")
        ```
        """
    )
    doc = tmp_path / "page.md"
    doc.write_text(text)
    blocks = python_blocks(doc)
    assert [b.line for b in blocks] == [3, 8, 18, 22]
    assert blocks[1].small == [("x + 2", "x + 1")] and blocks[2].skip == "needs a GPU"
    proc = run_blocks([b for b in blocks if not b.skip], tmp_path / "run")
    # block 2 ran with its replacement (y == 41), so the last block got past its assert and failed
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"DOC BLOCK FAILED: {_rel(doc)}:22" in proc.stdout and "unreachable" in proc.stderr
    with pytest.raises(DocTestMarkerError, match="unknown doc-test directive 'fast'"):
        python_blocks(doc, "<!-- doc-test: fast -->\n```python\npass\n```\n")
    with pytest.raises(DocTestMarkerError, match="is not in the block"):
        python_blocks(doc, "<!-- doc-test: small: 40 => 1 -->\n```python\npass\n```\n")[0].source()
