"""Registered tasks, conformance kit, CLI prepare, and an end-to-end run on fixtures."""

from __future__ import annotations

import numpy as np
import plyfile
import pytest

from fastai_sparse_scannet.constants import BENCHMARK_COLORS, BENCHMARK_IDS, BENCHMARK_NAMES


@pytest.fixture(scope="module")
def tasks():
    from fastai_sparse.testing import registry_with

    reg = registry_with("scannet")
    return {n: reg.get("task", n) for n in ("scannet-seg", "scannet-seg-large", "scannet-det")}


def test_tasks_are_registered_with_benchmark_setup(tasks):
    from fastai_sparse.transforms.points import ElasticDistortion, RandomAffineNoise

    seg, large = tasks["scannet-seg"], tasks["scannet-seg-large"]
    assert seg.class_names == list(BENCHMARK_NAMES) and seg.target.ignore_index == -100
    assert list(seg.label_values) == list(BENCHMARK_IDS)
    np.testing.assert_array_equal(seg.class_colors, BENCHMARK_COLORS)
    assert (seg.voxelizer.scale, seg.model) == (20.0, "unet-m16")
    # the recipe's depth, without the final BN+ReLU, one-cycle to 1e-2 (bench_real_scene.py)
    assert seg.model_kwargs == {"levels": 7, "output_bn_relu": False}
    assert (seg.defaults["lr"], seg.defaults["schedule"]) == (1e-2, "one-cycle")
    model = seg.build_model(3)
    assert model.backbone.levels == 7 and not model.backbone.output_bn_relu
    assert (large.voxelizer.scale, large.model) == (50.0, "unet-m32-r2")
    assert large.defaults["bs"] != seg.defaults["bs"]
    assert {"miou", "iou-per-class"} <= set(seg.metric_names)
    kinds = [type(t) for t in seg.train_transforms]
    assert RandomAffineNoise in kinds and kinds.count(ElasticDistortion) == 2
    elastic = [t for t in seg.train_transforms if isinstance(t, ElasticDistortion)]
    # (6 s // 50, 40 s / 50) and (20 s // 50, 160 s / 50) voxels at s = 20 voxels/m, in metres
    got = [v * 20 for e in elastic for v in (e.granularity, e.magnitude)]
    assert got == pytest.approx([2, 16, 8, 64])
    large_elastic = [t for t in large.train_transforms if isinstance(t, ElasticDistortion)]
    got = [v * 50 for e in large_elastic for v in (e.granularity, e.magnitude)]
    assert got == pytest.approx([6, 40, 20, 160])
    # validation: no noise, no elastic distortion, no colour shift
    names = {type(t).__name__ for t in seg.valid_transforms}
    assert not names & {"RandomAffineNoise", "ElasticDistortion", "ColorShift", "Jitter"}
    det = tasks["scannet-det"]
    assert det.head == "det-center" and len(det.class_names) == 18
    assert "garbagebin" in det.class_names and not {"wall", "floor"} & set(det.class_names)
    assert {"map-0.25", "map-0.5"} <= set(det.metric_names)


def test_pipeline_on_fixture_scene(tasks, scannet_root):
    seg = tasks["scannet-seg"]
    ds = seg.datasets(scannet_root)
    cloud = ds["train"][0]
    s1 = seg.pipeline(train=True)(cloud, np.random.default_rng(1))
    s2 = seg.pipeline(train=True)(cloud, np.random.default_rng(1))
    np.testing.assert_array_equal(s1.coords, s2.coords)  # reproducible from the seed
    assert len(s1.inverse) == len(cloud) and s1.coords.min() >= 0 and s1.feats.shape[1] == 3
    np.testing.assert_array_equal(s1.cloud.attrs["labels"], cloud.attrs["labels"])  # nothing cropped
    v = seg.pipeline(train=False)(ds["valid"][0], np.random.default_rng(0))
    assert np.abs(v.feats).max() <= 1.0 + 1e-6  # colours in [-1, 1], no shift at validation


def test_cli_prepare(scannet_root, tmp_path):
    from click.testing import CliRunner

    from fastai_sparse.cli import main

    out = tmp_path / "cache"
    r = CliRunner().invoke(
        main, ["prepare", "scannet-seg", "--root", str(scannet_root), "--out", str(out), "-j", "1"]
    )
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.glob("*.npz")) == [
        "scene0000_00.npz", "scene0001_00.npz", "scene0002_00.npz", "scene0707_00.npz",
    ]  # fmt: skip


@pytest.mark.slow
def test_check_plugin_conformance():
    from fastai_sparse.testing import check_plugin

    summary = check_plugin("scannet")
    assert set(summary["tasks"]) == {"scannet-seg", "scannet-seg-large", "scannet-det"}
    assert summary["tasks"]["scannet-seg"]["train"]["outputs"][1] == 20


@pytest.mark.slow
def test_end_to_end_train_validate_predict(tasks, tmp_path):
    from fastai_sparse.prediction import predict_files
    from fastai_sparse_scannet.submission import read_submission

    task = tasks["scannet-seg"]
    root = task.fixture(tmp_path)
    summary = task.prepare(root, jobs=1, quiet=True)
    assert summary["prepared"] == 4
    dls = task.dataloaders(root, bs=2)
    learn = task.learner(dls, path=tmp_path)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-3)
        res = learn.validate()
    assert np.isfinite(res[0]) and 0.0 <= res[1] <= 1.0  # loss, miou
    weights = learn.save_weights(tmp_path / "w.pth")
    scene = root / "scans_test" / "scene0707_00" / "scene0707_00_vh_clean_2.ply"
    n = plyfile.PlyData.read(str(scene))["vertex"].count
    ((_, ply_out),) = predict_files(task, weights, [scene], out=tmp_path / "pred.ply", tta=2)
    v = plyfile.PlyData.read(str(ply_out))["vertex"]
    assert v.count == n
    labels = np.asarray(v["label"])
    assert set(np.unique(labels)) <= set(BENCHMARK_IDS)
    idx = np.searchsorted(BENCHMARK_IDS, labels)
    np.testing.assert_array_equal(np.stack([v["red"], v["green"], v["blue"]], 1), BENCHMARK_COLORS[idx])
    ((_, txt_out),) = predict_files(task, weights, [scene], out=tmp_path / "scene0707_00.txt", tta=2)
    np.testing.assert_array_equal(read_submission(txt_out, n_vertices=n), labels)
