"""A few optimisation steps of ``scannet-seg`` with its defaults on the real ScanNet scene reduce
the loss (the real sample at ../shared/data/real; skipped when absent). The learning-speed
figures themselves live in benchmarks/bench_real_scene.py."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*raw category ids.*:UserWarning")  # 600 vertices: id not in the tsv
def test_defaults_reduce_the_loss_on_the_real_scene(real_scannet, tmp_path):
    import torch

    from fastai_sparse.batch import collate
    from fastai_sparse.schedules import fit
    from fastai_sparse.testing import registry_with

    torch.set_num_threads(1)
    task = registry_with("scannet").get("task", "scannet-seg")
    kwargs = {
        "scenes": ["scene0000_00"],
        "label_source": "raw-id",
        "label_table": real_scannet / "scannetv2-labels.combined.tsv",
        "cache": tmp_path / "cache",
    }
    torch.manual_seed(0)
    dls = task.dataloaders(real_scannet, seed=0, path=tmp_path, num_workers=0, **kwargs)
    assert len(dls.train) == 1  # one scene: one step per epoch
    learn = task.learner(dls, path=tmp_path)
    # a fixed, unaugmented view of the scene to measure the loss on
    valid = task.pipeline(train=False)
    x, y = collate([valid(dls.valid_ds.cloud(0), np.random.default_rng(0))], task.target)
    loss_fn = task.loss_func()

    def loss() -> float:  # batch statistics (train mode) before and after
        learn.model.train()
        with torch.no_grad():
            return float(loss_fn(learn.model(x), y))

    before = loss()
    assert before == pytest.approx(np.log(20), rel=0.15)  # about chance at initialisation
    learn.metrics = []
    learn.remove_cbs([cb for cb in learn.cbs if type(cb).__name__ == "PerClassTableCallback"])
    with learn.no_bar(), learn.no_logging():
        fit(learn, 12, task.defaults["lr"], task.defaults.get("schedule"))
    after = loss()
    assert after < 0.75 * before, (before, after)
