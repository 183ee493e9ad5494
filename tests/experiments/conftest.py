"""Small runs of the built-in rooms task for the logging, precision and multi-process tests."""

from __future__ import annotations

import warnings

import pytest

#: Four small rooms: two batches of two per epoch, seconds per epoch on one CPU thread.
SMALL_ROOMS = {"dataset.options.n": 4, "dataset.options.points": 1500, "bs": 2}


@pytest.fixture
def small_run(tmp_path):
    """``small_run(name, **train_task kwargs)``: train the rooms task quietly in ``tmp_path/name``."""
    from fastai_sparse import get_task
    from fastai_sparse.training import train_task

    def run(name: str = "run", overrides: dict | None = None, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return train_task(
                get_task("synthetic-rooms-seg"),
                out=tmp_path / name,
                quiet=True,
                overrides={**SMALL_ROOMS, **(overrides or {})},
                **kwargs,
            )

    return run
