"""Bad data from the command line: one row per case (label sources, stale caches, PLY counts,
classes, dataset options), each checked for its exit code, its message fragment, one
``Error:`` line and no traceback, no temporary file left, and the files it must not change.

(These rows move into the project's catalogue table, ``test_catalogue.py``, once it exists.)
"""

from __future__ import annotations

import hashlib
import shlex
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import data_builders as b
from .conftest import invoke


@dataclass(frozen=True)
class Row:
    id: str
    args: str
    fragment: str
    code: int = 1
    build: tuple[Callable[[Path], dict], ...] = ()
    keeps: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    needs: str | None = None


SC = "fastai_sparse_scannet"
CL = "fastai_sparse_classification"
PREP = "prepare scannet-seg --root {scannet} --out {tmp}/cache -j 1 --quiet"
PREP_MN = "prepare modelnet40-cls --root {modelnet} -j 1 --quiet -O points=64"

ROWS: list[Row] = [
    # -- label sources ------------------------------------------------------------------------
    Row("scannet-raw-ids-read-as-nyu40", PREP, "vertices have label values above 40", 1, (b.scannet_raw_id_root,), needs=SC),
    Row("scannet-raw-ids-fix-named", PREP, "-O label_source=raw-id", 1, (b.scannet_raw_id_root,), needs=SC),
    Row("scannet-raw-ids-with-option", PREP + " -O label_source=raw-id", '"prepared": 4', 0, (b.scannet_raw_id_root,), needs=SC),
    Row("scannet-nyu40-read-as-raw-ids", PREP + " -O label_source=raw-id", "pass label_source='nyu40'", 1, (b.scannet_root,), needs=SC),
    Row("scannet-label-check-can-be-skipped", PREP + " -O label_source=raw-id -O check_labels=false", '"prepared": 4', 0,
        (b.scannet_root,), needs=SC),
    # -- dataset options ------------------------------------------------------------------------
    Row("option-bad-choice", PREP + " -O label_source=raw", "expected one of nyu40, raw-id, aggregation", 2, (b.scannet_root,),
        absent=("{tmp}/cache",), needs=SC),
    Row("option-typo", PREP + " -O label_sauce=raw-id", "unknown option 'label_sauce'", 2, (b.scannet_root,), needs=SC),
    Row("option-train-only-on-prepare", PREP + " -O limit=1", "unknown option 'limit'", 2, (b.scannet_root,), needs=SC),
    Row("option-without-value", PREP + " -O label_source", "expected NAME=VALUE", 2, (b.scannet_root,), needs=SC),
    Row("option-bool-garbage", PREP + " -O check_labels=maybe", "expected true or false", 2, (b.scannet_root,), needs=SC),
    Row("option-twice", PREP + " -O normals=1 -O normals=0", "option 'normals' is given twice", 2, (b.scannet_root,), needs=SC),
    Row("option-int-garbage", PREP_MN.replace("points=64", "points=many"), "points='many': expected an integer", 2,
        (b.modelnet_root,), needs=CL),
    Row("option-of-another-task", PREP_MN + " -O label_source=raw-id", "unknown option 'label_source'", 2, (b.modelnet_root,), needs=CL),
    Row("option-on-task-without-options", "prepare scannet-seg --root {tmp} -O x=1", "unknown option 'x'", 2, needs=SC),
    # -- caches ---------------------------------------------------------------------------------
    Row("prepare-twice-keeps-fresh-files", PREP, '"fresh": 4', 0, (b.scannet_root, b.scannet_prepared), needs=SC),
    Row("prepare-rebuilds-edited-labels", PREP, '"stale": 1', 0, (b.scannet_root, b.scannet_prepared, b.scannet_labels_edited),
        needs=SC),
    Row("prepare-force-rebuilds-all", PREP + " --force", '"prepared": 4', 0, (b.scannet_root, b.scannet_prepared), needs=SC),
    Row("prepare-other-option-rebuilds", PREP + " -O normals=true", '"stale": 4', 0, (b.scannet_root, b.scannet_prepared),
        needs=SC),
    Row("train-refuses-stale-cache",
        "train scannet-seg --root {scannet} --out {tmp}/run --epochs 1 --bs 2 --quiet -O limit=2",
        "changed since it was made", 1, (b.scannet_root, b.scannet_prepared_in_root, b.scannet_labels_edited), needs=SC),
    Row("train-stale-cache-names-the-fix",
        "train scannet-seg --root {scannet} --out {tmp}/run --epochs 1 --bs 2 --quiet -O limit=2",
        "run `fastai-sparse prepare scannet-seg --root", 1, (b.scannet_root, b.scannet_prepared_in_root, b.scannet_labels_edited),
        needs=SC),
    # -- scene files ----------------------------------------------------------------------------
    Row("scannet-labels-ply-trailing-bytes", PREP, "5 bytes follow the last element 'face'", 1,
        (b.scannet_root, b.scannet_labels_trailing_bytes), keeps=("labels",), needs=SC),
    Row("scannet-labels-fewer-vertices", PREP, "the labels PLY has", 1, (b.scannet_root, b.scannet_labels_fewer_vertices),
        needs=SC),
    Row("scannet-listed-without-folder", PREP, "is listed in the train split list but has no folder", 1,
        (b.scannet_root, b.scannet_scene_listed_without_folder), needs=SC),
    Row("scannet-truncated-mesh-stops", PREP, "scene0001_00", 1, (b.scannet_root, b.scannet_truncated_mesh),
        absent=("{tmp}/cache/scene0001_00.npz",), keeps=("mesh",), needs=SC),
    Row("scannet-truncated-mesh-skipped", PREP + " --skip-bad", "skipped 1 bad item(s): scene0001_00", 0,
        (b.scannet_root, b.scannet_truncated_mesh), absent=("{tmp}/cache/scene0001_00.npz",), needs=SC),
    # -- PLY element counts ---------------------------------------------------------------------
    Row("ply-more-rows-than-declared", "predict synthetic-rooms-seg --model {tmp}/none.pth {extra_ply}",
        "the header declares 3 vertex rows, the body holds 5", 1, (b.ply_more_rows_than_declared, b.rooms_weights)),
    Row("ply-bytes-after-last-element", "predict synthetic-rooms-seg --model {tmp}/none.pth {tail_ply}",
        "4 bytes follow the last element 'vertex'", 1, (b.ply_trailing_bytes, b.rooms_weights)),
    # -- classes --------------------------------------------------------------------------------
    Row("mesh-folder-one-class", "train mesh-folder-cls --root {shapes} --out {tmp}/run --epochs 1",
        "the training split holds files of 1 class (sphere)", 1, (b.one_class_folder,), needs=CL),
    Row("modelnet40-one-class-folder", PREP_MN, "files of 1 class (chair); classification needs at least two", 1,
        (b.modelnet_root, b.modelnet_one_class), needs=CL),
    Row("modelnet40-3-of-40-classes-warns", PREP_MN, "only 3 of the 40 modelnet40 classes have training files", 0,
        (b.modelnet_root,), needs=CL),
    Row("modelnet40-missing-classes-ways-on", PREP_MN, "train modelnet10-cls", 0, (b.modelnet_root,), needs=CL),
    Row("modelnet-bad-off-stops", PREP_MN, "chair_0001.off", 1, (b.modelnet_root, b.modelnet_bad_off), keeps=("bad_off",),
        needs=CL),
    Row("modelnet-bad-off-skipped", PREP_MN + " --skip-bad", "skipped 1 bad item(s): chair_0001", 0,
        (b.modelnet_root, b.modelnet_bad_off), needs=CL),
]  # fmt: skip


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rows_have_unique_ids():
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_data_catalogue(row: Row, tmp_path, monkeypatch):
    if row.needs:
        pytest.importorskip(row.needs)
    monkeypatch.delenv("FASTAI_SPARSE_DEBUG", raising=False)
    names: dict[str, str] = {"tmp": str(tmp_path)}
    for build in row.build:
        names.update(build(tmp_path) or {})
    kept = {name: _digest(Path(names[name])) for name in row.keeps}
    args = [word.format(**names) for word in shlex.split(row.args)]
    with warnings.catch_warnings(record=True) as caught:  # what the command line shows on stderr
        warnings.simplefilter("always")
        res = invoke(*args)
    warned = "".join(f"{w.category.__name__}: {w.message}\n" for w in caught)
    shown = f"$ fastai-sparse {' '.join(args)}\n--- stdout\n{res.stdout}--- stderr\n{res.stderr}{warned}"
    assert res.exit_code == row.code, shown
    assert row.fragment.format(**names) in res.stdout + res.stderr + warned, shown
    assert "Traceback" not in res.stdout + res.stderr, shown
    if row.code not in (0, 130):
        assert len([ln for ln in res.stderr.splitlines() if ln.startswith("Error: ")]) == 1, shown
    assert not list(tmp_path.rglob(".*.tmp")), list(tmp_path.rglob(".*.tmp"))
    for name, digest in kept.items():
        assert _digest(Path(names[name])) == digest, f"{names[name]} was changed\n{shown}"
    for path in row.absent:
        assert not Path(path.format(**names)).exists(), shown
