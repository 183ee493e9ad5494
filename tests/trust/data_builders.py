"""Builders of bad (and good) dataset roots for the catalogue's data rows: ScanNet roots with
labels of the other label source, stale caches, damaged PLY files; shape folders with one
class or a part of ModelNet40. Each takes the test folder and returns ``{name: path}``."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

#: NYU40 id -> raw category id of the ScanNet fixture's categories (its label-table rows)
NYU40_TO_RAW = {1: 1, 5: 2, 2: 3, 7: 4, 39: 56, 18: 13, 3: 7, 4: 11}


def _scannet(tmp: Path, name: str = "scannet") -> Path:
    pytest.importorskip("fastai_sparse_scannet")
    from fastai_sparse_scannet.fixtures import make_fixture

    return make_fixture(tmp / name, vertices=500)


def _rewrite_labels(root: Path, convert) -> None:
    from fastai_sparse_scannet.fixtures import write_ply_mesh
    from fastai_sparse_scannet.reader import read_mesh_ply, scene_files

    for d in sorted((root / "scans").iterdir()):
        f = scene_files(d)["labels"]
        m = read_mesh_ply(f, labels=True)
        write_ply_mesh(f, m["xyz"], m["rgb"], m["faces"], label=convert(m["label"]))


def scannet_root(tmp: Path) -> dict:
    """``{scannet}``: a valid ScanNet v2 root (NYU40 labels PLY files)."""
    return {"scannet": str(_scannet(tmp))}


def scannet_raw_id_root(tmp: Path) -> dict:
    """``{scannet}``: a ScanNet root whose labels PLY files hold raw category ids (older copies)."""
    root = _scannet(tmp)
    _rewrite_labels(root, lambda lab: np.array([NYU40_TO_RAW.get(int(v), 0) for v in lab]))
    return {"scannet": str(root)}


def scannet_prepared(tmp: Path) -> dict:
    """``{scannet}``, ``{cache}``: a ScanNet root and its prepared cache."""
    from fastai_sparse_scannet.prepare import prepare

    root = _scannet(tmp)
    prepare(root, out=tmp / "cache", jobs=1, quiet=True)
    return {"scannet": str(root), "cache": str(tmp / "cache")}


def scannet_labels_edited(tmp: Path) -> dict:
    """After :func:`scannet_prepared`: the labels of scene0001_00 edited by hand (walls cleared)."""
    root = Path(tmp) / "scannet"
    _rewrite_one = root / "scans" / "scene0001_00"
    from fastai_sparse_scannet.fixtures import write_ply_mesh
    from fastai_sparse_scannet.reader import read_mesh_ply, scene_files

    f = scene_files(_rewrite_one)["labels"]
    m = read_mesh_ply(f, labels=True)
    write_ply_mesh(f, m["xyz"], m["rgb"], m["faces"], label=np.where(m["label"] == 1, 0, m["label"]))
    return {"edited_labels": str(f)}


def scannet_labels_trailing_bytes(tmp: Path) -> dict:
    """After :func:`scannet_root`: bytes appended to scene0001_00's labels PLY."""
    from fastai_sparse_scannet.reader import scene_files

    f = scene_files(Path(tmp) / "scannet" / "scans" / "scene0001_00")["labels"]
    f.write_bytes(f.read_bytes() + b"\x00\x01\x02\x03\x04")
    return {"labels": str(f)}


def scannet_labels_fewer_vertices(tmp: Path) -> dict:
    """After :func:`scannet_root`: scene0001_00's labels PLY holds 5 vertices fewer than its mesh."""
    from fastai_sparse_scannet.fixtures import write_ply_mesh
    from fastai_sparse_scannet.reader import read_mesh_ply, scene_files

    f = scene_files(Path(tmp) / "scannet" / "scans" / "scene0001_00")["labels"]
    m = read_mesh_ply(f, labels=True)
    keep = m["faces"].max(1) < len(m["xyz"]) - 5
    write_ply_mesh(f, m["xyz"][:-5], m["rgb"][:-5], m["faces"][keep], label=m["label"][:-5])
    return {"labels": str(f)}


def scannet_scene_listed_without_folder(tmp: Path) -> dict:
    """After :func:`scannet_root`: the train list names scene0999_00, which has no folder."""
    with open(Path(tmp) / "scannet" / "scannetv2_train.txt", "a") as f:
        f.write("scene0999_00\n")
    return {}


def scannet_truncated_mesh(tmp: Path) -> dict:
    """After :func:`scannet_root`: scene0001_00's mesh PLY cut in half."""
    from fastai_sparse_scannet.reader import scene_files

    f = scene_files(Path(tmp) / "scannet" / "scans" / "scene0001_00")["mesh"]
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    return {"mesh": str(f)}


def _shapes(tmp: Path) -> Path:
    pytest.importorskip("fastai_sparse_classification")
    from fastai_sparse_classification import make_fixture

    return make_fixture(tmp / "fixture-shapes", "mesh-folder")


def one_class_folder(tmp: Path) -> dict:
    """``{shapes}``: a mesh folder with a single class sub-folder."""
    src = _shapes(tmp)
    shutil.copytree(src / "sphere", tmp / "shapes" / "sphere")
    return {"shapes": str(tmp / "shapes")}


def modelnet_root(tmp: Path) -> dict:
    """``{modelnet}``: a ModelNet40 root holding 3 of the 40 class folders."""
    pytest.importorskip("fastai_sparse_classification")
    from fastai_sparse_classification import make_fixture

    return {"modelnet": str(make_fixture(tmp / "modelnet", "modelnet-off"))}


def modelnet_one_class(tmp: Path) -> dict:
    """``{modelnet}``: a ModelNet40 root holding 1 of the 40 class folders."""
    modelnet_root(tmp)
    for cls in ("bed", "table"):
        shutil.rmtree(tmp / "modelnet" / "ModelNet40" / cls)
    return {}


def modelnet_bad_off(tmp: Path) -> dict:
    """After :func:`modelnet_root`: one OFF file declares more vertices than it holds."""
    p = tmp / "modelnet" / "ModelNet40" / "chair" / "train" / "chair_0001.off"
    p.write_text("OFF\n3 1 0\n0 0 0\n")
    return {"bad_off": str(p)}


def ply_more_rows_than_declared(tmp: Path) -> dict:
    """``{extra_ply}``: an ASCII PLY whose header declares 3 vertices and whose body holds 5."""
    p = tmp / "extra.ply"
    p.write_text(
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
        "end_header\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n1 1 1\n"
    )
    return {"extra_ply": str(p)}


def ply_trailing_bytes(tmp: Path) -> dict:
    """``{tail_ply}``: a binary PLY room with bytes after its last element."""
    import plyfile

    v = np.zeros(50, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    v["x"] = np.arange(50)
    p = tmp / "tail.ply"
    plyfile.PlyData([plyfile.PlyElement.describe(v, "vertex")], text=False).write(str(p))
    p.write_bytes(p.read_bytes() + b"junk")
    return {"tail_ply": str(p)}


def scannet_prepared_in_root(tmp: Path) -> dict:
    """After :func:`scannet_root`: its cache in the default place (``ROOT/cache``), where a
    dataset reads it."""
    from fastai_sparse_scannet.prepare import prepare

    root = Path(tmp) / "scannet"
    prepare(root, jobs=1, quiet=True)
    return {"cache": str(root / "cache")}


_WEIGHTS: dict[str, Path] = {}


def rooms_weights(tmp: Path) -> dict:
    """``{tmp}/none.pth``: untrained weights of synthetic-rooms-seg in the weights format
    (made once per session; what is predicted does not matter here, only what is read)."""
    import tempfile

    import torch

    from fastai_sparse import get_task
    from fastai_sparse.learner import WEIGHTS_FORMAT

    if "rooms" not in _WEIGHTS:
        torch.manual_seed(0)
        task = get_task("synthetic-rooms-seg")
        model = task.build_model(task.make_voxelizer().num_features)
        path = Path(tempfile.mkdtemp(prefix="trust-data-")) / "rooms.pth"
        state = {"format": WEIGHTS_FORMAT, "task": task.name, "class_names": task.class_names}
        torch.save({**state, "model": type(model).__name__, "state_dict": model.state_dict()}, path)
        _WEIGHTS["rooms"] = path
    shutil.copy(_WEIGHTS["rooms"], tmp / "none.pth")
    return {"weights": str(tmp / "none.pth")}
