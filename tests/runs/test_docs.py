"""The examples of docs/weights.md and of the configuration section of docs/training.md run as
written (in a temporary folder, one thread)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"


def python_blocks(path: Path, after: str | None = None) -> list[str]:
    text = path.read_text()
    if after is not None:
        text = text[text.index(after) :]
    return [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "needs the network" not in b]


def run_blocks(blocks: list[str], tmp_path, monkeypatch) -> dict:
    import torch

    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    namespace: dict = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for block in blocks:
                exec(compile(block, "docs", "exec"), namespace)
    finally:
        torch.set_num_threads(threads)
    return namespace


@pytest.mark.slow
def test_weights_page_examples_run(tmp_path, monkeypatch):
    blocks = python_blocks(DOCS / "weights.md")
    assert len(blocks) == 2
    ns = run_blocks(blocks, tmp_path, monkeypatch)
    assert (tmp_path / "runs" / "doc" / "model" / "README.md").is_file()
    assert (tmp_path / "runs" / "doc" / "shared" / "rooms" / "model.safetensors").is_file()
    assert len(ns["result"].labels) == len(ns["room"])


@pytest.mark.slow
def test_training_page_config_example_runs(tmp_path, monkeypatch):
    blocks = python_blocks(DOCS / "training.md", after="## Configurations")
    ns = run_blocks(blocks[:1], tmp_path, monkeypatch)
    assert ns["task"].defaults["epochs"] == 1
    assert (tmp_path / "runs" / "from-python" / "model" / "model.safetensors").is_file()
