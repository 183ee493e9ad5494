"""Readers and writers for the SemanticKITTI layout as downloaded.

::

    ROOT/                                  the "dataset" folder of the KITTI odometry download
      semantic-kitti.yaml                  optional: the label configuration (see config.py)
      sequences/
        00/ .. 21/
          velodyne/NNNNNN.bin              float32 little-endian x, y, z, remission per point
          labels/NNNNNN.label              uint32 little-endian per point: lower 16 bits the
                                           semantic id, upper 16 bits the instance id (00-10 only)
          predictions/NNNNNN.label         submission files: uint32 raw semantic ids (written)
          calib.txt, poses.txt, times.txt  not read here

Splits: train 00-07, 09, 10; valid 08; test 11-21 (no labels). Coordinates are metres in
the sensor frame (the scanner at the origin, ground near z = -1.73 m), so they are negative
on every axis and reach about 80 m.

The files are plain arrays: ``numpy.fromfile`` reads them at disk speed, so nothing is
converted or cached (see prepare.py). Every error is a one-line DataFormatError naming the
file, what was found and what to do.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from fastai_sparse import DataFormatError

__all__ = [
    "SPLITS",
    "ScanFiles",
    "label_path",
    "list_scans",
    "pack_labels",
    "parse_sequences",
    "read_label",
    "read_scan",
    "scan_points",
    "sequence_name",
    "sequences_dir",
    "split_sequences",
    "unpack_labels",
    "write_label",
    "write_scan",
]

#: Official sequences of each split.
SPLITS: dict[str, tuple[int, ...]] = {
    "train": (0, 1, 2, 3, 4, 5, 6, 7, 9, 10),
    "valid": (8,),
    "test": tuple(range(11, 22)),
}
_ALIASES = {"val": "valid", "validation": "valid"}
_ROW = 16  # bytes per point in a .bin: 4 float32


def sequence_name(seq: int | str) -> str:
    """``8``, ``"8"`` or ``"08"`` -> ``"08"``."""
    try:
        n = int(seq)
    except (TypeError, ValueError):
        raise ValueError(f"sequence {seq!r} is not a sequence number (00..99)") from None
    if not 0 <= n <= 99:
        raise ValueError(f"sequence {seq!r} is out of range 00..99")
    return f"{n:02d}"


def parse_sequences(value: str | int | Iterable[int | str]) -> list[str]:
    """Sequence names from ``"11-21"``, ``"0,8"``, ``"08"``, ``8`` or a list of those."""
    if isinstance(value, (list, tuple, range)):
        return [sequence_name(v) for v in value]
    out: list[str] = []
    for part in str(value).split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            nums = range(int(lo), int(hi) + 1) if sep else [int(lo)]
        except ValueError:
            raise ValueError(f"{value!r}: expected sequence numbers like 11-21 or 0,8") from None
        out += [sequence_name(n) for n in nums]
    return out


def split_sequences(split: str) -> tuple[str, ...]:
    """The sequence names of an official split (``"train"``, ``"valid"``/``"val"``, ``"test"``)."""
    name = _ALIASES.get(split, split)
    if name not in SPLITS:
        raise ValueError(f"unknown SemanticKITTI split {split!r}; expected one of train, valid, test")
    return tuple(sequence_name(s) for s in SPLITS[name])


def sequences_dir(root: str | Path) -> Path:
    """``ROOT/sequences``; ``ROOT`` itself when it is the ``sequences`` folder (holds ``NN/velodyne``)."""
    root = Path(root).expanduser()
    if (root / "sequences").is_dir():
        return root / "sequences"
    if root.is_dir() and any((d / "velodyne").is_dir() for d in root.iterdir() if d.name.isdigit()):
        return root
    if not root.is_dir():
        raise DataFormatError("data root not found; pass the folder holding sequences/", path=root)
    raise DataFormatError(
        "no sequences/ folder; the data root is the 'dataset' folder of the KITTI odometry download, "
        "holding sequences/00 .. sequences/21",
        path=root,
    )


# -- one scan -----------------------------------------------------------------------------------
def scan_points(path: str | Path) -> int:
    """Number of points of a ``.bin`` scan from its size (DataFormatError when truncated)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DataFormatError("scan file not found", path=path) from None
    if size % _ROW:
        raise DataFormatError(
            f"file size {size} bytes is not a multiple of 16 (4 float32 x, y, z, remission per point): "
            "the scan is truncated or not a KITTI Velodyne .bin; download it again",
            path=path,
            field="size",
        )
    return size // _ROW


def read_scan(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a Velodyne ``.bin``: ``(xyz float32 [N, 3], remission float32 [N])``.

    Both are views of one [N, 4] array read from the file (no copies: on a busy or virtual
    machine, touching fresh memory costs more than reading the file from the page cache).
    """
    path = Path(path)
    n = scan_points(path)
    if n == 0:
        raise DataFormatError("the scan is empty (0 bytes); download it again", path=path, field="size")
    data = np.fromfile(path, dtype="<f4")
    if len(data) != 4 * n:  # the file changed between stat and read
        raise DataFormatError(f"read {len(data)} values, expected {4 * n}", path=path, field="size")
    data = data.reshape(n, 4)
    if not np.isfinite(data).all():
        i = int(np.flatnonzero(~np.isfinite(data).all(1))[0])
        raise DataFormatError(
            f"point {i} is {data[i].tolist()}; every value must be finite", path=path, field="point"
        )
    return data[:, :3], data[:, 3]


def pack_labels(semantic: np.ndarray, instance: np.ndarray | None = None) -> np.ndarray:
    """uint32 [N] label values from semantic ids (lower 16 bits) and instance ids (upper 16)."""
    sem = np.asarray(semantic)
    inst = np.zeros(len(sem), np.int64) if instance is None else np.asarray(instance)
    for name, a in (("semantic", sem), ("instance", inst)):
        if a.ndim != 1 or len(a) != len(sem) or not np.issubdtype(a.dtype, np.integer):
            raise DataFormatError(f"{name} ids must be a 1-D integer array of length {len(sem)}", field=name)
        if len(a) and (a.min() < 0 or a.max() > 0xFFFF):
            raise DataFormatError(
                f"{name} ids span {int(a.min())}..{int(a.max())}, expected 0..65535 (16 bits)", field=name
            )
    return (inst.astype(np.uint32) << np.uint32(16)) | sem.astype(np.uint32)


def unpack_labels(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(semantic uint16 [N], instance uint16 [N])`` of uint32 label values."""
    v = np.asarray(values, np.uint32)
    return (v & np.uint32(0xFFFF)).astype(np.uint16), (v >> np.uint32(16)).astype(np.uint16)


def read_label(
    path: str | Path, n_points: int | None = None, scan: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``.label``: ``(semantic uint16 [N], instance uint16 [N])``.

    ``n_points``: the point count of its scan (``scan`` names that file in the error).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        what = f" for scan {scan}" if scan is not None else ""
        raise DataFormatError(
            f"label file not found{what}; the labels of sequences 00-10 come in data_odometry_labels.zip",
            path=path,
        ) from None
    if size % 4:
        raise DataFormatError(
            f"file size {size} bytes is not a multiple of 4 (one uint32 per point): the file is truncated; "
            "download it again",
            path=path,
            field="size",
        )
    if n_points is not None and size // 4 != n_points:
        ref = f"its scan {Path(scan).name}" if scan is not None else "the scan"
        raise DataFormatError(
            f"{size // 4} labels but {ref} has {n_points} points; expected one label per point "
            "(the label file belongs to another scan or is truncated)",
            path=path,
            field="count",
        )
    return unpack_labels(np.fromfile(path, dtype="<u4"))


def _atomic_tofile(path: Path, array: np.ndarray, overwrite: bool = True) -> Path:
    """Write ``array`` to ``path`` through core's atomic writer (a temporary file renamed into
    place; with ``overwrite=False`` an existing file is never replaced)."""
    from fastai_sparse.cache import atomic_path

    with atomic_path(path, overwrite=overwrite) as tmp:
        array.tofile(tmp)
    return Path(path)


def write_scan(path: str | Path, xyz: np.ndarray, remission: np.ndarray) -> Path:
    """Write a Velodyne ``.bin`` (float32 little-endian x, y, z, remission), atomically."""
    xyz = np.asarray(xyz, np.float32).reshape(-1, 3)
    rem = np.asarray(remission, np.float32).reshape(-1)
    if len(rem) != len(xyz):
        raise DataFormatError(f"{len(rem)} remission values for {len(xyz)} points", field="remission")
    data = np.empty((len(xyz), 4), "<f4")
    data[:, :3], data[:, 3] = xyz, rem
    return _atomic_tofile(Path(path), data)


def write_label(path: str | Path, semantic: np.ndarray, instance: np.ndarray | None = None) -> Path:
    """Write a ``.label`` (uint32 little-endian, semantic | instance << 16), atomically."""
    return _atomic_tofile(Path(path), pack_labels(semantic, instance).astype("<u4"))


# -- a sequence ---------------------------------------------------------------------------------
class ScanFiles(NamedTuple):
    """One scan: its sequence (``"08"``), frame (``"000123"``), ``.bin`` path and ``.label``
    path (None when unlabelled)."""

    sequence: str
    frame: str
    scan: Path
    label: Path | None

    @property
    def id(self) -> str:
        """``"08/000123"``."""
        return f"{self.sequence}/{self.frame}"


def label_path(scan: str | Path) -> Path:
    """``sequences/NN/labels/NNNNNN.label`` of ``sequences/NN/velodyne/NNNNNN.bin``."""
    scan = Path(scan)
    return scan.parent.parent / "labels" / f"{scan.stem}.label"


def list_scans(root: str | Path, sequences: Iterable[int | str], labels: bool) -> list[ScanFiles]:
    """Every scan of ``sequences`` (sorted by sequence and frame).

    A missing sequence or velodyne folder, an empty velodyne folder, and (with ``labels``) a
    missing labels folder or label file raise DataFormatError saying which and what to do.
    """
    seq_dir = sequences_dir(root)
    names = [sequence_name(s) for s in sequences]
    if len(set(names)) != len(names):
        raise ValueError(f"sequences {names} name a sequence twice")
    missing = [s for s in names if not (seq_dir / s).is_dir()]
    if missing:
        raise DataFormatError(
            f"sequences {missing} are missing; expected sequences/{missing[0]}/velodyne/ as in the KITTI "
            "odometry download (pass sequences=[...], or --sequences, to use only the ones you have)",
            path=seq_dir,
        )
    out: list[ScanFiles] = []
    for s in names:
        vel = seq_dir / s / "velodyne"
        if not vel.is_dir():
            raise DataFormatError(
                f"sequence {s} has no velodyne/ folder (the scans come in data_odometry_velodyne.zip)",
                path=vel,
            )
        frames = sorted(p for p in vel.iterdir() if p.suffix == ".bin")
        if not frames:
            raise DataFormatError(f"sequence {s}: velodyne/ holds no .bin scans", path=vel)
        if labels:
            lab_dir = seq_dir / s / "labels"
            if not lab_dir.is_dir():
                raise DataFormatError(
                    f"sequence {s} has no labels/ folder (labels come in data_odometry_labels.zip, for "
                    "sequences 00-10 only)",
                    path=lab_dir,
                )
            present = {p.name for p in lab_dir.iterdir()}
            lacking = [f for f in frames if f"{f.stem}.label" not in present]
            if lacking:
                raise DataFormatError(
                    f"sequence {s}: {len(lacking)} scans have no label file, first "
                    f"{lacking[0].name} (expected labels/{lacking[0].stem}.label)",
                    path=lab_dir / f"{lacking[0].stem}.label",
                )
        out += [ScanFiles(s, f.stem, f, label_path(f) if labels else None) for f in frames]
    return out
