"""docs/prepared-caches.md stays true: its plugin example runs as shown."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from fastai_sparse.errors import StaleCacheError

DOC = Path(__file__).resolve().parents[2] / "docs" / "prepared-caches.md"


@pytest.fixture
def mydata(tmp_path, monkeypatch):
    block = re.search(r"```python\n(.*?)```", DOC.read_text(), flags=re.S).group(1)
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "mydata_doc_example.py").write_text(block)
    monkeypatch.syspath_prepend(str(pkg))
    yield importlib.import_module("mydata_doc_example")
    sys.modules.pop("mydata_doc_example", None)


def test_doc_example_prepares_reads_and_refuses_stale(mydata, tmp_path):
    root = tmp_path / "root"
    (root / "rooms").mkdir(parents=True)
    for i in range(3):
        np.savetxt(
            root / "rooms" / f"r{i}.txt", np.c_[np.random.default_rng(i).random((20, 3)), np.arange(20) % 3]
        )
    s = mydata.prepare(root, jobs=2, quiet=True, centre=True)
    assert (s["prepared"], s["bad"]) == (3, 0)
    raw = np.loadtxt(root / "rooms" / "r1.txt")
    got = mydata.read_room(root, "r1", centre=True)
    np.testing.assert_allclose(got["xyz"], raw[:, :3] - raw[:, :3].mean(0), atol=1e-6)
    with pytest.raises(
        StaleCacheError, match=r"made with centre=True, asked for centre=False.*prepare mydata-seg"
    ):
        mydata.read_room(root, "r1", centre=False)
    assert mydata.prepare(root, jobs=1, quiet=True, centre=True)["fresh"] == 3
