"""Predictions in the submission layout (core's predict and the plugin's sequence predictor), and
the check that a folder is complete and well formed before it is zipped."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fastai_sparse import DataFormatError, FastaiSparseError
from fastai_sparse.cli import main
from fastai_sparse_semantickitti.config import default_config
from fastai_sparse_semantickitti.submission import (
    check_predictions,
    describe_check,
    prediction_path,
    read_prediction,
    write_prediction,
)

from .conftest import REAL_POINTS

TEST_SEQS = [f"{i}" for i in range(11, 22)]


def test_prediction_paths(tmp_path):
    scan = Path("/data/kitti/dataset/sequences/11/velodyne/000042.bin")
    assert prediction_path(scan, tmp_path / "sub") == tmp_path / "sub/sequences/11/predictions/000042.label"
    assert prediction_path(scan) == Path("/data/kitti/dataset/sequences/11/predictions/000042.label")
    loose = Path("/tmp/scans/000000.bin")
    assert prediction_path(loose, tmp_path) == tmp_path / "000000.label"
    assert prediction_path(loose) == Path("/tmp/scans/000000.label")
    assert prediction_path(loose, tmp_path / "x.label", several=False) == tmp_path / "x.label"


def test_write_and_read_a_prediction(tmp_path):
    p = write_prediction(tmp_path / "a" / "000000.label", np.array([10, 40, 81, 0]), n_points=4)
    assert p.read_bytes() == np.array([10, 40, 81, 0], "<u4").tobytes()
    np.testing.assert_array_equal(read_prediction(p, 4), [10, 40, 81, 0])
    with pytest.raises(DataFormatError, match="3 predictions for a scan of 4 points"):
        write_prediction(tmp_path / "b.label", np.array([1, 2, 3]), n_points=4)
    with pytest.raises(DataFormatError, match=r"raw ids span -1..2"):
        write_prediction(tmp_path / "b.label", np.array([-1, 2]))
    with pytest.raises(DataFormatError, match="16 bytes, expected 5 values"):
        read_prediction(p, 5)
    assert not (tmp_path / "b.label").exists()


def _write_all(root, out, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.array(default_config().class_raw_ids)
    for f in sorted((root / "sequences").glob("*/velodyne/*.bin")):
        if f.parent.parent.name in TEST_SEQS:
            n = f.stat().st_size // 16
            write_prediction(out / "sequences" / f.parent.parent.name / "predictions" / f"{f.stem}.label",
                             ids[rng.integers(0, 19, n)], n_points=n)  # fmt: skip


def test_check_a_complete_folder(kitti_root, tmp_path):
    _write_all(kitti_root, tmp_path)
    report = check_predictions(tmp_path, kitti_root)
    assert report["ok"] and report["scans"] == report["checked"] == 12 and describe_check(report) == []
    assert report["sequences"] == TEST_SEQS
    r = CliRunner().invoke(main, ["semantickitti", "check", str(tmp_path), "--root", str(kitti_root)])
    assert r.exit_code == 0 and "ok: 12 scans of sequences 11, 12" in r.output


def _missing(out):
    (out / "sequences/13/predictions/000000.label").unlink()
    return "missing", "1 scan(s) have no prediction file, e.g. 13/000000"


def _missing_sequence(out):
    shutil.rmtree(out / "sequences/21")
    return "missing", "1 scan(s) have no prediction file, e.g. 21/000000"


def _truncated(out):
    p = out / "sequences/11/predictions/000001.label"
    p.write_bytes(p.read_bytes()[:-4])
    return "wrong_count", "1 file(s) do not hold one uint32 per point (11/000001:"


def _bad_id(out):
    p = out / "sequences/12/predictions/000000.label"
    a = np.fromfile(p, "<u4")
    a[3] = 12
    a[7] = 19
    a.tofile(p)
    return (
        "bad_ids",
        "1 file(s) hold ids the evaluation cannot map (not in learning_map: 12/000000: [12, 19])",
    )


def _extra(out):
    p = out / "sequences/14/predictions/000007.label"
    p.write_bytes(b"\0" * 8)
    return "extra", "1 file(s) match no scan, e.g. 000007.label"


@pytest.mark.parametrize("damage", [_missing, _missing_sequence, _truncated, _bad_id, _extra],
                         ids=lambda f: f.__name__.strip("_"))  # fmt: skip
def test_check_finds_each_problem(kitti_root, tmp_path, damage):
    _write_all(kitti_root, tmp_path)
    kind, line = damage(tmp_path)
    report = check_predictions(tmp_path, kitti_root)
    assert not report["ok"] and report["problems"][kind] == 1
    assert sum(report["problems"].values()) == 1
    [msg] = describe_check(report)
    assert line in msg, msg
    r = CliRunner().invoke(main, ["semantickitti", "check", str(tmp_path), "--root", str(kitti_root)])
    assert r.exit_code == 1 and line in r.output


def test_check_needs_the_layout_and_the_scans(kitti_root, tmp_path):
    with pytest.raises(DataFormatError, match="no sequences/ folder"):
        check_predictions(tmp_path, kitti_root)
    (tmp_path / "sequences").mkdir()
    with pytest.raises(DataFormatError, match=r"sequences \['30'\] are missing"):
        check_predictions(tmp_path, kitti_root, sequences=[30])
    r = CliRunner().invoke(main, ["semantickitti", "check", str(tmp_path), "--root", str(tmp_path)])
    assert r.exit_code == 1 and "Error:" in r.output and "are missing" in r.output
    assert "Traceback" not in r.output


# -- with a model -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def weights(kitti_root, tmp_path_factory):
    """Weights of the registered task's model (untrained: the tests check files, not accuracy)."""
    from fastai_sparse import get_task

    task = get_task("semantickitti-seg")
    dls = task.dataloaders(kitti_root, bs=2, sequences=[8])
    learn = task.learner(dls, path=tmp_path_factory.mktemp("weights"))
    return learn.save_weights("w.pth")


def test_core_predict_writes_the_submission_layout(kitti_root, weights, tmp_path):
    from fastai_sparse import get_task
    from fastai_sparse.prediction import Predictor

    task = get_task("semantickitti-seg")
    scans = sorted((kitti_root / "sequences" / "11" / "velodyne").glob("*.bin"))
    r = CliRunner().invoke(
        main,
        [
            "predict",
            "semantickitti-seg",
            "--model",
            str(weights),
            *map(str, scans),
            "-o",
            str(tmp_path / "sub"),
        ],
    )
    assert r.exit_code == 0, r.output
    predictor = Predictor.from_weights(task, weights)
    for scan in scans:
        out = tmp_path / "sub" / "sequences" / "11" / "predictions" / f"{scan.stem}.label"
        assert f"{scan} -> {out}" in r.output
        values = read_prediction(out, scan.stat().st_size // 16)
        want = np.asarray(task.label_values)[predictor.predict(scan).labels]
        np.testing.assert_array_equal(values, want)  # raw ids through learning_map_inv, in point order
    report = check_predictions(tmp_path / "sub", kitti_root, sequences=[11])
    assert report["ok"], report
    # another format on request: a PLY coloured by class, for a look
    r = CliRunner().invoke(
        main,
        [
            "predict",
            "semantickitti-seg",
            "--model",
            str(weights),
            str(scans[0]),
            "-o",
            str(tmp_path / "a.ply"),
        ],
    )
    assert r.exit_code == 0, r.output
    from fastai_sparse import io

    assert len(io.read_ply(tmp_path / "a.ply").attrs["labels"]) == scans[0].stat().st_size // 16


def test_plugin_predicts_sequences_and_refuses_to_overwrite(kitti_root, weights, tmp_path):
    args = ["semantickitti", "predict", "--model", str(weights), "--root", str(kitti_root), "-o", str(tmp_path),
            "--sequences", "11", "--device", "cpu", "--quiet"]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert (
        "wrote 2 prediction files (0 kept)" in r.output
        and "check: 2 scans complete and well formed" in r.output
    )
    files = sorted((tmp_path / "sequences" / "11" / "predictions").iterdir())
    assert [f.name for f in files] == ["000000.label", "000001.label"]
    before = [f.read_bytes() for f in files]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1 and "2 prediction file(s) exist already; pass --overwrite" in r.output
    assert "Traceback" not in r.output and [f.read_bytes() for f in files] == before
    r = CliRunner().invoke(main, [*args, "--skip-existing"])
    assert r.exit_code == 0 and "wrote 0 prediction files (2 kept)" in r.output
    files[1].write_bytes(files[1].read_bytes()[:-4])  # an interrupted write
    r = CliRunner().invoke(main, [*args, "--skip-existing"])
    assert r.exit_code == 1 and "1 prediction file(s) exist already" in r.output
    r = CliRunner().invoke(main, [*args, "--overwrite"])
    assert r.exit_code == 0 and "wrote 2 prediction files (0 kept)" in r.output
    assert [f.read_bytes() for f in files] == before  # same model, same predictions


def test_sequence_predictor_never_writes_over_an_input(kitti_root, weights, tmp_path):
    from fastai_sparse import get_task
    from fastai_sparse_semantickitti.submission import predict_sequences

    root = tmp_path / "root"
    shutil.copytree(kitti_root / "sequences" / "11", root / "sequences" / "11")
    # a prediction folder that is the data root itself writes next to velodyne/, never into it
    summary = predict_sequences(
        get_task("semantickitti-seg"), weights, root, root, [11], device="cpu", quiet=True
    )
    assert summary["written"] == 2 and summary["check"]["ok"]
    assert sorted(p.name for p in (root / "sequences/11").iterdir()) == ["predictions", "velodyne"]
    with pytest.raises(FastaiSparseError, match="exist already"):
        predict_sequences(get_task("semantickitti-seg"), weights, root, root, [11], device="cpu", quiet=True)


@pytest.mark.slow
def test_predict_the_real_scan(real_scan, weights, tmp_path):
    from fastai_sparse import get_task
    from fastai_sparse.prediction import predict_files

    task = get_task("semantickitti-seg")
    [(_, out)] = predict_files(task, weights, [real_scan], out=tmp_path)  # a loose scan: OUT/<name>.label
    assert out == tmp_path / "000000.label"
    values = read_prediction(out, REAL_POINTS)
    assert set(np.unique(values)) <= set(task.label_values)
