"""Small named builders of bad (and good) inputs for the trust tests.

Each builder takes the test's temporary folder and returns a dict of names to use in a
catalogue row's command line (``{name}``), e.g. ``{"room": ".../room.ply"}``. Builders that
need torch import it inside; weights files are made once per session from an untrained model
(a prediction's quality does not matter here, only what is read and written).
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

_CACHE: dict[str, Path] = {}
_SESSION_DIR: list[Path] = []


def _session_dir() -> Path:
    if not _SESSION_DIR:
        import tempfile

        _SESSION_DIR.append(Path(tempfile.mkdtemp(prefix="trust-catalogue-")))
    return _SESSION_DIR[0]


#: Input channels of tasks whose voxelizer learns them from the data (features added by transforms).
_CHANNELS = {"s3dis-seg": 4, "semantickitti-seg": 4}  # rgb + height; remission + position


def weights_file(task_name: str, kind: str = "safetensors") -> Path:
    """Untrained weights of ``task_name`` as ``save_weights`` / ``save_pretrained`` write them
    (cached): ``kind`` ``"safetensors"`` (one file), ``"pth"`` (the older torch format) or
    ``"folder"`` (a model folder)."""
    key = f"{task_name}:{kind}"
    if key not in _CACHE:
        import torch

        from fastai_sparse import get_task
        from fastai_sparse.weights import model_document, write_legacy, write_model_folder, write_weights

        torch.manual_seed(0)
        task = get_task(task_name)
        channels = task.make_voxelizer().num_features or _CHANNELS[task_name]
        model = task.build_model(channels)
        doc = model_document(
            task=task.name,
            class_names=task.class_names,
            config=task.config(),
            in_channels=channels,
            model=type(model).__name__,
        )
        write = {"safetensors": write_weights, "pth": write_legacy, "folder": write_model_folder}[kind]
        suffix = {"safetensors": ".safetensors", "pth": ".pth", "folder": ""}[kind]
        _CACHE[key] = write(_session_dir() / f"{task_name}{suffix}", model.state_dict(), doc)
    return _CACHE[key]


def room_cloud(points: int = 400, seed: int = 0):
    """A small synthetic room (xyz, rgb, labels) as a PointCloud."""
    from fastai_sparse.builtin.synthetic import SyntheticRooms

    key = f"room-{points}-{seed}"
    if key not in _CACHE:
        _CACHE[key] = SyntheticRooms(n=1, split="test", points=points, seed=seed)[0]
    return _CACHE[key]


def write_room(path: Path, points: int = 400) -> Path:
    from fastai_sparse import io

    path.parent.mkdir(parents=True, exist_ok=True)
    io.write_ply(path, room_cloud(points))
    return path


# -- builders: tmp -> names ------------------------------------------------------------------
def rooms_weights(tmp: Path) -> dict:
    """``{weights}``: weights of synthetic-rooms-seg (``model.safetensors``), copied into the test folder."""
    dst = tmp / "model.safetensors"
    shutil.copy(weights_file("synthetic-rooms-seg"), dst)
    return {"weights": str(dst)}


def rooms_legacy_weights(tmp: Path) -> dict:
    """``{legacy}``: weights of synthetic-rooms-seg in the older ``.pth`` format (``model.pth``)."""
    dst = tmp / "model.pth"
    shutil.copy(weights_file("synthetic-rooms-seg", "pth"), dst)
    return {"legacy": str(dst)}


def rooms_model_folder(tmp: Path) -> dict:
    """``{model_dir}``: a model folder of synthetic-rooms-seg (``model/`` as ``train`` writes it);
    ``{model_weights}``, ``{model_config}``: its files."""
    dst = tmp / "model"
    shutil.copytree(weights_file("synthetic-rooms-seg", "folder"), dst)
    return {
        "model_dir": str(dst),
        "model_weights": str(dst / "model.safetensors"),
        "model_config": str(dst / "config.json"),
    }


def shapes_weights(tmp: Path) -> dict:
    """``{shapes_weights}``: weights of synthetic-shapes-cls (another task)."""
    dst = tmp / "shapes.safetensors"
    shutil.copy(weights_file("synthetic-shapes-cls"), dst)
    return {"shapes_weights": str(dst)}


def parts_weights(tmp: Path) -> dict:
    """``{parts_weights}``: weights of shapenet-part-synthetic (needs the ShapeNet plugin)."""
    pytest.importorskip("fastai_sparse_shapenet")
    dst = tmp / "parts.safetensors"
    shutil.copy(weights_file("shapenet-part-synthetic"), dst)
    return {"parts_weights": str(dst)}


def kitti_scans(tmp: Path) -> dict:
    """``{kitti_weights}``: weights of semantickitti-seg; ``{scan}``: ``seq/08/velodyne/000000.bin``
    in the dataset layout with its ground truth ``{label}`` (``seq/08/labels/000000.label``);
    ``{a_scan}``, ``{b_scan}``: two scans named ``000000.bin`` outside the layout (``a/``, ``b/``)."""
    pytest.importorskip("fastai_sparse_semantickitti")
    from fastai_sparse_semantickitti.fixtures import synthetic_scan
    from fastai_sparse_semantickitti.reader import write_label, write_scan

    xyz, rem, sem, inst = synthetic_scan(0, 1500)
    seq = tmp / "dataset" / "sequences" / "08"
    write_scan(seq / "velodyne" / "000000.bin", xyz, rem)
    write_label(seq / "labels" / "000000.label", sem, inst)
    for d in ("a", "b"):
        write_scan(tmp / d / "000000.bin", xyz, rem)
    dst = tmp / "kitti.safetensors"
    shutil.copy(weights_file("semantickitti-seg"), dst)
    return {
        "kitti_weights": str(dst),
        "scan": str(seq / "velodyne" / "000000.bin"),
        "label": str(seq / "labels" / "000000.label"),
        "a_scan": str(tmp / "a" / "000000.bin"),
        "b_scan": str(tmp / "b" / "000000.bin"),
    }


def s3dis_room(tmp: Path) -> dict:
    """``{s3dis_weights}``: weights of s3dis-seg; ``{room_dir}``: an S3DIS room folder
    (``office_1/`` with ``office_1.txt`` and ``Annotations/``)."""
    pytest.importorskip("fastai_sparse_s3dis")
    from fastai_sparse_s3dis.fixtures import make_room

    make_room(tmp / "office_1", points=600)
    dst = tmp / "s3dis.safetensors"
    shutil.copy(weights_file("s3dis-seg"), dst)
    return {"s3dis_weights": str(dst), "room_dir": str(tmp / "office_1")}


def room(tmp: Path) -> dict:
    """``{room}``: a valid PLY room ``room.ply``."""
    return {"room": str(write_room(tmp / "room.ply"))}


def versioned_rooms(tmp: Path) -> dict:
    """``{v1}``, ``{v2}``, ``{v3}``: ``room.v1.ply`` ... (same stem before the version)."""
    return {f"v{i}": str(write_room(tmp / f"room.v{i}.ply")) for i in (1, 2, 3)}


def rooms_in_two_folders(tmp: Path) -> dict:
    """``{a}``, ``{b}``: ``a/room.ply`` and ``b/room.ply`` (same name, different folders)."""
    return {"a": str(write_room(tmp / "a" / "room.ply")), "b": str(write_room(tmp / "b" / "room.ply"))}


def pred_named_input(tmp: Path) -> dict:
    """``{scan}``, ``{scan_pred}``: ``scan.ply`` and an input named ``scan.pred.ply``."""
    return {"scan": str(write_room(tmp / "scan.ply")), "scan_pred": str(write_room(tmp / "scan.pred.ply"))}


def existing_output(tmp: Path) -> dict:
    """``{existing}``: ``old.ply``, an earlier output that must survive."""
    p = tmp / "old.ply"
    p.write_text("ply\nan earlier result the user keeps\n")
    return {"existing": str(p)}


def input_symlink(tmp: Path) -> dict:
    """``{link}``: a symbolic link to ``room.ply`` (``room`` must be built first)."""
    link = tmp / "link.ply"
    link.symlink_to(tmp / "room.ply")
    return {"link": str(link)}


def input_hardlink(tmp: Path) -> dict:
    """``{hard}``: a hard link of ``room.ply`` (``room`` must be built first)."""
    hard = tmp / "hard.ply"
    os.link(tmp / "room.ply", hard)
    return {"hard": str(hard)}


def fifo(tmp: Path) -> dict:
    """``{fifo}``: a named pipe ``pipe.ply`` (reading it would block forever)."""
    p = tmp / "pipe.ply"
    os.mkfifo(p)
    return {"fifo": str(p)}


def folder_named_ply(tmp: Path) -> dict:
    """``{folder}``: a folder named ``scans.ply``."""
    p = tmp / "scans.ply"
    p.mkdir()
    return {"folder": str(p)}


def empty_files(tmp: Path) -> dict:
    """``{empty_ply}``, ``{empty_pth}``, ``{empty_off}``: 0-byte files."""
    out = {}
    for ext in ("ply", "pth", "off"):
        p = tmp / f"empty.{ext}"
        p.touch()
        out[f"empty_{ext}"] = str(p)
    return out


def truncated_ply(tmp: Path) -> dict:
    """``{truncated}``: a binary PLY cut in the middle of its vertex data."""
    full = write_room(tmp / "full.ply")
    data = full.read_bytes()
    p = tmp / "truncated.ply"
    p.write_bytes(data[: len(data) // 2])
    return {"truncated": str(p)}


def header_only_ply(tmp: Path) -> dict:
    """``{header_only}``: an ASCII PLY that declares 10 vertices and holds none."""
    p = tmp / "header.ply"
    p.write_text("ply\nformat ascii 1.0\nelement vertex 10\nproperty float x\nproperty float y\n"
                 "property float z\nend_header\n")  # fmt: skip
    return {"header_only": str(p)}


def not_a_ply(tmp: Path) -> dict:
    """``{csv_ply}``: a CSV file renamed ``points.ply``; ``{junk_txt}``: binary bytes named ``.txt``."""
    p = tmp / "points.ply"
    p.write_text("x,y,z\n0,0,0\n1,1,1\n")
    q = tmp / "junk.txt"
    q.write_bytes(bytes(range(256)) * 4)
    return {"csv_ply": str(p), "junk_txt": str(q)}


def unknown_extension(tmp: Path) -> dict:
    """``{xyz}``: a point file with an extension no reader knows (``cloud.xyz``)."""
    p = tmp / "cloud.xyz"
    p.write_text("0 0 0\n1 1 1\n")
    return {"xyz": str(p)}


def unreadable(tmp: Path) -> dict:
    """``{unreadable}``: a file the user cannot read (root reads everything, so a write-only
    kernel file stands in when running as root)."""
    if os.geteuid() != 0:
        p = tmp / "secret.ply"
        p.write_text("ply\n")
        p.chmod(0)
        return {"unreadable": str(p)}
    p = Path("/proc/sys/vm/drop_caches")
    try:
        p.open("rb").close()
    except PermissionError:
        return {"unreadable": str(p)}
    pytest.skip("no unreadable file available to root on this machine")


def bad_weights(tmp: Path) -> dict:
    """``{truncated_pth}`` (half an older weights file), ``{truncated_st}`` (a third of a
    safetensors file), ``{dict_pth}`` (a torch file of something else), ``{bare_st}`` (a
    safetensors file without fastai-sparse metadata), ``{random_bin}`` (random bytes),
    ``{evil_pth}`` (a pickle that would create ``{evil_marker}`` if it were run)."""
    import pickle

    import torch
    from safetensors.torch import save_file

    data = weights_file("synthetic-rooms-seg", "pth").read_bytes()
    (tmp / "truncated.pth").write_bytes(data[: len(data) // 3])
    data = weights_file("synthetic-rooms-seg").read_bytes()
    (tmp / "truncated.safetensors").write_bytes(data[: len(data) // 3])
    torch.save({"weights": 1}, tmp / "dict.pth")
    save_file({"w": torch.zeros(2)}, str(tmp / "bare.safetensors"))
    (tmp / "random.bin").write_bytes(np.random.default_rng(0).bytes(4096))
    marker = tmp / "PWNED"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp / "evil.pth").write_bytes(pickle.dumps(Evil(), protocol=2))
    return {
        "truncated_pth": str(tmp / "truncated.pth"),
        "truncated_st": str(tmp / "truncated.safetensors"),
        "dict_pth": str(tmp / "dict.pth"),
        "bare_st": str(tmp / "bare.safetensors"),
        "random_bin": str(tmp / "random.bin"),
        "evil_pth": str(tmp / "evil.pth"),
        "evil_marker": str(marker),
    }


class Evil:
    """Unpickling this object calls ``open(marker, "w")``: the file appears iff the pickle ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def crafted_pickle(path: Path, marker: Path) -> Path:
    """A raw pickle whose loading creates ``marker``."""
    import pickle

    path.write_bytes(pickle.dumps(Evil(marker), protocol=2))
    return path


def crafted_torch_file(path: Path, marker: Path) -> Path:
    """A ``torch.save`` zip whose data pickle creates ``marker`` when unpickled."""
    import torch

    torch.save({"format": "fastai-sparse-weights/1", "state_dict": {}, "payload": Evil(marker)}, path)
    assert not marker.exists()  # saving did not run it
    return path


def evil_pickle(tmp: Path) -> dict:
    """``{evil_pkl}``: a fastai-style ``export.pkl`` that creates ``{marker}`` if unpickled."""
    return {"evil_pkl": str(crafted_pickle(tmp / "export.pkl", tmp / "ran")), "marker": str(tmp / "ran")}


def evil_torch_file(tmp: Path) -> dict:
    """``{evil_zip}``: a ``torch.save`` file ``model.pth`` whose pickle creates ``{marker}``."""
    return {"evil_zip": str(crafted_torch_file(tmp / "model.pth", tmp / "ran")), "marker": str(tmp / "ran")}


def mixed_model_folder(tmp: Path) -> dict:
    """``{model_dir}``: a model folder whose ``config.json`` names another task than its
    ``model.safetensors`` (two exports mixed by hand)."""
    import json

    names = rooms_model_folder(tmp)
    doc_path = Path(names["model_config"])
    doc = json.loads(doc_path.read_text())
    doc["task"] = "synthetic-shapes-cls"
    doc_path.write_text(json.dumps(doc))
    return names


def config_file(tmp: Path, name: str = "cfg.json", change=None) -> dict:
    """``{<name without .json>}``: synthetic-rooms-seg's resolved configuration, written as
    ``name`` after ``change(cfg)`` edits it in place."""
    import json

    from fastai_sparse import get_task

    cfg = json.loads(json.dumps(get_task("synthetic-rooms-seg").config()))
    if change is not None:
        change(cfg)
    (tmp / name).write_text(json.dumps(cfg))
    return {name.split(".")[0]: str(tmp / name)}


def config_not_json(tmp: Path) -> dict:
    """``{broken}``: ``broken.json``, a config with a JSON syntax error on line 1."""
    (tmp / "broken.json").write_text('{"task": "synthetic-rooms-seg", "lr": }')
    return {"broken": str(tmp / "broken.json")}


def user_folder(tmp: Path) -> dict:
    """``{user_dir}``: a folder holding a user's file ``thesis.txt`` (not a report, not a run)."""
    d = tmp / "mine"
    d.mkdir()
    (d / "thesis.txt").write_text("three years of work\n")
    return {"user_dir": str(d), "user_thesis": str(d / "thesis.txt")}


def a_file(tmp: Path) -> dict:
    """``{file}``: a plain text file ``notes.txt`` (where a folder is expected)."""
    p = tmp / "notes.txt"
    p.write_text("notes\n")
    return {"file": str(p)}


def shape_file(tmp: Path) -> dict:
    """``{shape}``: a ShapeNet-style ``x y z nx ny nz`` text file outside any ``<synset>/`` folder."""
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(200, 3))
    normals = xyz / np.linalg.norm(xyz, axis=1, keepdims=True)
    p = tmp / "shape.txt"
    np.savetxt(p, np.hstack([xyz, normals]), fmt="%.5f")
    return {"shape": str(p)}


def mode_of(path: str | Path) -> int:
    return stat.S_IMODE(Path(path).stat().st_mode)
