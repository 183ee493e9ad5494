"""End to end on a fixture: read -> short training -> validation table -> predict (TTA) ->
CLI predict -> weights save/reload -> export/reload."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("fastai_sparse_shapenet", reason="fastai-sparse-shapenet is not installed")
pytest.importorskip("fastai")


@pytest.mark.slow
def test_end_to_end(tmp_path):
    warnings.simplefilter("ignore")
    from click.testing import CliRunner

    from fastai_sparse.cli import main
    from fastai_sparse.learner import load_learner
    from fastai_sparse.registry import get_task
    from fastai_sparse_shapenet.categories import get_category
    from fastai_sparse_shapenet.fixtures import make_fixture
    from fastai_sparse_shapenet.predict import evaluate, predict_clouds, read_input

    root = make_fixture(tmp_path / "data", "normal", shapes={"train": 6, "val": 3})
    task = get_task("shapenet-part")
    dls = task.dataloaders(root, bs=3)
    learn = task.learner(dls, path=tmp_path)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(2, 2e-3)
    names = learn.recorder.metric_names
    assert "shapenet_instance_miou" in names and "shapenet_class_miou" in names
    last = dict(zip(names[1:], learn.recorder.values[-1]))
    assert 0 <= last["shapenet_instance_miou"] <= 1
    table = learn.metrics[0].table()
    assert "Airplane" in table and "instance" in table

    valid = [dls.valid_ds.items[i] for i in range(len(dls.valid_ds.items))]
    preds = predict_clouds(learn.model, task, valid, tta=2)
    for c, p in zip(valid, preds):
        assert len(p) == len(c)  # every original point
        assert set(np.unique(p)) <= set(get_category(c.meta["category"]).part_ids)
    scores = evaluate(learn.model, task, valid, tta=1)
    # the metric of the validation loop and the prediction path agree
    assert scores["instance_miou"] == pytest.approx(last["shapenet_instance_miou"], abs=1e-6)

    w = learn.save_weights(tmp_path / "w.pth")
    src = valid[0].meta["path"]
    out = tmp_path / "pred.seg"
    res = CliRunner().invoke(main, ["shapenet", "predict", src, "--model", str(w), "-o", str(out)])
    assert res.exit_code == 0, res.output
    local = np.loadtxt(out, dtype=np.int64)
    cat = get_category(valid[0].meta["synset"])
    expected = predict_clouds(learn.model, task, [read_input(src)])[0]
    np.testing.assert_array_equal(cat.to_global(local), expected)

    # core's predict command finds the category from the <synset>/ folder of the input
    core_out = tmp_path / "core.txt"
    res = CliRunner().invoke(main, ["predict", "shapenet-part", "--model", str(w), src, "-o", str(core_out)])
    assert res.exit_code == 0, res.output
    core_labels = np.loadtxt(core_out, dtype=np.int64)
    assert len(core_labels) == len(valid[0]) and set(np.unique(core_labels)) <= set(cat.part_ids)

    learn.export(tmp_path / "model")
    again = load_learner(tmp_path / "model")
    np.testing.assert_array_equal(
        predict_clouds(again.model, task, valid[:1])[0],
        preds_tta1 := predict_clouds(learn.model, task, valid[:1])[0],
    )
    assert len(preds_tta1) == len(valid[0])
