"""End to end: read -> short training -> accuracy above chance -> predict (top-k, TTA) ->
weights saved and reloaded give identical predictions; the same on a mesh folder and ModelNet
fixture, through core's CLI predict path."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest
import torch

from fastai_sparse import get_task
from fastai_sparse.learner import sparse_dataloaders
from fastai_sparse.voxelize import Voxelizer
from fastai_sparse_classification import confusion_matrix_of, plot_confusion_matrix, predict_shape, top_k


def _quiet_fit(learn, epochs, lr):
    from fastai.callback.progress import ProgressCallback  # noqa: F401  (no_bar needs it imported)

    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        learn.fit_one_cycle(epochs, lr)


@pytest.mark.slow
def test_synthetic_shapes_above_chance_predict_and_reload(tmp_path):
    # core's embedded task, at a coarser voxel grid so it trains in seconds on a CPU
    task = dataclasses.replace(
        get_task("synthetic-shapes-cls"), voxelizer=Voxelizer(scale=8, features=("ones",))
    )
    k = len(task.class_names)
    factory = task.dataset_factory()
    train, valid = factory(split="train", n=128, points=384), factory(split="valid", n=64, points=384)
    dls = sparse_dataloaders(
        train, valid, task.pipeline(True), task.pipeline(False), task.target, bs=16, path=tmp_path
    )
    torch.manual_seed(0)
    learn = task.learner(dls)
    _quiet_fit(learn, 3, 1e-2)
    cm = confusion_matrix_of(learn)
    assert cm.sum() == len(valid) and np.array_equal(
        cm.sum(1), np.bincount([c.target for c in valid], minlength=k)
    )
    acc = np.trace(cm) / cm.sum()
    # chance is 1/K = 0.125 (balanced classes); with 64 samples its spread is 4.1 %: 0.3 is > 4 sigma
    assert acc > 0.3, f"accuracy {acc:.3f} not above chance {1 / k:.3f}"
    recorded = learn.recorder.values[-1][2]  # the accuracy metric of the last epoch = same matrix
    assert recorded == pytest.approx(acc)
    plot_confusion_matrix(cm, task.class_names, path=tmp_path / "cm.png")
    assert (tmp_path / "cm.png").stat().st_size > 1000

    cloud = valid[5]
    pred = learn.predict(cloud)
    probs, _ = learn.get_preds(dl=dls.valid)
    assert np.allclose(pred.probs, probs[5].numpy(), atol=1e-5)
    top = top_k(pred, 3)
    assert top[0] == (task.class_names[pred.labels], pytest.approx(pred.confidence))
    assert [p for _, p in top] == sorted([p for _, p in top], reverse=True)
    voted = learn.predict(cloud, tta=4)  # rotation voting
    assert voted.probs.sum() == pytest.approx(1, abs=1e-5)
    tta_probs, _ = learn.tta(n=4, dl=dls.test_dl([valid[i] for i in range(4, 8)]))
    assert np.allclose(voted.probs, tta_probs[1].numpy(), atol=1e-4)

    path = learn.save_weights(tmp_path / "shapes.pth")
    torch.manual_seed(1)
    fresh = task.learner(dls)
    before, _ = fresh.get_preds(dl=dls.valid)
    assert not torch.allclose(before, probs)
    fresh.load_weights(path)
    after, _ = fresh.get_preds(dl=dls.valid)
    assert torch.equal(after, probs)
    assert np.array_equal(fresh.predict(cloud).logits, pred.logits)


@pytest.mark.slow
def test_mesh_folder_end_to_end(fixture_roots, tmp_path):
    from fastai_sparse_classification.tasks import mesh_folder_task

    task = mesh_folder_task(points=256)  # the registered settings, so the CLI below matches
    dls = task.dataloaders(fixture_roots["mesh-folder"], bs=4, path=tmp_path)
    assert task.class_names == ["box", "cone", "sphere"]
    learn = task.learner(dls)
    _quiet_fit(learn, 1, 1e-3)
    cm = confusion_matrix_of(learn, tta=2)
    assert cm.shape == (3, 3) and cm.sum() == len(dls.valid_ds) == 3
    src = fixture_roots["mesh-folder"] / "cone" / "cone_000.off"
    pred, top = predict_shape(learn, src, tta=2, k=3, points=256)
    assert {n for n, _ in top} == {"box", "cone", "sphere"}
    assert sum(p for _, p in top) == pytest.approx(1, abs=1e-5)
    assert pred.names == top[0][0]

    # the plugin's `classify` command: classes come from the weights file
    from click.testing import CliRunner

    from fastai_sparse.cli import main

    weights = learn.save_weights(tmp_path / "folder.pth")
    res = CliRunner().invoke(
        main,
        [
            "classify",
            "mesh-folder-cls",
            "--model",
            str(weights),
            str(src),
            "-k",
            "2",
            "--tta",
            "2",
            "--points",
            "256",
        ],
    )
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert lines[0] == str(src) and len(lines) == 3
    printed = [ln.split() for ln in lines[1:]]
    assert printed[0][0] == top[0][0] and float(printed[0][1]) == pytest.approx(top[0][1], abs=2e-3)


@pytest.mark.slow
def test_modelnet_weights_through_core_predict_cli(fixture_roots, tmp_path):
    from click.testing import CliRunner

    from fastai_sparse.cli import main

    task = get_task("modelnet10-cls")
    dls = task.dataloaders(fixture_roots["modelnet-off"], bs=3, path=tmp_path, points=256)
    learn = task.learner(dls)
    _quiet_fit(learn, 1, 1e-3)
    weights = learn.save_weights(tmp_path / "mn10.pth")
    src = fixture_roots["modelnet-off"] / "ModelNet10" / "chair" / "test" / "chair_0003.off"
    assert src.exists()
    out = tmp_path / "chair.json"
    res = CliRunner().invoke(
        main, ["predict", "modelnet10-cls", "--model", str(weights), str(src), "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    payload = json.loads(out.read_text())
    assert payload["label"] in task.class_names and len(payload["top"]) == 5
    probs = [t["probability"] for t in payload["top"]]
    assert probs == sorted(probs, reverse=True) and all(
        t["class"] in task.class_names for t in payload["top"]
    )
