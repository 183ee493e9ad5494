"""from_pretrained: a local folder, or a Hugging Face Hub id resolved offline from a cache laid
out exactly as huggingface_hub lays out what it downloads (blobs, snapshots, refs)."""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fastai_sparse import from_pretrained, load_learner
from fastai_sparse.errors import CheckpointError, FastaiSparseError
from fastai_sparse.hub import is_hub_id, pretrained_path

pytest.importorskip("huggingface_hub", reason='the Hub tests need "fastai-sparse[hub]"')

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_cache(cache: Path, repo_id: str, folder: Path) -> Path:
    """Put ``folder``'s files into ``cache`` as the Hub's cache holds a downloaded model repo:
    ``models--owner--name/blobs/<sha256>``, ``snapshots/<commit>/<file>`` (relative symlinks to
    the blobs) and ``refs/main`` (the commit)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True)
    snap = repo / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    for f in sorted(folder.iterdir()):
        data = f.read_bytes()
        blob = hashlib.sha256(data).hexdigest()
        (repo / "blobs" / blob).write_bytes(data)
        os.symlink(Path("..", "..", "blobs", blob), snap / f.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return snap


@pytest.fixture(scope="module")
def published(rooms_learner, tmp_path_factory):
    """The rooms model exported, then 'downloaded' into a Hub cache as ``someone/rooms``."""
    base = tmp_path_factory.mktemp("hub")
    folder = rooms_learner.save_pretrained(base / "export")
    cache = base / "cache"
    snap = hub_cache(cache, "someone/rooms", folder)
    return {"folder": folder, "cache": cache, "snapshot": snap}


def test_hub_ids_and_local_paths(tmp_path, monkeypatch):
    assert is_hub_id("someone/rooms") and is_hub_id("hf://someone/rooms.v2")
    assert not any(is_hub_id(t) for t in ("rooms", "/abs/path", "a/b/c", "../x", "./x"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "someone" / "rooms").mkdir(parents=True)
    assert pretrained_path("someone/rooms") == Path("someone/rooms")  # an existing folder wins
    with pytest.raises(CheckpointError, match="no such weights file or model folder"):
        pretrained_path("missing.safetensors")


def test_from_pretrained_reads_the_hub_cache_offline(published, rooms_learner, room):
    expected = rooms_learner.predict(room)
    kw = {"cache_dir": published["cache"], "local_files_only": True}
    assert pretrained_path("someone/rooms", **kw) == published["snapshot"]
    pred = from_pretrained("someone/rooms", **kw)
    assert pred.task.name == "synthetic-rooms-seg"
    np.testing.assert_allclose(pred.predict(room, tta=1).probs, expected.probs, atol=1e-6)
    learn = load_learner("hf://someone/rooms", **kw)
    np.testing.assert_array_equal(learn.predict(room).probs, expected.probs)


def test_a_model_missing_from_the_cache_offline_is_one_line(published):
    with pytest.raises(CheckpointError) as err:
        pretrained_path("someone/other", cache_dir=published["cache"], local_files_only=True)
    msg = str(err.value)
    assert msg.startswith("someone/other: no such local file or folder") and "not in the local cache" in msg
    assert "\n" not in msg


def test_without_huggingface_hub_the_message_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    with pytest.raises(FastaiSparseError, match=r'pip install "fastai-sparse\[hub\]"'):
        pretrained_path("someone/rooms")


def test_cli_predict_takes_a_hub_id(published, room, tmp_path, monkeypatch):
    import huggingface_hub.constants as hub_constants

    from fastai_sparse import io
    from fastai_sparse.cli import main

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(published["cache"]))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    src = tmp_path / "room.ply"
    io.save(src, room)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = CliRunner().invoke(
            main,
            [
                "predict",
                "synthetic-rooms-seg",
                "--model",
                "someone/rooms",
                str(src),
                "-o",
                str(tmp_path / "a.txt"),
            ],
        )
        assert res.exit_code == 0, res.output
        local = CliRunner().invoke(
            main,
            [
                "predict",
                "synthetic-rooms-seg",
                "--model",
                str(published["folder"]),
                str(src),
                "-o",
                str(tmp_path / "b.txt"),
            ],
        )
    assert local.exit_code == 0, local.output
    assert (tmp_path / "a.txt").read_text() == (tmp_path / "b.txt").read_text()
