import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from fastai_sparse.errors import ShapeError
from fastai_sparse.viz import class_colors, feats_look_like_rgb, show_batch, split_batch, voxel_majority

from .viz_helpers import external_refs


def test_split_batch_by_offsets(batch3):
    samples = split_batch(batch3["x"], batch3["y"])
    assert len(samples) == 3
    coords = batch3["x"]["coords"].numpy()
    start = 0
    for i, s in enumerate(samples):
        m, n = batch3["vox"][i], batch3["pts"][i]
        assert s["coords"].shape == (m, 3) and s["feats"].shape == (m, 3)
        np.testing.assert_array_equal(s["coords"], coords[start : start + m, 1:])
        np.testing.assert_array_equal(s["inverse"], batch3["local"][i])
        assert len(s["point_labels"]) == n
        np.testing.assert_array_equal(s["voxel_labels"], batch3["voxel_labels"][i])
        start += m


def test_split_batch_derives_offsets_when_absent(batch3):
    x = {k: v for k, v in batch3["x"].items() if k not in ("voxel_offsets", "point_offsets")}
    a = split_batch(x, batch3["y"])
    b = split_batch(batch3["x"], batch3["y"])
    for sa, sb in zip(a, b, strict=True):
        for k in ("coords", "inverse", "voxel_labels"):
            np.testing.assert_array_equal(sa[k], sb[k])


def test_voxel_majority_matches_hand_count():
    inv = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    lab = np.array([2, 2, 1, 5, -100, -100, 1, 0])  # voxel 3 tie 1/0 -> smaller label 0
    np.testing.assert_array_equal(voxel_majority(inv, lab, 5), [2, 5, -100, 0, -100])


def test_voxel_majority_random_against_loop(rng):
    inv = rng.integers(0, 40, 500)
    lab = rng.integers(-1, 6, 500)
    got = voxel_majority(inv, lab, 40, ignore_index=-1)
    for v in range(40):
        ls = lab[(inv == v) & (lab >= 0)]
        if len(ls) == 0:
            assert got[v] == -1
        else:
            counts = np.bincount(ls)
            assert got[v] == np.flatnonzero(counts == counts.max())[0]


def test_show_batch_png_three_panels_with_voxel_counts(batch3, tmp_path):
    path = tmp_path / "batch.png"
    fig = show_batch(batch3["x"], batch3["y"], path=path, panel_size=2, dpi=50)
    axes = [a for a in fig.axes if a.name == "3d"]
    assert len(axes) == 3
    assert [len(a.collections[0]._offsets3d[0]) for a in axes] == batch3["vox"]
    assert [a.get_title().split("\n")[0] for a in axes] == [
        "sample 0: 4 voxels, 6 points",
        "sample 1: 2 voxels, 3 points",
        "sample 2: 3 voxels, 5 points",
    ]
    # voxels coloured by their majority label: sample 0 -> classes 1, 2, 0, 3
    fc = np.asarray(axes[0].collections[0]._original_facecolor)[:, :3]
    np.testing.assert_allclose(fc, class_colors(5)[[1, 2, 0, 3]], atol=1e-6)
    import matplotlib.image as mpimg

    assert mpimg.imread(path).shape[:2] == (2 * 50, 3 * 2 * 50)


def test_show_batch_html_and_tuple_input(batch3, tmp_path):
    path = tmp_path / "batch.html"
    fig = show_batch((batch3["x"], batch3["y"]), max_n=2, path=path)
    assert isinstance(fig, go.Figure)
    per_scene = {}
    for t in fig.data:
        per_scene[t.scene] = per_scene.get(t.scene, 0) + len(t.x)
    assert per_scene == {"scene": 4, "scene2": 2}
    assert external_refs(path.read_text()) == []


def test_show_batch_feature_colours(batch3):
    fig = show_batch(batch3["x"], None, color_by="labels")  # no labels -> features
    f0 = batch3["x"]["feats"].numpy()[:4]
    assert feats_look_like_rgb(f0)
    fc = np.asarray(fig.axes[0].collections[0]._original_facecolor)[:, :3]
    np.testing.assert_allclose(fc, (f0 + 1) / 2, atol=1e-6)
    show_batch(batch3["x"], color_by=0)
    show_batch(batch3["x"], color_by="z")
    with pytest.raises(ShapeError, match="feature channel 7"):
        show_batch(batch3["x"], color_by=7)


def test_show_batch_per_sample_classes_in_titles(batch3):
    fig = show_batch(batch3["x"], torch.tensor([2, 0, 1]), class_names=["chair", "table", "lamp"])
    titles = [a.get_title() for a in fig.axes if a.name == "3d"]
    assert [t.split("\n")[1] for t in titles] == ["class lamp", "class chair", "class table"]


def test_bad_batches_raise_clear_errors(batch3):
    x = dict(batch3["x"])
    with pytest.raises(ShapeError, match=r"'voxel_offsets'.*from 0 to 9"):
        split_batch({**x, "voxel_offsets": torch.tensor([0, 4, 6, 8])})
    bad = x["coords"].clone()
    bad[5, 0] = 2
    with pytest.raises(ShapeError, match="belong to sample 1 by 'voxel_offsets' but have batch index 2"):
        split_batch({**x, "coords": bad})
    with pytest.raises(ShapeError, match=r"\[M, 4\]"):
        split_batch({**x, "coords": x["coords"][:, :3]})
    with pytest.raises(ShapeError, match="targets y have shape"):
        split_batch(x, torch.zeros(5, dtype=torch.int64))
    inv = x["inverse"].clone()
    inv[0] = 5  # a point of sample 0 pointing at a voxel of sample 1
    with pytest.raises(ShapeError, match="sample 0 maps to a voxel outside"):
        split_batch({**x, "inverse": inv})


def test_feats_look_like_rgb_tolerates_colour_jitter():
    r = np.random.default_rng(0)
    jittered = np.clip(r.uniform(-1, 1, (50, 3)) + r.normal(0, 0.05, (50, 3)), -1.1, 1.1)
    assert feats_look_like_rgb(jittered)
    assert not feats_look_like_rgb(r.uniform(0, 5, (50, 3)))  # e.g. raw heights / coordinates
    assert not feats_look_like_rgb(np.ones((50, 3)))  # constant features carry no colour
    assert not feats_look_like_rgb(r.uniform(-1, 1, (50, 2)))  # fewer than 3 channels
