"""Shared pieces of the run-record, config and weights tests: a small rooms learner and the
files a hostile user would hand over (crafted pickles: ``tests/trust/builders.py``)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

#: A few small rooms: the built-in task trains on them in seconds on one CPU thread.
SMALL = {"n": 4, "points": 1500}


def old_save_weights(learn, path: Path) -> Path:
    """The weights writer of fastai-sparse before safetensors (learner/checkpoint.py, commit
    e34580b), kept here verbatim so that files of that code path are tested."""
    import torch

    model = learn.model
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(
        {
            "format": "fastai-sparse-weights/1",
            "task": learn.task_name,
            "class_names": learn.class_names,
            "model": type(model).__name__,
            "state_dict": state,
        },
        path,
    )
    return path


@pytest.fixture(scope="session")
def rooms_task():
    from fastai_sparse import get_task

    return get_task("synthetic-rooms-seg")


@pytest.fixture(scope="session")
def room():
    from fastai_sparse.builtin.synthetic import SyntheticRooms

    return SyntheticRooms(n=1, split="test", points=700)[0]


@pytest.fixture(scope="session")
def rooms_learner(rooms_task, tmp_path_factory):
    """The rooms task trained one epoch on small rooms (weights differ from a fresh model)."""
    import torch

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("rooms-learner")
    dls = rooms_task.dataloaders(bs=2, path=path, **SMALL)
    learn = rooms_task.learner(dls)
    with warnings.catch_warnings(), learn.no_bar(), learn.no_logging():
        warnings.simplefilter("ignore")
        learn.fit_one_cycle(1, 1e-2)
    return learn
