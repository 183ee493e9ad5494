"""The embedded synthetic datasets: determinism, splits, contracts, geometry and difficulty."""

import pickle
import time
from collections.abc import Sequence

import numpy as np
import pytest
from scipy.spatial import cKDTree

from fastai_sparse.builtin.synthetic import (
    SyntheticDetectionRooms,
    SyntheticKeypoints,
    SyntheticParts,
    SyntheticRooms,
    SyntheticShapes,
    colour_nearest_mean_miou,
    confusion_miou,
    instance_iou,
    make_scene,
)
from fastai_sparse.errors import UnknownNameError
from fastai_sparse.geometry import Boxes, Keypoints, PointCloud

SMALL = {
    "rooms": lambda **kw: SyntheticRooms(points=3000, **kw),
    "detection": lambda **kw: SyntheticDetectionRooms(points=3000, **kw),
    "shapes": lambda **kw: SyntheticShapes(points=512, **kw),
    "parts": lambda **kw: SyntheticParts(points=512, **kw),
    "keypoints": lambda **kw: SyntheticKeypoints(points=512, **kw),
    "keypoints-l": lambda **kw: SyntheticKeypoints(points=512, kind="lshape", **kw),
}


def _same(a: PointCloud, b: PointCloud) -> bool:
    if not np.array_equal(a.xyz, b.xyz) or a.attrs.keys() != b.attrs.keys():
        return False
    if not all(np.array_equal(a.attrs[k], b.attrs[k]) for k in a.attrs):
        return False
    ta, tb = a.target, b.target
    if isinstance(ta, Boxes):
        return all(
            np.array_equal(getattr(ta, f), getattr(tb, f)) for f in ("centers", "sizes", "yaw", "labels")
        )
    if isinstance(ta, Keypoints):
        return np.array_equal(ta.points, tb.points) and np.array_equal(ta.axes, tb.axes)
    return ta == tb


@pytest.mark.parametrize("kind", SMALL)
def test_deterministic_per_index_and_distinct_across_indices(kind):
    ds = SMALL[kind](n=4, seed=3)
    again = SMALL[kind](n=4, seed=3)
    assert isinstance(ds, Sequence) and len(ds) == 4
    a0, a1 = ds[0], ds[1]
    assert _same(a0, ds[0]) and _same(a0, again[0]) and _same(ds[-1], ds[3])
    assert not np.array_equal(a0.xyz, a1.xyz)
    assert not np.array_equal(a0.xyz, SMALL[kind](n=4, seed=4)[0].xyz)
    assert a0.meta["id"].endswith("/train/0") and a0.meta["index"] == 0
    assert [c.meta["index"] for c in ds[1:3]] == [1, 2] and len(list(ds)) == 4
    with pytest.raises(IndexError):
        ds[4]
    with pytest.raises(IndexError):
        ds[-5]


def _count_builds(monkeypatch, ds) -> list[int]:
    built: list[int] = []
    build = type(ds)._build
    monkeypatch.setattr(type(ds), "_build", lambda self, i: built.append(i) or build(self, i))
    return built


@pytest.mark.parametrize("kind", SMALL)
def test_cache_returns_equal_copies_that_changes_do_not_reach(kind, monkeypatch):
    ds = SMALL[kind](n=3, seed=1)
    fresh = SMALL[kind](n=3, seed=1)[1]
    built = _count_builds(monkeypatch, ds)
    first = ds[1]
    first.xyz[:] = 0
    for v in first.attrs.values():
        v[:] = 0
    first.meta["id"] = "changed"
    second = ds[1]
    assert built == [1]  # generated once, then served from memory
    assert _same(second, fresh) and second.meta["id"] == fresh.meta["id"]
    assert second.xyz is not ds[1].xyz


def test_cache_holds_at_most_cache_bytes_least_recently_used_out(monkeypatch):
    ds = SyntheticRooms(points=1000, n=4)
    item = ds[0].xyz.nbytes + sum(v.nbytes for v in ds[0].attrs.values())
    ds = SyntheticRooms(points=1000, n=4)
    ds.cache_bytes = int(2.5 * item)  # room for two items
    built = _count_builds(monkeypatch, ds)
    for i in (0, 1, 0, 2, 1, 0):
        ds[i]
    # 0 and 1 cached; 0 used, so 2 evicts 1; 1 evicts 0; 0 is built again
    assert built == [0, 1, 2, 1, 0]
    ds2 = SyntheticRooms(points=1000, n=4)
    ds2.cache_bytes = 0
    built2 = _count_builds(monkeypatch, ds2)
    ds2[3], ds2[3]
    assert built2 == [3, 3]


def test_changed_settings_empty_the_cache():
    ds = SyntheticRooms(points=1000, n=2)
    assert len(ds[0]) == 1000
    ds.points = 500
    assert len(ds[0]) == 500 and _same(ds[0], SyntheticRooms(points=500, n=2)[0])


def test_cache_is_not_pickled():
    ds = SyntheticRooms(points=2000, n=4)
    list(ds)  # every item cached
    blob = pickle.dumps(ds)
    assert len(blob) < 2000 * 12  # less than one item's xyz: no cached item travels
    again = pickle.loads(blob)
    assert _same(again[2], ds[2]) and again[2].meta["id"] == ds[2].meta["id"]


@pytest.mark.parametrize("kind", SMALL)
def test_splits_are_disjoint(kind):
    seen = {}
    for split in ("train", "valid", "test"):
        ds = SMALL[kind](n=6, split=split)
        for c in ds:
            key = c.xyz.tobytes()
            assert key not in seen, f"{c.meta['id']} equals {seen[key]}"
            seen[key] = c.meta["id"]
            assert c.meta["split"] == split


@pytest.mark.parametrize("kind", SMALL)
def test_contract_shapes_dtypes_and_repr(kind):
    ds = SMALL[kind](n=3)
    c = ds[0]
    n = len(c)
    assert c.xyz.dtype == np.float32 and c.xyz.shape == (n, 3) and np.isfinite(c.xyz).all()
    nrm = c.attrs["normals"]
    assert nrm.dtype == np.float32 and nrm.shape == (n, 3)
    np.testing.assert_allclose(np.linalg.norm(nrm, axis=1), 1, atol=1e-5)
    for k in ("labels", "instance"):
        if k in c.attrs:
            assert c.attrs[k].dtype == np.int64 and c.attrs[k].shape == (n,)
    if "rgb" in c.attrs:
        assert c.attrs["rgb"].dtype == np.uint8 and c.attrs["rgb"].shape == (n, 3)
    r = repr(ds)
    assert type(ds).__name__ in r and "split='train'" in r and "seed=0" in r
    text = ds.describe()
    assert "chance" in text and all(name.split("/")[-1] in text for name in ds.classes)


def test_rooms_labels_classes_and_structure():
    ds = SyntheticRooms(n=8, points=4000)
    assert ds.classes == ("floor", "wall", "table", "chair", "cabinet", "lamp", "box")
    counts = np.zeros(len(ds.classes), int)
    for c in ds:
        y = c.attrs["labels"]
        assert y.min() >= 0 and y.max() < len(ds.classes)
        counts += np.bincount(y, minlength=len(ds.classes))
        floor = y == 0
        np.testing.assert_allclose(c.xyz[floor, 2], 0, atol=1e-6)
        np.testing.assert_allclose(c.attrs["normals"][floor], [[0, 0, 1]] * int(floor.sum()), atol=1e-6)
        walls = y == 1
        assert np.abs(c.attrs["normals"][walls, 2]).max() < 1e-6  # vertical walls
        assert (c.attrs["instance"][floor] == 0).all()
        Lx, Ly, H = c.meta["room_size"]
        assert (
            c.xyz[:, :2].min() > -1e-4 and (c.xyz[:, 0] < Lx + 1e-4).all() and (c.xyz[:, 1] < Ly + 1e-4).all()
        )
        assert c.xyz[:, 2].max() <= H + 1e-4
        # each instance has a single class
        for inst in np.unique(c.attrs["instance"]):
            assert len(np.unique(y[c.attrs["instance"] == inst])) == 1
    assert (counts > 0).all(), dict(zip(ds.classes, counts))


def _inside(xyz, center, size, yaw, margin=0.0):
    c, s = np.cos(yaw), np.sin(yaw)
    d = xyz - center
    local = np.c_[c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]]
    return (np.abs(local) <= size / 2 - margin).all(1)


def test_detection_boxes_enclose_their_objects_only():
    ds = SyntheticDetectionRooms(n=6, points=6000)
    labels_seen = set()
    for c in ds:
        boxes = c.target
        assert isinstance(boxes, Boxes)
        assert len(boxes) == len(c.meta["objects"]) > 0
        inst = c.attrs["instance"]
        for k, rec in enumerate(c.meta["objects"]):
            mine = inst == rec["instance"]
            assert mine.sum() > 0
            inside = _inside(c.xyz.astype(np.float64), boxes.centers[k], boxes.sizes[k] + 2e-4, boxes.yaw[k])
            assert inside[mine].mean() >= 0.99
            deep = _inside(
                c.xyz.astype(np.float64), boxes.centers[k], boxes.sizes[k], boxes.yaw[k], margin=0.02
            )
            assert not deep[~mine].any(), f"{c.meta['id']}: other points deep inside box {k}"
            # tight: the object's points reach every face of its box (within 3 cm)
            cs, sn = np.cos(boxes.yaw[k]), np.sin(boxes.yaw[k])
            d = c.xyz[mine] - boxes.centers[k]
            local = np.c_[cs * d[:, 0] + sn * d[:, 1], -sn * d[:, 0] + cs * d[:, 1], d[:, 2]]
            np.testing.assert_allclose(local.max(0), boxes.sizes[k] / 2, atol=0.03)
            np.testing.assert_allclose(local.min(0)[:2], -boxes.sizes[k, :2] / 2, atol=0.03)
            assert local.min(0)[2] < -boxes.sizes[k, 2] / 2 + 0.15  # thin legs: few points near the floor
            # per-point class agrees with the box class
            assert (c.attrs["labels"][mine] == 2 + boxes.labels[k]).all()
            # boxes stand on the floor
            assert abs(boxes.centers[k, 2] - boxes.sizes[k, 2] / 2) < 1e-5
        labels_seen |= set(boxes.labels.tolist())
    assert labels_seen == set(range(len(ds.classes)))
    assert ds.point_classes == ("floor", "wall", "box", "table", "chair", "cabinet")


def test_shapes_classes_balanced_and_sphere_normals_analytic():
    ds = SyntheticShapes(n=16, points=1024)
    targets = [c.target for c in ds]
    assert targets == [i % 8 for i in range(16)]
    assert ds[1].meta["category"] == "sphere"
    for i in (1, 9):  # spheres: world = R diag(s) local, local = unit-sphere * 0.5
        c = ds[i]
        R, s = c.meta["pose"]["rotation"], c.meta["pose"]["scale"]
        q = (c.xyz.astype(np.float64) @ R) / s
        np.testing.assert_allclose(np.linalg.norm(q, axis=1), 0.5, atol=1e-5)
        want = (q / s) @ R.T  # (R diag(s))^-T q
        want /= np.linalg.norm(want, axis=1, keepdims=True)
        assert (np.einsum("ij,ij->i", want, c.attrs["normals"]) > 1 - 1e-5).all()
    # isotropic and untilted: sphere normals parallel to position - centre
    iso = SyntheticShapes(n=2, classes=("cube", "sphere"), scale=(1.0, 1.0), max_tilt=0.0)[1]
    radial = iso.xyz / np.linalg.norm(iso.xyz, axis=1, keepdims=True)
    assert (np.einsum("ij,ij->i", radial, iso.attrs["normals"]) > 1 - 1e-5).all()


def test_shapes_outward_normals_on_convex_primitives():
    ds = SyntheticShapes(
        n=8, points=1024, classes=("cube", "sphere", "cylinder", "cone", "pyramid", "capsule")
    )
    for c in ds[:6]:
        # convex and centred on its box centre: outward normals point away from the centroid
        d = c.xyz - c.xyz.mean(0)
        assert (np.einsum("ij,ij->i", d, c.attrs["normals"]) > -1e-3).mean() > 0.99, c.meta["category"]


def test_parts_global_ids_and_categories():
    ds = SyntheticParts(n=40, points=1024)
    assert ds.parts_of == {
        "airplane": [0, 1, 2, 3],
        "chair": [4, 5, 6, 7],
        "lamp": [8, 9, 10],
        "mug": [11, 12],
        "table": [13, 14],
    }
    assert ds.part_names[12] == "mug/handle" and ds.classes == ds.part_names
    seen = set()
    for c in ds:
        cat = c.meta["category"]
        assert ds.categories[c.meta["category_index"]] == cat
        y = c.attrs["labels"]
        assert set(np.unique(y)) <= set(ds.parts_of[cat])
        seen |= set(y.tolist())
    assert seen == set(range(len(ds.part_names)))
    base = ds.majority_baseline(20)
    assert 0.1 < base < 0.6
    # subset of categories renumbers globally from 0
    sub = SyntheticParts(n=2, categories=("mug", "lamp"))
    assert sub.parts_of == {"mug": [0, 1], "lamp": [2, 3, 4]}


def test_instance_iou_hand_count():
    true = np.array([0, 0, 1, 1])
    assert instance_iou(np.array([0, 0, 0, 1]), true, [0, 1, 2]) == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)


def test_confusion_miou_hand_count():
    y = np.array([0, 0, 1, 2])
    p = np.array([0, 1, 1, 1])
    # class 0: 1/2, class 1: 1/3, class 2: 0/1
    assert confusion_miou(p, y, 4) == pytest.approx((0.5 + 1 / 3 + 0) / 3)


@pytest.mark.parametrize("kind", ["arrow", "lshape"])
def test_keypoints_on_surface_with_unit_axes(kind):
    ds = SyntheticKeypoints(n=8, points=2048, kind=kind)
    K = len(ds.keypoint_names)
    for c in ds:
        kp = c.target
        assert isinstance(kp, Keypoints) and len(kp) == K
        assert kp.labels.tolist() == list(range(K))
        np.testing.assert_allclose(np.linalg.norm(kp.axes, axis=1), 1, atol=1e-5)
        dist, _ = cKDTree(c.xyz).query(kp.points)
        assert dist.max() < 0.06, (c.meta["id"], dist)
        if kind == "arrow":  # axis = tail-to-tip direction
            d = kp.points[0] - kp.points[1]
            np.testing.assert_allclose(d / np.linalg.norm(d), kp.axes[0], atol=1e-5)
        else:  # the long end lies along the corner's axis
            d = kp.points[1] - kp.points[0]
            assert abs(np.dot(d / np.linalg.norm(d), kp.axes[0])) > 0.95
            assert abs(np.dot(kp.axes[0], kp.axes[2])) < 1e-5  # the arms are perpendicular
    assert 0.2 < ds.mean_baseline(8) < 1.0


def test_colour_alone_does_not_solve_rooms():
    """The 'hard enough' requirement: no-geometry predictors score low on held-out rooms."""
    train, valid = SyntheticRooms(n=10, points=4000), SyntheticRooms(n=5, points=4000, split="valid")
    k = len(train.classes)
    yt = np.concatenate([c.attrs["labels"] for c in train])
    ct = np.concatenate([c.attrs["rgb"] for c in train]).astype(np.float64)
    yv = np.concatenate([c.attrs["labels"] for c in valid])
    cv = np.concatenate([c.attrs["rgb"] for c in valid]).astype(np.float64)
    # independent nearest class-mean classifier
    means = np.stack([ct[yt == j].mean(0) for j in range(k)])
    pred = np.argmin(((cv[:, None] - means[None]) ** 2).sum(-1), 1)
    inter = np.array([((pred == j) & (yv == j)).sum() for j in range(k)])
    union = np.array([((pred == j) | (yv == j)).sum() for j in range(k)])
    nearest_mean = (inter[union > 0] / union[union > 0]).mean()
    assert nearest_mean < 0.3
    assert colour_nearest_mean_miou(ct, yt, cv, yv, k) == pytest.approx(nearest_mean)
    # a stronger colour-only model: majority class per 16^3 colour bin (a Bayes classifier on colour)
    bins = lambda c: (c // 16).astype(int) @ np.array([256, 16, 1])  # noqa: E731
    table = np.zeros((4096, k))
    np.add.at(table, (bins(ct), yt), 1)
    pred_bin = table.argmax(1)[bins(cv)]
    assert confusion_miou(pred_bin, yv, k) < 0.5
    # the constant predictor
    assert confusion_miou(np.full_like(yv, np.bincount(yt).argmax()), yv, k) < 0.1
    ch = train.chance_levels(4)
    assert ch["constant"] < 0.1 and ch["colour"] < 0.3


def test_make_scene_and_bad_arguments():
    c = make_scene("rooms", seed=5, points=1000)
    assert _same(c, SyntheticRooms(n=1, seed=5, points=1000)[0])
    assert isinstance(make_scene("detection", 1, points=1000).target, Boxes)
    assert isinstance(make_scene("keypoints", 1).target, Keypoints)
    assert make_scene("shapes", 2).target == 0 and make_scene("parts", 0).meta["category"] == "airplane"
    with pytest.raises(UnknownNameError, match="room"):
        make_scene("room")
    with pytest.raises(ValueError, match="split must be one of"):
        SyntheticRooms(split="training")
    with pytest.raises(ValueError, match="n must be"):
        SyntheticShapes(n=-1)
    with pytest.raises(ValueError, match="unknown classes"):
        SyntheticShapes(classes=("cube", "blob"))
    with pytest.raises(ValueError, match="unknown kind"):
        SyntheticKeypoints(kind="rod")
    with pytest.raises(ValueError, match="unknown categories"):
        SyntheticParts(categories=("car",))
    with pytest.raises(TypeError):
        SyntheticShapes(n=2)["0"]


def test_generation_speed_sanity(capsys):
    """Not a timed assertion: prints ms per default-sized item so regressions are visible."""
    for ds in (
        SyntheticRooms(n=4),
        SyntheticDetectionRooms(n=4),
        SyntheticShapes(n=4),
        SyntheticParts(n=4),
        SyntheticKeypoints(n=4),
    ):
        t = time.perf_counter()
        for c in ds:
            assert len(c) == ds.points
        with capsys.disabled():
            print(f"\n{type(ds).__name__}: {(time.perf_counter() - t) / 4 * 1e3:.1f} ms per item", end="")


def test_no_hidden_surfaces_against_walls():
    """A cabinet standing against a wall has no back face (a scanner cannot see it), so its points
    do not merge with the wall's: few lie within 2 cm of a wall plane (only along its side edges)."""
    ds = SyntheticRooms(n=12, split="train")
    cabinet = list(ds.classes).index("cabinet")
    near = total = 0
    for room in ds:
        lx, ly, _ = room.meta["room_size"]
        xyz = room.xyz[room.attrs["labels"] == cabinet]
        d = np.minimum.reduce([xyz[:, 0], lx - xyz[:, 0], xyz[:, 1], ly - xyz[:, 1]])
        near, total = near + int((d < 0.02).sum()), total + len(xyz)
    assert total > 1000 and near / total < 0.06
