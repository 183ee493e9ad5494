"""Spatial targets through augmentation, bad input, target assignment, decoding, heads and metrics."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fastai_sparse import transforms as T
from fastai_sparse.batch import collate
from fastai_sparse.box_ops import box_iou_3d
from fastai_sparse.errors import DataFormatError, ShapeError
from fastai_sparse.geometry import Boxes, Keypoints, PointCloud
from fastai_sparse.models.detection import (
    CenterDetectionLoss,
    CenterHead,
    decode_detections,
    detection_columns,
    encode_yaw,
    point_rows,
)
from fastai_sparse.models.keypoints import KeypointLoss, VoteKeypointHead
from fastai_sparse.spatial.metrics import PCK, AxisAngleError, DetectionMAP, KeypointDistance
from fastai_sparse.targets import BoundingBoxes, KeypointTarget
from fastai_sparse.voxelize import Voxelizer

BOXES = Boxes(
    [[1.0, 1.0, 0.5], [3.0, 2.0, 0.4], [2.0, 3.2, 0.3]],
    [[1.0, 0.5, 1.0], [0.6, 0.6, 0.8], [0.4, 0.8, 0.6]],
    [0.3, -1.0, 2.0],
    [0, 1, 0],
)


def _box_cloud(boxes=BOXES, extra=200, seed=0):
    """Points: every box's 8 corners and centre first (in a known order), then random points."""
    rng = np.random.default_rng(seed)
    fixed = [np.concatenate([c, ctr[None]]) for c, ctr in zip(boxes.corners(), boxes.centers)]
    fixed = np.concatenate(fixed) if fixed else np.zeros((0, 3))
    pts = np.concatenate([fixed, rng.uniform(0, 4, (extra, 3))]).astype(np.float32)
    rgb = rng.integers(0, 255, (len(pts), 3)).astype(np.uint8)
    return PointCloud(pts, {"rgb": rgb}, target=boxes, meta={"path": "room.ply"})


def _corner_sets_match(boxes, xyz, atol=1e-4):
    for k in range(len(boxes)):
        got = boxes.corners()[k]
        want = xyz[9 * k : 9 * k + 8]
        d = np.linalg.norm(got[:, None] - want[None], axis=2)
        assert d.min(1).max() < atol and d.min(0).max() < atol
        assert np.allclose(boxes.centers[k], xyz[9 * k + 8], atol=atol)


@pytest.mark.parametrize(
    "tfm",
    [T.RandomRotate("z"), T.RandomFlip(("x", "y"), p=1.0), T.RandomScale((0.5, 2.0))],
    ids=["rotate", "flip", "scale"],
)
def test_boxes_follow_affine_transforms(tfm):
    cloud = _box_cloud()
    for seed in range(3):
        out = tfm(cloud, np.random.default_rng(seed))
        _corner_sets_match(out.target, out.xyz)
        assert len(out.target) == len(BOXES)


def test_boxes_and_keypoints_follow_elastic_distortion():
    cloud = _box_cloud()
    out = T.ElasticDistortion(0.5, 0.1)(cloud, np.random.default_rng(0))
    moved = np.linalg.norm(out.xyz - cloud.xyz, axis=1)
    assert moved.max() > 0.01
    # the centre follows the point map exactly; the box stays an oriented box (local linearisation)
    for k in range(len(BOXES)):
        assert np.allclose(out.target.centers[k], out.xyz[9 * k + 8], atol=1e-5)
    kp = Keypoints(cloud.xyz[:4], axes=np.tile([[1.0, 0, 0]], (4, 1)))
    out = T.ElasticDistortion(0.5, 0.1)(cloud.replace(target=kp), np.random.default_rng(1))
    assert np.allclose(out.target.points, out.xyz[:4], atol=1e-5)
    assert np.allclose(np.linalg.norm(out.target.axes, axis=1), 1, atol=1e-5)


def test_keypoint_axes_follow_rotation_and_flip():
    pts = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0]], np.float32)
    kp = Keypoints(pts[:2], axes=[[1, 0, 0], [0, 1, 0]])
    cloud = PointCloud(pts, target=kp)
    out = T.RandomRotate("z", math.pi / 2)(cloud)
    assert np.allclose(out.target.points, out.xyz[:2], atol=1e-6)
    assert np.allclose(out.target.axes, [[0, 1, 0], [-1, 0, 0]], atol=1e-6)
    out = T.RandomFlip(("x",), p=1.0)(cloud, np.random.default_rng(0))
    assert np.allclose(out.target.axes, [[-1, 0, 0], [0, 1, 0]], atol=1e-6)


def test_crop_drops_boxes_whose_centre_leaves_and_flags_keypoints():
    from fastai_sparse.transforms.points import crop

    cloud = _box_cloud()
    lo, hi = np.array([0.0, 0.0, 0.0]), np.array([2.5, 4.0, 2.0])  # keeps centres x=1, x=2
    keep = ((cloud.xyz >= lo) & (cloud.xyz < hi)).all(1)
    out = crop(cloud, keep, lo, hi)
    assert len(out.target) == 2 and out.meta["boxes_dropped"] == 1
    assert np.allclose(out.target.centers[:, 0], [1.0, 2.0])
    kp = Keypoints([[1, 1, 1], [3, 3, 1]])
    out = crop(cloud.replace(target=kp), keep, lo, hi)
    assert len(out.target) == 2 and out.meta["keypoints_in_crop"].tolist() == [True, False]
    # RandomCrop uses the same rule
    out = T.RandomCrop(1.0)(cloud, np.random.default_rng(0))
    inside = ((BOXES.centers >= out.xyz.min(0) - 0.5) & (BOXES.centers <= out.xyz.max(0) + 0.5)).all(1)
    assert len(out.target) + out.meta.get("boxes_dropped", 0) == len(BOXES)
    assert len(out.target) <= inside.sum()


# -- bad input ---------------------------------------------------------------------------------


def test_degenerate_boxes():
    with pytest.raises(DataFormatError, match="size"):
        Boxes([[0, 0, 0]], [[1, 0, 1]], [0], [0])
    with pytest.raises(DataFormatError, match="size"):
        Boxes([[0, 0, 0]], [[1, -1, 1]], [0], [0])
    tt = BoundingBoxes(["a", "b"], min_size=0.01)
    cloud = _box_cloud(Boxes([[0, 0, 0]], [[1, 0.005, 1]], [0], [0]))
    with pytest.raises(DataFormatError, match=r"room\.ply.*box 0 is degenerate"):
        tt.check(cloud)
    with pytest.raises(DataFormatError, match="yaw"):
        tt.check(_box_cloud(Boxes([[0, 0, 0]], [[1, 1, 1]], [np.nan], [0])))
    with pytest.raises(DataFormatError, match="label 5"):
        tt.check(_box_cloud(Boxes([[0, 0, 0]], [[1, 1, 1]], [0], [5])))
    with pytest.raises(DataFormatError, match=r"geometry\.Boxes"):
        tt.check(PointCloud(np.zeros((3, 3)), target=3))


def test_keypoint_bad_input():
    tt = KeypointTarget(["tip", "tail"], axes=True)
    pts = np.random.default_rng(0).uniform(0, 1, (50, 3))
    with pytest.raises(DataFormatError, match="3 keypoints, expected 2"):
        tt.check(PointCloud(pts, target=Keypoints(np.zeros((3, 3)), axes=np.ones((3, 3)))))
    with pytest.raises(DataFormatError, match="no axes"):
        tt.check(PointCloud(pts, target=Keypoints(np.zeros((2, 3)))))
    with pytest.raises(DataFormatError, match="non-zero"):
        tt.check(PointCloud(pts, target=Keypoints(np.zeros((2, 3)), axes=np.zeros((2, 3)))))
    a = PointCloud(pts, target=Keypoints(np.zeros((2, 3)), axes=np.ones((2, 3))))
    b = PointCloud(pts, target=Keypoints(np.zeros((3, 3)), axes=np.ones((3, 3))))
    with pytest.raises(ShapeError, match=r"\[2, 3\] keypoints"):
        tt.collate([a, b])
    # outside the scene: kept by default, an error with max_outside
    far = PointCloud(pts, target=Keypoints([[0.5, 0.5, 0.5], [5, 0.5, 0.5]], axes=np.ones((2, 3))))
    tt.check(far)
    with pytest.raises(DataFormatError, match=r"keypoint 1 \(tail\).*outside"):
        KeypointTarget(["tip", "tail"], axes=True, max_outside=1.0).check(far)


# -- detection: assignment, loss, decoding -------------------------------------------------------


def _batch(clouds, target, scale=10.0):
    vox = Voxelizer(scale=scale, features=("rgb",))
    samples = [vox(c.replace(attrs={"rgb": c.attrs["rgb"].astype(np.float32) / 255})) for c in clouds]
    return collate(samples, target)


def test_assignment_peaks_and_perfect_prediction_decodes_to_the_boxes():
    k = 2
    loss = CenterDetectionLoss(k)
    pos = torch.tensor([[0.0, 0, 0], [1.0, 1.0, 0.2], [1.2, 1.0, 0.1], [3.0, 3.0, 0]])
    boxes = torch.tensor([[1.1, 1.0, 0.5, 1.0, 0.5, 1.0, 0.3]])
    heat, reg, mask = loss.assign(pos, boxes, torch.tensor([1]))
    # cells 1 and 2 are both 0.1 from the centre; the first nearest is the peak
    assert heat[1, 1] == 1.0 and heat[:, 0].abs().sum() == 0
    sigma = max(0.1, 0.25 * 0.5)
    assert heat[2, 1] == pytest.approx(math.exp(-0.01 / (2 * sigma**2)), rel=1e-5)
    assert heat[0, 1] == pytest.approx(math.exp(-(1.1**2 + 1) / (2 * sigma**2)), rel=1e-4)
    assert mask.tolist() == [False, True, True, False]
    assert torch.allclose(reg[1, :3], boxes[0, :3] - pos[1])
    assert torch.allclose(reg[1, 3:6], torch.log(boxes[0, 3:6]))
    assert torch.allclose(reg[1, 6:], encode_yaw(boxes[0, 6]))
    # a perfect output: logits high exactly at the peak, regression = the targets
    c = detection_columns(k)
    pred = torch.zeros(1, 4, 12 + k)
    pred[0, :, 0] = 1
    pred[0, :, c["position"]] = pos
    pred[0, :, c["heat"]] = -10
    pred[0, 1, 4 + 1] = 10
    pred[0, :, c["reg"]] = reg
    det = decode_detections(pred, k)[0]
    assert det["labels"].tolist() == [1]
    assert box_iou_3d(det["boxes"], boxes.numpy())[0, 0] == pytest.approx(1, abs=1e-5)
    y = {"boxes": boxes, "labels": torch.tensor([1]), "batch": torch.tensor([0])}
    good = loss(pred, y)
    bad = pred.clone()
    bad[0, 1, 4 + 1] = -10
    assert good < loss(bad, y)
    # yaw is pi-periodic: the same box turned by pi gives the same targets
    _, reg2, _ = loss.assign(pos, boxes + torch.tensor([0, 0, 0, 0, 0, 0, math.pi]), torch.tensor([1]))
    assert torch.allclose(reg, reg2, atol=1e-5)


def test_detection_head_loss_and_empty_sample():
    tt = BoundingBoxes(["a", "b"])
    empty = _box_cloud(Boxes(np.zeros((0, 3)), np.zeros((0, 3)), [], []), seed=1)
    x, y = _batch([_box_cloud(), empty], tt)
    assert "point_xyz" in x and y["batch"].tolist() == [0, 0, 0]
    head = CenterHead(in_channels=3, num_outputs=tt.num_outputs, down=1, hidden=8)
    from fastai_sparse.engine import SparseTensor

    st = SparseTensor(x["coords"], x["feats"], batch_size=2)
    out = head(st, x)
    tt.check_output(out, x, y)
    # every cell's position is the mean of its points: inside the points' range of its sample
    for b, cl in enumerate([_box_cloud(), empty]):
        v = out[b][out[b, :, 0] > 0]
        assert (v[:, 1:4].min(0).values >= torch.from_numpy(cl.xyz.min(0)) - 1e-5).all()
    loss = tt.loss_func()(out, y)
    loss.backward()
    assert torch.isfinite(loss) and head.heat.weight.grad is not None
    # a batch with only empty samples trains too
    x, y = _batch([empty], tt)
    out = head(SparseTensor(x["coords"], x["feats"], batch_size=1), x)
    loss = tt.loss_func()(out, y)
    loss.backward()
    assert torch.isfinite(loss) and len(y["boxes"]) == 0
    m = DetectionMAP(tt, 0.25)
    m.update(out.detach(), y)
    assert math.isnan(m.value)  # no ground truth: mAP undefined, not an error


def test_missing_point_xyz_is_a_clear_error():
    tt = BoundingBoxes(["a"])
    x, _ = _batch([_box_cloud()], tt)
    del x["point_xyz"]
    from fastai_sparse.engine import SparseTensor

    head = CenterHead(3, tt.num_outputs, down=0, hidden=8)
    with pytest.raises(DataFormatError, match="point_xyz"):
        head(SparseTensor(x["coords"], x["feats"]), x)


def test_point_rows_at_stride():
    from fastai_sparse.engine import SparseConv3d, SparseTensor

    tt = BoundingBoxes(["a"])
    x, _ = _batch([_box_cloud(), _box_cloud(seed=3)], tt)
    st = SparseTensor(x["coords"], x["feats"])
    t = SparseConv3d(3, 4, 2, 2)(SparseConv3d(3, 3, 2, 2)(st))
    rows = point_rows(t, x)
    pc = x["coords"][x["inverse"]].long()
    want = torch.cat([pc[:, :1], (pc[:, 1:] // 4) * 4], 1)
    assert torch.equal(t.coords.long()[rows], want)


def test_detection_map_metric_from_outputs():
    tt = BoundingBoxes(["a", "b"])
    c = detection_columns(2)
    gt = torch.tensor([[1.0, 1.0, 0.5, 1.0, 0.5, 1.0, 0.3], [3.0, 3.0, 0.5, 0.5, 0.5, 1.0, 0.0]])
    pos = torch.tensor([[1.0, 1.0, 0.0], [3.0, 3.0, 0.0], [0.0, 0.0, 0.0]])
    pred = torch.zeros(1, 3, 14)
    pred[0, :, 0] = 1
    pred[0, :, c["position"]] = pos
    pred[0, :, c["heat"]] = -10
    pred[0, 0, 4] = 5  # class a at box 0: correct
    pred[0, 1, 4] = 4  # class a at box 1: wrong class (box 1 is b)
    loss = CenterDetectionLoss(2)
    for j in range(2):
        _, reg, _ = loss.assign(pos[j : j + 1], gt[j : j + 1], torch.tensor([0]))
        pred[0, j, c["reg"]] = reg[0]
    y = {"boxes": gt, "labels": torch.tensor([0, 1]), "batch": torch.tensor([0, 0])}
    m = DetectionMAP(tt, 0.5)
    m.reset()
    m.accumulate(SimpleNamespace(pred=pred, yb=(y,)))
    # class a: TP (score .993) then FP (.982): AP 1; class b: missed: AP 0 -> mAP 0.5
    assert m.value == pytest.approx(0.5)
    assert m.last["ap"].tolist() == [1.0, 0.0]
    assert m.name == "map-0.5"
    boxes = tt.decode(pred)[0]
    assert isinstance(boxes, Boxes) and len(boxes) == 2
    js = tt.result_json(pred[0])
    assert js["boxes"][0]["class"] == "a" and js["boxes"][0]["score"] == pytest.approx(1 / (1 + math.exp(-5)))
    assert np.allclose(js["boxes"][0]["center"], gt[0, :3].tolist(), atol=1e-5)


# -- keypoints --------------------------------------------------------------------------------


def test_vote_head_matches_a_naive_computation():
    from fastai_sparse.engine import SparseTensor

    tt = KeypointTarget(["tip", "tail"], axes=True)
    rng = np.random.default_rng(0)
    clouds = [
        PointCloud(
            rng.uniform(0, 1, (80, 3)), target=Keypoints(rng.uniform(0, 1, (2, 3)), axes=np.eye(3)[:2])
        )
        for _ in range(2)
    ]
    samples = [Voxelizer(8, features=("ones",))(c) for c in clouds]
    x, y = collate(samples, tt)
    head = VoteKeypointHead(1, tt.num_outputs, axes=True, hidden=8).eval()
    torch.nn.init.normal_(head.mlp[-1].weight)
    st = SparseTensor(x["coords"], x["feats"], batch_size=2)
    out = head(st, x)
    tt.check_output(out, x, y)
    h = head.mlp(x["feats"])
    k = 2
    for b in range(2):
        rows = slice(int(x["voxel_offsets"][b]), int(x["voxel_offsets"][b + 1]))
        inv = x["inverse"][x["point_offsets"][b] : x["point_offsets"][b + 1]]
        xyz = x["point_xyz"][x["point_offsets"][b] : x["point_offsets"][b + 1]]
        pos = torch.stack([xyz[inv == r].mean(0) for r in range(rows.start, rows.stop)])
        w = torch.softmax(h[rows, 3 * k : 4 * k], 0)
        votes = pos[:, None] + h[rows, : 3 * k].reshape(-1, k, 3)
        kp = (w[..., None] * votes).sum(0)
        var = (w * ((votes - kp) ** 2).sum(-1)).sum(0)
        parts = tt.split_output(out)
        assert torch.allclose(parts["points"][b], kp, atol=1e-5)
        assert torch.allclose(parts["variance"][b], var, atol=1e-5)
        # the loss term is the weighted mean squared error of the individual votes
        gt = y["points"][b]
        direct = (w * ((votes - gt) ** 2).sum(-1)).sum(0)
        assert torch.allclose(((kp - gt) ** 2).sum(-1) + var, direct, atol=1e-5)
    loss = KeypointLoss(2, axes=True)(out, y)
    loss.backward()
    assert torch.isfinite(loss)
    kps = tt.decode(out)
    assert len(kps) == 2 and np.allclose(np.linalg.norm(kps[0].axes, axis=1), 1, atol=1e-5)
    js = tt.result_json(out[0].detach())
    assert [r["name"] for r in js["keypoints"]] == ["tip", "tail"] and len(js["keypoints"][0]["axis"]) == 3


def test_keypoint_metrics_hand_case():
    tt = KeypointTarget(["a", "b"], axes=True)
    gt = {"points": torch.zeros(1, 2, 3), "axes": torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]])}
    pts = torch.tensor([[0.05, 0, 0, 0, 0.3, 0]])
    axes = torch.tensor([[1.0, 0, 0, 1.0, 0, 0]])
    pred = torch.cat([pts, axes, torch.zeros(1, 2)], 1)
    learn = SimpleNamespace(pred=pred, yb=(gt,))
    values = {}
    for m in (KeypointDistance(tt), PCK(tt), PCK(tt, 0.5), AxisAngleError(tt)):
        m.reset()
        m.accumulate(learn)
        values[m.name] = m.value
    assert values == pytest.approx(
        {"mean-distance": 0.175, "pck-0.1": 0.5, "pck-0.5": 1.0, "axis-angle-error": 45.0}
    )


def test_point_feature_voxelizer_feeds_vfe():
    from fastai_sparse.models import VFE
    from fastai_sparse.models.detection import PointFeatureVoxelizer

    cloud = _box_cloud()
    cloud = cloud.replace(attrs={"rgb": cloud.attrs["rgb"].astype(np.float32) / 255})
    s = PointFeatureVoxelizer(scale=4, features=("rgb", "xyz"))(cloud)
    assert s.point_feats.shape == (len(cloud), 6)
    # the voxel features are the per-voxel means of the point features
    for v in (0, len(s.coords) // 2, len(s.coords) - 1):
        assert np.allclose(s.point_feats[s.inverse == v].mean(0), s.feats[v], atol=1e-5)
    assert ((s.point_feats[:, 3:] >= 0) & (s.point_feats[:, 3:] < 1)).all()
    x, _ = collate([s], BoundingBoxes(["a", "b"]))
    out = VFE(in_channels=6)(x["point_feats"], x["inverse"], len(x["coords"]))
    assert out.shape == (len(x["coords"]), 32)
