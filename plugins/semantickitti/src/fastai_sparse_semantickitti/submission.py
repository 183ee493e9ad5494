"""SemanticKITTI submission files: write them, predict whole sequences, check a folder.

The benchmark takes a zip of ``sequences/NN/predictions/NNNNNN.label`` for the test sequences
11-21: one uint32 per point of ``sequences/NN/velodyne/NNNNNN.bin``, holding the raw semantic id
of the predicted class (``learning_map_inv``), in the same point order. The evaluation keeps the
lower 16 bits and maps them through ``learning_map``.

- :class:`LabelFormat` is the ``label`` output format of the task, used by
  ``fastai-sparse predict semantickitti-seg``: an input ``.../sequences/NN/velodyne/X.bin`` goes to
  ``OUT/sequences/NN/predictions/X.label``.
- :func:`predict_sequences` predicts every scan of some sequences of a data root (what
  ``fastai-sparse semantickitti predict`` runs), refusing to replace existing files unless told.
- :func:`check_predictions` checks a folder before submission: every scan of the sequences has
  its file, with one value per point, each a raw id the evaluation can map (a key of
  ``learning_map``), and no stray files (what ``fastai-sparse semantickitti check`` runs).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastai_sparse import DataFormatError, FastaiSparseError

from .config import LabelConfig, find_config
from .reader import _atomic_tofile, list_scans, scan_points, sequence_name, split_sequences

__all__ = [
    "LabelFormat",
    "check_predictions",
    "predict_sequences",
    "prediction_path",
    "read_prediction",
    "write_prediction",
]

SUFFIX = ".label"


def _layout(scan: Path) -> str | None:
    """The sequence name when ``scan`` sits at ``.../sequences/NN/velodyne/X.bin``, else None."""
    scan = Path(scan)
    if scan.parent.name == "velodyne" and scan.parent.parent.parent.name == "sequences":
        name = scan.parent.parent.name
        if name.isdigit():
            return name
    return None


def prediction_path(scan: str | Path, out: str | Path | None = None, several: bool = True) -> Path:
    """Where the prediction of ``scan`` goes.

    A scan in the dataset layout (``.../sequences/NN/velodyne/X.bin``) goes to
    ``OUT/sequences/NN/predictions/X.label``, or, without ``out``, to ``predictions/X.label`` in
    its own sequence folder (where the development kit looks by default). Another file goes to
    ``OUT/X.label`` (next to it without ``out``). With one input (``several`` False) and an
    ``out`` ending in ``.label``, ``out`` is the file itself.
    """
    scan = Path(scan)
    name = f"{scan.name.split('.')[0]}{SUFFIX}"
    if out is not None:
        out = Path(out)
        if not several and out.suffix == SUFFIX and not out.is_dir():
            return out
    seq = _layout(scan)
    if seq is not None:
        if out is None:
            return scan.parent.parent / "predictions" / name
        return out / "sequences" / seq / "predictions" / name
    return (scan.parent if out is None else out) / name


def write_prediction(
    path: str | Path, raw_ids: np.ndarray, n_points: int | None = None, overwrite: bool = True
) -> Path:
    """Write ``raw_ids`` (int [N], raw semantic ids 0..65535) as a ``.label`` (uint32
    little-endian), atomically. ``n_points``, when given, must equal N. With ``overwrite=False``
    an existing file (even one another run wrote a moment ago) is never replaced."""
    ids = np.asarray(raw_ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise DataFormatError(f"expected a 1-D integer array of raw ids, got {ids.dtype} {list(ids.shape)}")
    if n_points is not None and len(ids) != n_points:
        raise DataFormatError(
            f"{len(ids)} predictions for a scan of {n_points} points; expected one per point"
        )
    if len(ids) and (ids.min() < 0 or ids.max() > 0xFFFF):
        raise DataFormatError(f"raw ids span {int(ids.min())}..{int(ids.max())}, expected 0..65535")
    return _atomic_tofile(Path(path), ids.astype("<u4"), overwrite=overwrite)


def read_prediction(path: str | Path, n_points: int | None = None) -> np.ndarray:
    """uint32 [N]: the values of a prediction ``.label`` (``n_points`` checks the count)."""
    path = Path(path)
    size = path.stat().st_size
    if size % 4 or (n_points is not None and size // 4 != n_points):
        want = (
            f"{n_points} values ({4 * n_points} bytes)" if n_points is not None else "a multiple of 4 bytes"
        )
        raise DataFormatError(f"{size} bytes, expected {want}", path=path, field="size")
    return np.fromfile(path, dtype="<u4")


class LabelFormat:
    """The ``label`` output format of ``fastai-sparse predict`` for SemanticKITTI tasks: uint32
    raw ids (the task's ``label_values``) in the submission layout (:func:`prediction_path`)."""

    name = "label"
    description = "SemanticKITTI submission: sequences/NN/predictions/NNNNNN.label (uint32 raw ids)"

    def path(self, src: str | Path, out: str | Path | None, several: bool) -> Path:
        return prediction_path(src, out, several)

    def write(self, task, result, original, path: str | Path) -> Path:
        labels = np.asarray(result.labels, np.int64)
        raw = np.asarray(task.label_values, np.int64)[labels]
        return write_prediction(path, raw, n_points=len(original))

    def __repr__(self) -> str:
        return "LabelFormat()"


# -- predicting whole sequences -------------------------------------------------------------
def predict_sequences(
    task,
    model_path: str | Path,
    root: str | Path,
    out: str | Path,
    sequences: Sequence[int | str] | None = None,
    *,
    tta: int | None = None,
    device: str | None = None,
    overwrite: bool = False,
    skip_existing: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Predict every scan of ``sequences`` (default the test split 11-21) of ``root`` and write
    ``OUT/sequences/NN/predictions/*.label``.

    Existing prediction files are refused before anything is predicted, unless ``overwrite``
    (replace them) or ``skip_existing`` (keep the ones with the right size: an interrupted run
    resumes). Returns ``{"written", "skipped", "seconds", "out", "check"}`` where ``check`` is
    :func:`check_predictions` of the result.
    """
    import time

    from fastai_sparse.prediction import Predictor

    t0 = time.perf_counter()
    if task.label_values is None or getattr(task.target, "per", None) != "point":
        raise FastaiSparseError(
            f"task {task.name!r} does not predict SemanticKITTI raw ids (no label_values); use semantickitti-seg"
        )
    out = Path(out).expanduser()
    seqs = [sequence_name(s) for s in (sequences if sequences is not None else split_sequences("test"))]
    scans = list_scans(root, seqs, labels=False)
    inputs = {s.scan.resolve() for s in scans}
    jobs, skipped = [], 0
    existing = []
    for s in scans:
        dst = prediction_path(s.scan, out)
        if dst.resolve() in inputs:
            raise FastaiSparseError(f"{dst}: the output would replace an input scan; choose another --out")
        if dst.exists():
            if skip_existing and dst.is_file() and dst.stat().st_size == 4 * scan_points(s.scan):
                skipped += 1
                continue
            existing.append(dst)
        jobs.append((s, dst))
    if existing and not overwrite:
        raise FastaiSparseError(
            f"{existing[0]}: {len(existing)} prediction file(s) exist already; pass --overwrite to replace "
            "them or --skip-existing to keep them and predict the rest"
        )
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    predictor = Predictor.from_weights(task, model_path, device=device)
    from fastprogress.fastprogress import progress_bar

    values = np.asarray(predictor.task.label_values, np.int64)
    it = progress_bar(jobs) if (jobs and not quiet) else jobs
    for s, dst in it:
        cloud = _read(task, s.scan)
        result = predictor.predict(cloud, tta=tta)
        write_prediction(dst, values[result.labels], n_points=len(cloud), overwrite=overwrite)
    valid = [0, *task.label_values]
    check = check_predictions(out, root, seqs, valid_ids=valid)
    return {
        "out": str(out),
        "sequences": seqs,
        "written": len(jobs),
        "skipped": skipped,
        "seconds": round(time.perf_counter() - t0, 3),
        "check": check,
    }


def _read(task, path: Path):
    if task.read_input is not None:
        return task.read_input(path)
    from .dataset import read_input

    return read_input(path)


# -- checking a folder ----------------------------------------------------------------------
def check_predictions(
    predictions: str | Path,
    root: str | Path,
    sequences: Sequence[int | str] | None = None,
    *,
    config: str | Path | LabelConfig | None = None,
    valid_ids: Sequence[int] | None = None,
    read_ids: bool = True,
    max_listed: int = 20,
) -> dict[str, Any]:
    """Check that a prediction folder is complete and well formed before submission.

    predictions: the folder holding ``sequences/`` (what gets zipped). root: the data root whose
    ``sequences/NN/velodyne`` scans the predictions are for. sequences: default the test split.
    config: which raw ids are valid (the keys of ``learning_map``, which the evaluation maps to
    classes; default the data root's configuration or the plugin's copy), or ``valid_ids``
    explicitly. read_ids: read every file to check its ids (else sizes
    only).

    Returns ``{"ok", "scans", "checked", "missing", "wrong_count", "bad_ids", "extra",
    "problems"}``: lists of scan ids (``"11/000000"``), ``(id, bytes found, points of the scan)``,
    ``(id, [invalid ids])`` and stray files, each cut to ``max_listed`` entries (the counts are in
    ``problems``), never raising for a problem of the predictions themselves.
    """
    predictions = Path(predictions).expanduser()
    seqs = [sequence_name(s) for s in (sequences if sequences is not None else split_sequences("test"))]
    if valid_ids is None:
        valid = find_config(root, config).valid_prediction_ids
    else:
        valid = np.zeros(0x10000, bool)
        valid[np.asarray(list(valid_ids), np.int64)] = True
    scans = list_scans(root, seqs, labels=False)
    pred_seq = predictions / "sequences"
    if not pred_seq.is_dir():
        raise DataFormatError(
            "no sequences/ folder; pass the folder that holds sequences/NN/predictions/", path=predictions
        )
    missing: list[str] = []
    wrong: list[tuple[str, int, int]] = []
    bad: list[tuple[str, list[int]]] = []
    expected: dict[str, set[str]] = {s: set() for s in seqs}
    for s in scans:
        name = f"{s.frame}{SUFFIX}"
        expected[s.sequence].add(name)
        f = pred_seq / s.sequence / "predictions" / name
        if not f.is_file():
            missing.append(s.id)
            continue
        n = scan_points(s.scan)
        size = f.stat().st_size
        if size != 4 * n:
            wrong.append((s.id, size, n))
            continue
        if read_ids:
            sem = np.fromfile(f, dtype="<u4") & np.uint32(0xFFFF)
            ok = valid[sem]
            if not ok.all():
                bad.append((s.id, np.unique(sem[~ok])[:10].tolist()))
    extra: list[str] = []
    for s in seqs:
        folder = pred_seq / s / "predictions"
        if folder.is_dir():
            extra += [str(p) for p in sorted(folder.iterdir()) if p.name not in expected[s]]
    problems = {"missing": len(missing), "wrong_count": len(wrong), "bad_ids": len(bad), "extra": len(extra)}
    return {
        "ok": not any(problems.values()),
        "predictions": str(predictions),
        "sequences": seqs,
        "scans": len(scans),
        "checked": len(scans) - len(missing),
        "problems": problems,
        "missing": missing[:max_listed],
        "wrong_count": wrong[:max_listed],
        "bad_ids": bad[:max_listed],
        "extra": extra[:max_listed],
        "valid_ids": sorted(int(i) for i in np.flatnonzero(valid)),
    }


def describe_check(report: dict[str, Any]) -> list[str]:
    """One line per kind of problem of a :func:`check_predictions` report (empty when ok)."""
    lines = []
    p = report["problems"]
    if p["missing"]:
        lines.append(
            f"{p['missing']} scan(s) have no prediction file, e.g. {', '.join(report['missing'][:5])}"
        )
    if p["wrong_count"]:
        ex = ", ".join(f"{i}: {a} bytes for {b} points" for i, a, b in report["wrong_count"][:3])
        lines.append(f"{p['wrong_count']} file(s) do not hold one uint32 per point ({ex})")
    if p["bad_ids"]:
        ex = ", ".join(f"{i}: {ids}" for i, ids in report["bad_ids"][:3])
        lines.append(f"{p['bad_ids']} file(s) hold ids the evaluation cannot map (not in learning_map: {ex})")
    if p["extra"]:
        lines.append(
            f"{p['extra']} file(s) match no scan, e.g. {os.path.basename(report['extra'][0])} "
            f"in {os.path.dirname(report['extra'][0])}"
        )
    return lines
