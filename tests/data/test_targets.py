"""Target types: checks, collation, losses, decode, vectors that move with the geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastai_sparse.errors import DataFormatError, ShapeError
from fastai_sparse.geometry import Boxes, Keypoints, PointCloud
from fastai_sparse.targets import (
    BoundingBoxes,
    Classification,
    KeypointTarget,
    Regression,
    Segmentation,
    VectorTarget,
)
from fastai_sparse.transforms import ElasticDistortion, RandomRotate, Scale


def pc(n=4, target=None, path="scene.ply", **attrs):
    return PointCloud(np.zeros((n, 3)), attrs, target, {"path": path})


def test_segmentation_checks():
    seg = Segmentation(["wall", "floor", "chair"], ignore_index=-100)
    seg.check(pc(labels=np.array([0, 2, -100, 1])))  # ignore index allowed
    with pytest.raises(DataFormatError, match=r"scene\.ply.*label 3.*0\.\.2 or the ignore index -100"):
        seg.check(pc(labels=np.array([0, 3, 1, 1])))
    with pytest.raises(DataFormatError, match=r"label -1"):
        seg.check(pc(labels=np.array([0, -1, 1, 1])))
    with pytest.raises(ShapeError, match=r"scene\.ply.*'labels' has 3 rows, expected 4"):
        pc(n=4, labels=np.zeros(3, int))  # the container rejects it first
    wrong = pc(n=4)
    wrong.attrs["labels"] = np.zeros(3, int)  # bypassing the container's check
    with pytest.raises(DataFormatError, match=r"scene\.ply.*shape \[3\], expected \[4\]"):
        seg.check(wrong)
    with pytest.raises(DataFormatError, match=r"shape \[4, 2\], expected \[4\]"):
        seg.check(pc(labels=np.zeros((4, 2), int)))
    with pytest.raises(DataFormatError, match="integers"):
        seg.check(pc(labels=np.array([0.5, 1, 1, 1])))
    with pytest.raises(DataFormatError, match="no per-point labels"):
        seg.check(pc())
    assert seg.num_outputs == 3 and seg.per == "point" and "miou" in seg.metrics
    assert "Segmentation(classes=['wall', 'floor', 'chair']" in repr(seg)


def test_segmentation_collate_loss_decode():
    seg = Segmentation(3)
    y = seg.collate([pc(2, labels=np.array([0, 1])), pc(1, labels=np.array([-100]))])
    assert y.dtype == torch.int64 and y.tolist() == [0, 1, -100]
    logits = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 9.0]])
    loss = seg.loss_func()(logits, y)
    ref = torch.nn.functional.cross_entropy(logits[:2], y[:2])
    assert torch.isclose(loss, ref)
    assert seg.decode(logits).tolist() == [0, 1, 2]


def test_classification():
    cls = Classification(["a", "b"])
    cls.check(pc(target=1))
    with pytest.raises(DataFormatError, match=r"class 2 outside 0\.\.1"):
        cls.check(pc(target=2))
    with pytest.raises(DataFormatError, match="int class"):
        cls.check(pc(target="b"))
    y = cls.collate([pc(target=1), pc(target=np.int64(0))])
    assert y.dtype == torch.int64 and y.tolist() == [1, 0]
    assert cls.per == "sample" and cls.num_outputs == 2


def test_regression_and_vector_target_rotates():
    reg = Regression(["h"], loss="l1")
    reg.check(pc(target=np.array([1.5])))
    with pytest.raises(DataFormatError, match="2 values, expected 1"):
        reg.check(pc(target=np.array([1.0, 2.0])))
    with pytest.raises(DataFormatError, match="not finite"):
        reg.check(pc(target=np.array([np.nan])))
    assert reg.collate([pc(target=[1.0]), pc(target=[2.0])]).shape == (2, 1)
    assert isinstance(reg.loss_func(), torch.nn.L1Loss)
    vec = Regression(["ux", "uy", "uz"], vector=True)
    with pytest.raises(DataFormatError, match="VectorTarget"):
        vec.check(pc(target=np.array([1.0, 0, 0])))
    c = PointCloud(np.random.default_rng(0).normal(size=(20, 3)), target=VectorTarget([1.0, 0, 0]))
    r = RandomRotate("z", angle=np.pi / 2)(c)
    np.testing.assert_allclose(r.target.value, [0, 1, 0], atol=1e-6)
    s = Scale((2, 1, 1))(c)
    np.testing.assert_allclose(s.target.value, [1, 0, 0])  # direction: length kept
    d = Scale(3)(c.replace(target=VectorTarget([1.0, 0, 0], kind="displacement")))
    np.testing.assert_allclose(d.target.value, [3, 0, 0])
    e = ElasticDistortion(2.0, 0.5)(c, np.random.default_rng(0))
    assert np.linalg.norm(e.target.value) == pytest.approx(1.0, abs=1e-5)
    vec.check(r)
    y = vec.collate([r, s])
    assert y.shape == (2, 3) and y.dtype == torch.float32


def test_bounding_boxes():
    bt = BoundingBoxes(["chair", "table"])
    b1 = Boxes([[0, 0, 0], [1, 1, 1]], [[1, 1, 1], [2, 2, 2]], [0.0, 0.5], [0, 1])
    b2 = Boxes(np.zeros((0, 3)), np.zeros((0, 3)), [], [])
    b3 = Boxes([[5, 5, 5]], [[1, 2, 3]], [1.0], [1])
    for b in (b1, b2, b3):
        bt.check(pc(target=b))
    y = bt.collate([pc(target=b1), pc(target=b2), pc(target=b3)])
    assert y["boxes"].shape == (3, 7) and y["boxes"].dtype == torch.float32
    assert y["labels"].tolist() == [0, 1, 1] and y["batch"].tolist() == [0, 0, 2]
    np.testing.assert_allclose(y["boxes"][2].numpy(), [5, 5, 5, 1, 2, 3, 1.0])
    with pytest.raises(DataFormatError, match="label 5"):
        bt.check(pc(target=Boxes([[0, 0, 0]], [[1, 1, 1]], [0], [5])))
    tiny = Boxes([[0, 0, 0]], [[1, 1, 1]], [0], [0])
    tiny.sizes = np.array([[1, 1e-9, 1]], np.float32)
    with pytest.raises(DataFormatError, match="degenerate"):
        bt.check(pc(target=tiny))
    with pytest.raises(DataFormatError, match="Boxes"):
        bt.check(pc(target=3))
    assert callable(bt.loss_func())  # the detection loss (tests/spatial checks what it computes)


def test_keypoints():
    kt = KeypointTarget(["tip", "base"], axes=True)
    k = Keypoints([[0, 0, 0], [1, 1, 1]], axes=[[0, 0, 1], [1, 0, 0]])
    kt.check(pc(target=k))
    y = kt.collate([pc(target=k), pc(target=k)])
    assert y["points"].shape == (2, 2, 3) and y["axes"].shape == (2, 2, 3)
    assert "axes" not in KeypointTarget(["tip", "base"]).collate([pc(target=k)])
    with pytest.raises(DataFormatError, match="3 keypoints, expected 2"):
        kt.check(pc(target=Keypoints(np.zeros((3, 3)))))
    with pytest.raises(DataFormatError, match="no axes"):
        kt.check(pc(target=Keypoints(np.zeros((2, 3)))))
    with pytest.raises(ShapeError, match=r"\[1, 2\] keypoints"):
        kt.collate([pc(target=Keypoints(np.zeros((1, 3)))), pc(target=k)])
    assert repr(kt) == "KeypointTarget(names=('tip', 'base'), axes=True)"
