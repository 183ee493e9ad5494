"""The synthetic spatial tasks end to end: conformance, weights round trip, prediction JSON,
visualisation, and (slow) short training runs against no-learning baselines."""

import json
import math
import warnings

import numpy as np
import pytest
import torch

from fastai_sparse.geometry import Boxes, Keypoints
from fastai_sparse.testing import check_task, registry_with

warnings.filterwarnings("ignore", category=FutureWarning)


@pytest.fixture(scope="module")
def reg():
    return registry_with()


def _quiet(learn):
    import fastai.callback.progress  # noqa: F401

    return learn.no_bar(), learn.no_logging()


def _learner(reg, name, tmp_path, n, bs, **kw):
    task = reg.get("task", name)
    dls = task.dataloaders(bs=bs, n=n, path=tmp_path, **kw)
    torch.manual_seed(0)
    return task, task.learner(dls, path=tmp_path)


def _valid_outputs(learn):
    x, _ = learn.dls.valid.one_batch()
    learn.model.eval()
    with torch.no_grad():
        return learn.model(x)


def test_keypoints_task_conforms(reg):
    res = check_task(reg.get("task", "synthetic-keypoints"), registry=reg)
    assert res["train"]["outputs"] == [2, 14]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["synthetic-boxes-det", "synthetic-boxes-det-vfe"])
def test_detection_tasks_conform(reg, name):
    res = check_task(reg.get("task", name), registry=reg)
    assert res["valid"]["outputs"][0] == 2 and res["valid"]["outputs"][2] == 16


def test_tasks_are_registered(reg):
    for n in ("synthetic-boxes-det", "synthetic-boxes-det-vfe", "synthetic-keypoints"):
        assert reg.get("task", n).name == n
    assert reg.get("task", "synthetic-boxes-det-vfe").input_stage == "vfe"
    for m in ("map-0.25", "map-0.5", "mean-distance", "pck", "pck-0.05", "pck-0.2", "axis-angle-error"):
        assert reg.get("metric", m) is not None
    for h in ("det-center", "keypoint-vote"):
        assert reg.get("head", h) is not None


@pytest.mark.parametrize(
    "name, n, kw",
    [
        ("synthetic-keypoints", 4, {"points": 512}),
        pytest.param("synthetic-boxes-det", 2, {"points": 1500}, marks=pytest.mark.slow),
    ],
)
def test_weights_round_trip_and_predict_json(reg, tmp_path, name, n, kw):
    from click.testing import CliRunner

    from fastai_sparse import io
    from fastai_sparse.cli import main

    task, learn = _learner(reg, name, tmp_path, n, 2, **kw)
    with _quiet(learn)[0], _quiet(learn)[1]:
        learn.fit(1, 1e-3)  # move batch-norm statistics away from their initial values
    out = _valid_outputs(learn)
    path = learn.save_weights(tmp_path / "w.pth")
    _, other = _learner(reg, name, tmp_path, n, 2, **kw)
    torch.manual_seed(1)
    other.load_weights(path)
    other.dls = learn.dls
    assert torch.equal(_valid_outputs(other), out)
    # prediction from the weights file writes JSON next to the input
    cloud = task.datasets(n=1, **kw)["valid"][0]
    src = tmp_path / "scene.ply"
    io.write_ply(src, cloud)
    # the JSON writer on this task's output for one sample
    from fastai_sparse.learner import Prediction
    from fastai_sparse.prediction import write_result

    one = out[0].numpy()
    write_result(task, Prediction("sample", one, None, None, None), cloud, tmp_path / "direct.json", "json")
    direct = json.loads((tmp_path / "direct.json").read_text())
    assert ("keypoints" if name == "synthetic-keypoints" else "boxes") in direct
    res = CliRunner().invoke(main, ["predict", name, "--model", str(path), str(src)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    payload = json.loads((tmp_path / "scene.pred.json").read_text())
    assert payload["task"] == name
    if name == "synthetic-keypoints":
        assert [k["name"] for k in payload["keypoints"]] == list(task.target.names)
        assert all(
            len(k["point"]) == 3 and abs(np.linalg.norm(k["axis"]) - 1) < 1e-4 for k in payload["keypoints"]
        )
    else:
        assert isinstance(payload["boxes"], list)
        for b in payload["boxes"]:
            assert set(b) == {"center", "size", "yaw", "class", "score"} and b["class"] in task.target.classes


def test_visualisation_png_and_html(tmp_path):
    from fastai_sparse.builtin.synthetic import SyntheticDetectionRooms, SyntheticKeypoints
    from fastai_sparse.viz import show_detection

    room = SyntheticDetectionRooms(n=1, points=2000)[0]
    gt = room.target
    pred = Boxes(gt.centers + 0.1, gt.sizes * 0.9, gt.yaw + 0.2, gt.labels)
    png, html = tmp_path / "det.png", tmp_path / "det.html"
    names = SyntheticDetectionRooms(n=1).classes
    show_detection(room, pred, class_names=names, color_by="rgb", path=png)
    show_detection(room, pred, class_names=names, color_by="rgb", path=html)
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert "plotly" in html.read_text()[:100_000].lower()
    arrow = SyntheticKeypoints(n=1, points=500)[0]
    kp = Keypoints(arrow.target.points + 0.05, arrow.target.axes)
    show_detection(arrow, kp, path=tmp_path / "kp.png")
    show_detection(arrow, kp, path=tmp_path / "kp.html")
    assert (tmp_path / "kp.png").stat().st_size > 5_000 and (tmp_path / "kp.html").stat().st_size > 5_000


@pytest.mark.slow
def test_keypoint_training_beats_mean_position_baseline(reg, tmp_path):
    n_train, n_valid = 128, 32
    task, learn = _learner(reg, "synthetic-keypoints", tmp_path, n_train, 16)
    with _quiet(learn)[0], _quiet(learn)[1]:
        learn.fit_one_cycle(6, 1e-2)
        vals = learn.validate(dl=task.dataloaders(bs=16, n=n_valid, path=tmp_path).valid)
    names = ["loss"] + [m.name for m in learn.metrics]
    res = dict(zip(names, vals))
    ds = task.datasets(n=max(n_train, n_valid))
    mean_p = np.mean([ds["train"][i].target.points for i in range(n_train)], 0)
    base = np.mean([np.linalg.norm(ds["valid"][i].target.points - mean_p, axis=1) for i in range(n_valid)])
    # measured: about 0.22 vs 0.54
    assert res["mean-distance"] < 0.6 * base, (res, base)
    assert res["axis-angle-error"] < 80


@pytest.mark.slow
def test_detection_training_beats_untrained_model(reg, tmp_path):
    _, learn = _learner(reg, "synthetic-boxes-det", tmp_path, 12, 4, points=3000)
    with _quiet(learn)[0], _quiet(learn)[1]:
        before = learn.validate(dl=learn.dls.train.new(shuffle=False, drop_last=False))
        learn.fit_one_cycle(12, 3e-3)
        after = learn.validate(dl=learn.dls.train.new(shuffle=False, drop_last=False))
    names = ["loss"] + [m.name for m in learn.metrics]
    before, after = dict(zip(names, before)), dict(zip(names, after))
    # the untrained model scores about 0 (random-init heatmaps below the score threshold); on the
    # training rooms (no augmentation in the evaluation loader's transforms) the trained one finds boxes
    assert after["loss"] < 0.5 * before["loss"]
    assert after["map-0.25"] > max(0.2, before["map-0.25"] + 0.15), (before, after)
    assert not math.isnan(after["map-0.5"])
