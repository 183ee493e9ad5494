from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastai_sparse.errors import DataFormatError
from fastai_sparse_scannet.constants import BENCHMARK_IDS
from fastai_sparse_scannet.submission import class_to_nyu40, read_submission, write_submission


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 19), min_size=0, max_size=200))
def test_submission_round_trip(tmp_path_factory, classes):
    path = tmp_path_factory.mktemp("sub") / "scene0707_00.txt"
    ids = class_to_nyu40(np.array(classes, np.int64))
    assert all(ids[i] == BENCHMARK_IDS[c] for i, c in enumerate(classes))
    write_submission(path, ids, n_vertices=len(classes))
    text = path.read_text()
    assert text.count("\n") == len(classes)
    np.testing.assert_array_equal(read_submission(path, n_vertices=len(classes)), ids)


def test_submission_errors(tmp_path):
    with pytest.raises(DataFormatError, match="one per vertex"):
        write_submission(tmp_path / "a.txt", np.array([1, 2]), n_vertices=3)
    with pytest.raises(DataFormatError, match=r"0\.\.40"):
        write_submission(tmp_path / "a.txt", np.array([1, 41]))
    with pytest.raises(DataFormatError, match=r"0\.\.19"):
        class_to_nyu40(np.array([20]))
    (tmp_path / "b.txt").write_text("1\nwall\n")
    with pytest.raises(DataFormatError, match=r"b\.txt"):
        read_submission(tmp_path / "b.txt")
