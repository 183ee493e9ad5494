"""A small trained model of the built-in rooms task, shared by the workflow tests."""

from __future__ import annotations

import warnings

import pytest

SMALL_ROOMS = {"n": 4, "points": 1500}


@pytest.fixture(scope="session")
def rooms_task():
    from fastai_sparse import get_task

    return get_task("synthetic-rooms-seg")


@pytest.fixture(scope="session")
def trained_rooms(rooms_task, tmp_path_factory):
    """``train_task`` output for 2 epochs on 4 small rooms (weights, run folder, learner)."""
    from fastai_sparse.training import train_task

    out = tmp_path_factory.mktemp("rooms-run")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train_task(
            rooms_task, out=out, epochs=2, bs=2, lr=1e-2, quiet=True, dataset_kwargs=SMALL_ROOMS
        )
