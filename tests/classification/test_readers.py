"""Readers on format-identical fixtures and on real ModelNet files; bad input."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import trimesh

from fastai_sparse.errors import DataFormatError
from fastai_sparse_classification import (
    MODELNET10_CLASSES,
    MODELNET40_CLASSES,
    MeshFolder,
    ModelNet,
    load_shape,
)
from fastai_sparse_classification.fixtures import FIXTURE_CLASSES, write_off
from fastai_sparse_classification.readers import Y_UP_TO_Z_UP


# ---- ModelNet mesh layout -------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["modelnet40", "modelnet10"])
def test_modelnet_off_layout_counts_and_targets(fixture_roots, variant):
    classes = MODELNET40_CLASSES if variant == "modelnet40" else MODELNET10_CLASSES
    train = ModelNet(fixture_roots["modelnet-off"], "train", variant, points=256)
    valid = ModelNet(fixture_roots["modelnet-off"], "valid", variant, points=256)
    # make_fixture writes 2 train + 1 test file per fixture class; README.txt / .DS_Store ignored
    assert len(train) == 2 * len(FIXTURE_CLASSES) and len(valid) == len(FIXTURE_CLASSES)
    assert train.classes == classes
    for ds, split_dir in ((train, "train"), (valid, "test")):
        for i in range(len(ds)):
            c = ds[i]
            assert Path(c.meta["path"]).parent.name == split_dir
            assert c.meta["category"] == Path(c.meta["path"]).parents[1].name
            assert classes[c.target] == c.meta["category"]
            assert c.meta["id"] == Path(c.meta["path"]).stem
            assert c.xyz.shape == (256, 3) and c.xyz.dtype == np.float32
            assert np.allclose(np.linalg.norm(c.attrs["normals"], axis=1), 1, atol=1e-5)
            assert np.linalg.norm(c.xyz, axis=1).max() == pytest.approx(1, abs=1e-5)  # unit sphere


def test_glued_header_file_is_read(fixture_roots):
    p = fixture_roots["modelnet-off"] / "ModelNet40" / "bed" / "train" / "bed_0001.off"
    assert p.read_text().splitlines()[0].startswith("OFF") and p.read_text().splitlines()[0] != "OFF"
    ds = ModelNet(fixture_roots["modelnet-off"], "train", points=64)
    assert ds[0].meta["path"] == str(p)


def test_samples_lie_on_the_mesh_surface_and_are_seeded(fixture_roots):
    """Independent reference: trimesh's closest-point distance of every sample to the file's mesh."""
    ds = ModelNet(fixture_roots["modelnet-off"], "train", points=500, normalize=False)
    for i in (0, 3):
        c = ds[i]
        m = trimesh.load(c.meta["path"], force="mesh")
        _, dist, tri = trimesh.proximity.closest_point(m, c.xyz.astype(np.float64))
        assert dist.max() < 1e-4
        # sampled normals are the face normals (up to sign conventions of the file's winding)
        cos = np.abs(np.einsum("ij,ij->i", m.face_normals[tri], c.attrs["normals"]))
        assert np.median(cos) > 0.999
        again = ds[i]
        assert np.array_equal(c.xyz, again.xyz)
    assert not np.array_equal(
        ds[0].xyz[:10],
        ModelNet(fixture_roots["modelnet-off"], "train", points=500, normalize=False, seed=1)[0].xyz[:10],
    )


# ---- ModelNet normal_resampled layout -------------------------------------------------------
@pytest.mark.parametrize("variant", ["modelnet40", "modelnet10"])
def test_modelnet_normal_layout(fixture_roots, variant):
    root = fixture_roots["modelnet-normal"]
    train = ModelNet(root, "train", variant, points=10_000)
    test = ModelNet(root, "test", variant, points=10_000)
    folder = root / "modelnet40_normal_resampled"
    ids = (folder / f"{variant}_train.txt").read_text().split()
    assert [it.id for it in train.items] == ids
    assert len(test) == len((folder / f"{variant}_test.txt").read_text().split())
    classes = MODELNET40_CLASSES if variant == "modelnet40" else MODELNET10_CLASSES
    c = train[0]
    assert classes[c.target] == ids[0].rsplit("_", 1)[0] == c.meta["category"]
    # y-up files are turned z-up: compare with the raw file, rotated by hand
    raw = np.loadtxt(c.meta["path"], delimiter=",")
    raw_ds = ModelNet(root, "train", variant, points=10_000, normalize=False)
    got = raw_ds[0]
    assert np.allclose(got.xyz, raw[:, [0, 2, 1]] * [1, -1, 1], atol=1e-6)
    assert np.allclose(got.attrs["normals"], raw[:, 3:] @ Y_UP_TO_Z_UP.T, atol=1e-6)
    kept = ModelNet(root, "train", variant, points=10_000, normalize=False, z_up=False)[0]
    assert np.allclose(kept.xyz, raw[:, :3], atol=1e-6)


def test_layout_auto_prefers_meshes_and_explains_when_nothing_found(fixture_roots, tmp_path):
    both = tmp_path / "both"
    shutil.copytree(fixture_roots["modelnet-off"], both)
    shutil.copytree(
        fixture_roots["modelnet-normal"] / "modelnet40_normal_resampled", both / "modelnet40_normal_resampled"
    )
    assert ModelNet(both, "train").items[0].path.suffix == ".off"
    assert ModelNet(both, "train", layout="resampled").items[0].path.suffix == ".txt"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="found neither ModelNet40"):
        ModelNet(tmp_path / "empty")


# ---- real files -----------------------------------------------------------------------------
def test_real_off_files(real_modelnet):
    for p in sorted((real_modelnet / "off").glob("*.off")):
        c = load_shape(p, 2048, np.random.default_rng(0))
        assert c.xyz.shape == (2048, 3)
        assert np.isfinite(c.xyz).all()
        assert np.allclose(np.linalg.norm(c.attrs["normals"], axis=1), 1, atol=1e-5)
        lo, hi = c.xyz.min(0), c.xyz.max(0)
        assert np.allclose((lo + hi) / 2, 0, atol=1e-5)  # the off-centre stool is centred too
        raw = load_shape(p, 2048, np.random.default_rng(0), normalize=False)
        m = trimesh.load(p, force="mesh", process=False)
        assert np.all(raw.xyz.min(0) >= m.bounds[0] - 1e-3) and np.all(raw.xyz.max(0) <= m.bounds[1] + 1e-3)


def test_real_files_in_modelnet_layouts(real_modelnet, tmp_path):
    mesh_root = tmp_path / "ModelNet40"
    for p in (real_modelnet / "off").glob("*.off"):
        cls = p.stem.rsplit("_", 1)[0]
        (mesh_root / cls / "train").mkdir(parents=True)
        os.symlink(p, mesh_root / cls / "train" / p.name)
    ds = ModelNet(tmp_path, "train", points=512)
    assert sorted(it.id for it in ds.items) == ["bed_0001", "chair_0890", "stool_0002"]
    assert [MODELNET40_CLASSES[it.label] for it in ds.items] == ["bed", "chair", "stool"]

    names = (real_modelnet / "modelnet40_shape_names.txt").read_text().split()
    assert len(names) == 40 and tuple(names) == MODELNET40_CLASSES
    res = tmp_path / "modelnet40_normal_resampled"
    (res / "chair").mkdir(parents=True)
    os.symlink(real_modelnet / "modelnet40_shape_names.txt", res / "modelnet40_shape_names.txt")
    os.symlink(
        real_modelnet / "normal_resampled" / "chair" / "chair_0391.txt", res / "chair" / "chair_0391.txt"
    )
    (res / "modelnet40_train.txt").write_text("chair_0391\n")
    (res / "modelnet40_test.txt").write_text("chair_0391\n")
    c = ModelNet(tmp_path, "test", layout="resampled", points=10_000, normalize=False)[0]
    assert len(c) == 10_000 and c.target == MODELNET40_CLASSES.index("chair")
    extent = c.xyz.max(0) - c.xyz.min(0)
    assert int(np.argmax(extent)) == 2  # the chair stands along z after the y-up -> z-up turn
    sub = ModelNet(tmp_path, "test", layout="resampled", points=1000)[0]
    assert len(sub) == 1000 and len(np.unique(sub.xyz, axis=0)) == 1000  # without replacement


# ---- mesh folders ---------------------------------------------------------------------------
def test_mesh_folder_fraction_split_reads_every_format(fixture_roots):
    root = fixture_roots["mesh-folder"]
    train, valid = MeshFolder(root, "train", points=300), MeshFolder(root, "valid", points=300)
    assert train.classes == ("box", "cone", "sphere")
    files = {p for p in root.rglob("*.*") if p.parent != root}
    got = {it.path for it in train.items} | {it.path for it in valid.items}
    assert got == files and not ({it.path for it in train.items} & {it.path for it in valid.items})
    assert len(valid) == 3  # round(0.2 * 5) = 1 per class
    assert {p.suffix for p in got} == {".off", ".ply", ".obj", ".stl", ".txt"}
    for ds in (train, valid):
        for i in range(len(ds)):
            c = ds[i]
            assert len(c) == 300 and c.attrs["normals"].shape == (300, 3)
            assert ds.classes[c.target] == Path(c.meta["path"]).parent.name
    again = MeshFolder(root, "valid", points=300)
    assert [it.path for it in again.items] == [it.path for it in valid.items]
    other = MeshFolder(root, "valid", points=300, seed=3)
    assert len(other) == 3


def test_mesh_folder_split_folders(fixture_roots):
    root = fixture_roots["mesh-folder-split"]
    train, valid = MeshFolder(root, "train"), MeshFolder(root, "valid")
    assert all(it.path.parts[-3] == "train" for it in train.items)
    assert all(it.path.parts[-3] == "test" for it in valid.items)
    assert (len(train), len(valid)) == (12, 3)
    assert train.counts() == {"box": 4, "cone": 4, "sphere": 4}


def test_point_file_without_normals_gets_estimated_normals(tmp_path):
    m = trimesh.creation.icosphere(subdivisions=3)
    pts = m.sample(500, seed=0) if hasattr(m, "sample") else None
    np.savetxt(tmp_path / "ball.txt", pts, fmt="%.6f")
    c = load_shape(tmp_path / "ball.txt", 1000)
    assert len(c) == 500  # fewer points than asked: all kept, none duplicated
    radial = c.xyz / np.linalg.norm(c.xyz, axis=1, keepdims=True)
    assert np.median(np.einsum("ij,ij->i", radial, c.attrs["normals"])) > 0.95  # outward on a sphere


# ---- bad input ------------------------------------------------------------------------------
def test_zero_area_mesh_names_the_file(tmp_path):
    p = write_off(tmp_path / "flat.off", np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0]]), np.array([[0, 1, 2]]))
    with pytest.raises(DataFormatError, match=r"flat\.off") as e:
        load_shape(p)
    assert "area" in str(e.value)
    q = tmp_path / "nofaces.off"
    q.write_text("OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n")
    with pytest.raises(DataFormatError, match=r"nofaces\.off.*0 faces"):
        load_shape(q)


def test_non_manifold_mesh_is_sampled(tmp_path):
    # three triangles on one edge (non-manifold) plus a dangling triangle sharing one vertex
    v = np.array(
        [[0, 0, 0], [1, 0, 0], [0.5, 1, 0], [0.5, -1, 0], [0.5, 0, 1], [-1, -1, -1], [-1, 0, -1]], float
    )
    f = np.array([[0, 1, 2], [1, 0, 3], [0, 1, 4], [0, 5, 6]])
    m = trimesh.Trimesh(v, f, process=False)
    assert not m.is_watertight
    p = write_off(tmp_path / "nm.off", v, f)
    c = load_shape(p, 400, normalize=False)
    _, dist, _ = trimesh.proximity.closest_point(m, c.xyz.astype(float))
    assert dist.max() < 1e-5 and len(c) == 400


def test_off_with_wrong_counts(tmp_path):
    p = tmp_path / "short.off"
    p.write_text("OFF\n4 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")  # 4 vertices declared, 3 given
    with pytest.raises(DataFormatError, match=r"short\.off.*line 6.*expected x y z"):
        load_shape(p)
    q = tmp_path / "faces.off"
    q.write_text("OFF\n3 2 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")  # 2 faces declared, 1 given
    with pytest.raises(DataFormatError, match=r"faces\.off.*1 face lines, expected 2"):
        load_shape(q)


def test_empty_class_folder(tmp_path, fixture_roots):
    root = tmp_path / "mn"
    shutil.copytree(fixture_roots["modelnet-off"] / "ModelNet40", root / "ModelNet40")
    (root / "ModelNet40" / "sofa" / "train").mkdir(parents=True)
    with pytest.raises(DataFormatError, match=r"sofa.*holds no \.off file"):
        ModelNet(root, "train")
    folder = tmp_path / "mf"
    shutil.copytree(fixture_roots["mesh-folder"], folder)
    (folder / "empty_class").mkdir()
    (folder / "empty_class" / "notes.md").write_text("not a shape")
    with pytest.raises(DataFormatError, match="empty_class"):
        MeshFolder(folder, "train")


def test_unknown_folder_in_modelnet_root(tmp_path, fixture_roots):
    root = tmp_path / "mn"
    shutil.copytree(fixture_roots["modelnet-off"] / "ModelNet40", root / "ModelNet40")
    (root / "ModelNet40" / "spaceship" / "train").mkdir(parents=True)
    with pytest.raises(DataFormatError, match="'spaceship' is not a class"):
        ModelNet(root, "train")


def test_unknown_id_in_resampled_list(tmp_path, fixture_roots):
    root = tmp_path / "res"
    shutil.copytree(fixture_roots["modelnet-normal"], root)
    lst = root / "modelnet40_normal_resampled" / "modelnet40_train.txt"
    lst.write_text(lst.read_text() + "spaceship_0001\n")
    with pytest.raises(DataFormatError, match=r"modelnet40_train\.txt.*spaceship_0001"):
        ModelNet(root, "train")


def _folder_with_bad_files(tmp_path, fixture_roots) -> tuple[Path, list[Path]]:
    folder = tmp_path / "mf"
    shutil.copytree(fixture_roots["mesh-folder"], folder)
    bad = [folder / "box" / "box_broken.ply", folder / "cone" / "cone_broken.off"]
    bad[0].write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nend_header\n\x00"
    )
    bad[1].write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n")
    return folder, bad


def test_unreadable_files_raise_with_their_path(tmp_path, fixture_roots):
    folder, bad = _folder_with_bad_files(tmp_path, fixture_roots)
    ds = MeshFolder(folder, "train", valid_pct=0.0)
    for p in bad:
        i = next(k for k, it in enumerate(ds.items) if it.path == p)
        with pytest.raises(DataFormatError, match=p.name):
            ds[i]


def test_skip_bad_drops_them_with_a_count(tmp_path, fixture_roots):
    folder, bad = _folder_with_bad_files(tmp_path, fixture_roots)
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable file\(s\) of 17") as rec:
        ds = MeshFolder(folder, "train", valid_pct=0.0, skip_bad=True, points=64)
    msg = str(rec[0].message)
    assert all(str(p) in msg for p in bad)
    assert len(ds) == 15 and {p for p, _ in ds.bad} == set(bad)
    assert all(it.path not in bad for it in ds.items)
    for i in range(len(ds)):
        ds[i]
