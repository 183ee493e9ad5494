"""Datasets with fewer than two classes are an error (a one-class model is always right:
"accuracy 1.0"); declared classes without training files give one warning naming them and the
ways on; allow_missing_classes accepts them."""

from __future__ import annotations

import shutil
import warnings

import pytest

from fastai_sparse.errors import DataFormatError
from fastai_sparse_classification import MeshFolder, ModelNet


def _mesh_folder_with(tmp_path, fixture_roots, classes):
    root = tmp_path / "shapes"
    for c in classes:
        shutil.copytree(fixture_roots["mesh-folder"] / c, root / c)
    return root


def test_mesh_folder_with_one_class_is_an_error(tmp_path, fixture_roots):
    root = _mesh_folder_with(tmp_path, fixture_roots, ["box"])
    with pytest.raises(DataFormatError) as e:
        MeshFolder(root, "train")
    msg = str(e.value)
    assert str(root) in msg and "files of 1 class (box)" in msg and "at least two" in msg


def test_mesh_folder_two_classes_is_fine(tmp_path, fixture_roots, class_warnings):
    root = _mesh_folder_with(tmp_path, fixture_roots, ["box", "cone"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert MeshFolder(root, "train").classes == ("box", "cone")


def test_mesh_folder_declared_class_without_files_warns(tmp_path, fixture_roots, class_warnings):
    root = _mesh_folder_with(tmp_path, fixture_roots, ["box", "cone"])
    with pytest.warns(
        UserWarning,
        match=r"only 2 of the 3 classes have training files; no files of sphere.*allow_missing_classes",
    ):
        ds = MeshFolder(root, "train", classes=("box", "cone", "sphere"))
    assert ds.classes == ("box", "cone", "sphere")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MeshFolder(root, "train", classes=("box", "cone", "sphere"), allow_missing_classes=True)


def test_modelnet40_root_with_one_class_folder_is_an_error(tmp_path, fixture_roots):
    root = tmp_path / "mn"
    shutil.copytree(fixture_roots["modelnet-off"] / "ModelNet40" / "chair", root / "ModelNet40" / "chair")
    with pytest.raises(
        DataFormatError, match=r"files of 1 class \(chair\); classification needs at least two"
    ):
        ModelNet(root, "train")
    assert len(ModelNet(root, "test")) == 1  # the test split alone may hold one class


def test_modelnet40_root_with_3_of_40_classes_warns_with_the_ways_on(fixture_roots, class_warnings):
    with pytest.warns(UserWarning) as rec:
        ds = ModelNet(fixture_roots["modelnet-off"], "train")
    msg = str(rec[0].message)
    assert "only 3 of the 40 modelnet40 classes have training files" in msg
    assert "airplane, bathtub" in msg and "(37 in all)" in msg
    assert (
        "train modelnet10-cls" in msg and "mesh-folder-cls" in msg and "-O allow_missing_classes=true" in msg
    )
    assert len(ds.classes) == 40
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ModelNet(fixture_roots["modelnet-off"], "train", allow_missing_classes=True)
        ModelNet(fixture_roots["modelnet-off"], "test")  # said once, for the training split


def test_cli_train_single_class_mesh_folder_is_refused(tmp_path, fixture_roots):
    from click.testing import CliRunner

    from fastai_sparse.cli import main

    root = _mesh_folder_with(tmp_path, fixture_roots, ["sphere"])
    r = CliRunner().invoke(
        main,
        ["train", "mesh-folder-cls", "--root", str(root), "--out", str(tmp_path / "run"), "--epochs", "1"],
    )
    assert r.exit_code == 1
    assert r.stderr.startswith("Error: ") and "files of 1 class (sphere)" in r.stderr
