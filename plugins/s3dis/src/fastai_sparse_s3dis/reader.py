"""Readers for S3DIS (``Stanford3dDataset_v1.2_Aligned_Version``) as downloaded.

::

    ROOT/                                   the unpacked folder (or a folder holding it)
      Area_1/ .. Area_6/
        <room>/                             e.g. office_1, conferenceRoom_2, hallway_6
          <room>.txt                        the room: one point per line, "x y z r g b"
          Annotations/
            <class>_<k>.txt                 one object: the same six columns, its points
                                            taken from the room file (ceiling_1, chair_12, ...)

Coordinates are metres (three decimals in the download), colours integers 0..255, values
separated by single spaces. Each room is axis-aligned in this version (walls along x and y).

**Labels.** A point's class comes from the annotation file holding it: the class is the file
name without ``_<k>`` (``stairs`` counts as clutter, see :data:`~.constants.CLASS_ALIASES`).
The annotation files hold copies of the room file's points in another order, so each
annotation point is matched to a point of the room file by its exact values (x, y, z, r, g, b;
then, for what is left, x, y, z alone), one to one, duplicates matched by count. The room file
stays the point set: every one of its points gets a label (the class index 0..12, or
:data:`~.constants.IGNORE_INDEX` when no annotation covers it) and an object index. Both
counts (room points no annotation covers, annotation points with no room point left to match)
are reported in :class:`S3DISRoom` and by ``prepare``. Where two annotation files claim the
same point, the file that sorts first (natural order: ``chair_2`` before ``chair_10``) keeps it.

**Bad input** raises :class:`~fastai_sparse.errors.DataFormatError` naming the file, the line,
the field, what was found and what to do: a wrong number of values, a non-number, colours
outside 0..255, non-finite coordinates, an empty file, an annotation file name that is not
``<class>_<k>.txt`` or names an unknown class, a room without ``Annotations/`` (when labels are
needed), a missing area. Known defects of the download (:data:`~.constants.KNOWN_DEFECTS`) are
handled and reported instead:

* a control character standing where the separator belongs between two numbers (the NUL in
  line 180389 of ``Area_5/hallway_6/Annotations/ceiling_1.txt``) is read as a separator,
  under every ``bad_lines`` policy except ``"error"``;
* a line that cannot be read unambiguously (e.g. a control character inside a number) is left
  out and counted with ``bad_lines="skip"`` (what ``prepare`` and the dataset use), an error
  otherwise (what prediction uses: it must give every input line a label);
* a room file whose name differs from its folder (``Area_6/copyRoom_1/copy_Room_1.txt``) is
  used when it is the only ``.txt`` file in the folder;
* ``<name> (1).txt`` that is a byte-identical copy of ``<name>.txt`` (``Area_5/office_36``)
  is skipped. Files whose names start with a dot (macOS ``._*`` and ``.DS_Store``) and files
  that are not ``.txt`` are not data and are not read.

Every repair and skip is a warning (one line naming the file and line) and a note in
:attr:`S3DISRoom.notes`.

Parsing uses numpy's C text reader (``np.loadtxt``, about 1 s per million lines); a line by line
scan runs only when it fails, to name the line and apply the repairs above.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fastai_sparse.errors import DataFormatError

from .constants import AREAS, CLASS_ALIASES, CLASSES, DATASET_DIR, IGNORE_INDEX

__all__ = [
    "BAD_LINES",
    "COLUMNS",
    "PointsText",
    "S3DISRoom",
    "annotation_class",
    "annotation_files",
    "dataset_root",
    "find_room_file",
    "list_rooms",
    "match_points",
    "read_points",
    "read_room",
    "room_id",
]

#: The six columns of every S3DIS text file.
COLUMNS = ("x", "y", "z", "red", "green", "blue")

#: Policies for malformed lines: ``"error"`` (any bad line raises), ``"repair"`` (a control
#: character between two numbers is read as a separator; any other bad line raises),
#: ``"skip"`` (as ``"repair"``, and lines that still cannot be read are left out and counted).
BAD_LINES = ("error", "repair", "skip")

_CLASS_INDEX = {c: i for i, c in enumerate(CLASSES)}
_ANNOTATION_NAME = re.compile(r"^(?P<cls>[A-Za-z]+)_(?P<k>\d+)(?P<copy> \((?P<n>\d+)\))?$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


# -- folders ------------------------------------------------------------------------------------
def dataset_root(root: str | Path) -> Path:
    """The folder holding ``Area_1`` .. ``Area_6``: ``root`` itself, or
    ``root/Stanford3dDataset_v1.2_Aligned_Version``. Raises DataFormatError when neither has an
    ``Area_<n>`` folder."""
    root = Path(root).expanduser()
    for cand in (root, root / DATASET_DIR):
        if cand.is_dir() and any((cand / a).is_dir() for a in AREAS):
            return cand
    raise DataFormatError(
        f"no S3DIS areas found: expected folders {', '.join(AREAS)} in it or in {DATASET_DIR}/ "
        f"(unzip {DATASET_DIR}.zip there, or pass the folder that holds the Area_<n> folders)",
        path=root,
    )


def _area_name(area: int | str) -> str:
    name = f"Area_{area}" if isinstance(area, int) or str(area).isdigit() else str(area)
    if name not in AREAS:
        raise ValueError(f"unknown S3DIS area {area!r}; expected 1..6 or one of {AREAS}")
    return name


def room_id(room_dir: str | Path) -> str:
    """``"Area_1/office_1"`` for ``.../Area_1/office_1``."""
    d = Path(room_dir)
    return f"{d.parent.name}/{d.name}"


def list_rooms(root: str | Path, areas: Iterable[int | str] = (1, 2, 3, 4, 5, 6)) -> list[Path]:
    """The room folders of ``areas`` (numbers or ``"Area_<n>"``), sorted naturally within each
    area. A missing area folder raises DataFormatError naming it; folders whose names start
    with a dot are not rooms."""
    base = dataset_root(root)
    rooms: list[Path] = []
    for area in areas:
        name = _area_name(area)
        d = base / name
        if not d.is_dir():
            found = [a for a in AREAS if (base / a).is_dir()]
            raise DataFormatError(
                f"area folder {name} is missing (found {', '.join(found) or 'none'}): copy the whole "
                f"{DATASET_DIR} download there, or choose other areas (areas=, or a task with another fold)",
                path=d,
            )
        subs = sorted(
            (p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: _natural_key(p.name),
        )
        if not subs:
            raise DataFormatError(f"area {name} has no room folders; expected <room>/<room>.txt", path=d)
        rooms.extend(subs)
    return rooms


def find_room_file(room_dir: str | Path, notes: list[str] | None = None, *, warn: bool = True) -> Path:
    """``<room>/<room>.txt``; when absent, the only other ``.txt`` file in the folder (the known
    ``Area_6/copyRoom_1/copy_Room_1.txt`` case, reported in ``notes`` and as a warning)."""
    d = Path(room_dir)
    exact = d / f"{d.name}.txt"
    if exact.is_file():
        return exact
    if not d.is_dir():
        raise DataFormatError("room folder not found", path=d)
    cands = sorted(p for p in d.glob("*.txt") if p.is_file() and not p.name.startswith("."))
    if len(cands) == 1:
        msg = f"room file is named {cands[0].name}, not {exact.name}; using it (a known defect of Area_6/copyRoom_1)"
        _note(notes, cands[0], msg, warn)
        return cands[0]
    if not cands:
        raise DataFormatError(
            f"no room file: expected {exact.name} (x y z r g b per line) in the room folder", path=exact
        )
    raise DataFormatError(
        f"no {exact.name} and several other .txt files ({', '.join(p.name for p in cands)}): "
        f"rename the room file to {exact.name}",
        path=d,
    )


def annotation_class(path: str | Path) -> int:
    """Class index (0..12) of an annotation file from its name ``<class>_<k>.txt``."""
    p = Path(path)
    m = _ANNOTATION_NAME.match(p.stem)
    if m is None:
        raise DataFormatError(
            f"annotation file name {p.name!r} is not <class>_<number>.txt (e.g. chair_3.txt); "
            "rename it or move it out of Annotations/",
            path=p,
            field="class",
        )
    cls = m.group("cls").lower()
    cls = CLASS_ALIASES.get(cls, cls)
    if cls not in _CLASS_INDEX:
        raise DataFormatError(
            f"unknown class {m.group('cls')!r} in the file name; expected one of {', '.join(CLASSES)} "
            f"(or {', '.join(CLASS_ALIASES)}): rename the file to the object's class",
            path=p,
            field="class",
        )
    return _CLASS_INDEX[cls]


def annotation_files(
    room_dir: str | Path, notes: list[str] | None = None, *, warn: bool = True
) -> list[Path]:
    """The annotation files of a room in natural order, without byte-identical ``<name> (n).txt``
    copies (reported in ``notes``). Raises DataFormatError when ``Annotations/`` is missing or
    holds no ``.txt`` file."""
    d = Path(room_dir) / "Annotations"
    if not d.is_dir():
        raise DataFormatError(
            "room has no Annotations folder, so its points have no labels: restore it from the "
            "download (or predict on this room instead of training on it)",
            path=d,
        )
    files = [p for p in d.iterdir() if p.is_file() and p.suffix == ".txt" and not p.name.startswith(".")]
    if not files:
        raise DataFormatError("Annotations folder holds no <class>_<k>.txt file", path=d)
    files.sort(key=lambda p: _natural_key(p.name))
    out = []
    for p in files:
        m = _ANNOTATION_NAME.match(p.stem)
        if m is not None and m.group("copy"):
            orig = p.with_name(f"{m.group('cls')}_{m.group('k')}.txt")
            if (
                orig.is_file()
                and orig.stat().st_size == p.stat().st_size
                and orig.read_bytes() == p.read_bytes()
            ):
                _note(notes, p, f"a byte-identical copy of {orig.name}: skipped", warn)
                continue
        out.append(p)
    return out


def _note(notes: list[str] | None, path: Path, msg: str, warn: bool = True) -> None:
    text = f"{path}: {msg}"
    if notes is not None:
        notes.append(text)
    if warn:
        warnings.warn(text, stacklevel=3)


# -- one text file ------------------------------------------------------------------------------
@dataclass
class PointsText:
    """The points of one S3DIS text file.

    xyz float64 [N, 3] (exactly as written, for matching); rgb uint8 [N, 3]; repaired / skipped:
    1-based line numbers of the lines read after a repair / left out.
    """

    path: Path
    xyz: np.ndarray
    rgb: np.ndarray
    repaired: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.xyz)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _repair(line: str) -> str | None:
    """The line with each control character read as a separator, when every one stands between
    two characters of numbers and the result is six numbers; else None."""
    for m in _CONTROL.finditer(line):
        i = m.start()
        before, after = line[i - 1 : i], line[i + 1 : i + 2]
        if not (before.isdigit() or before == ".") or not (after.isdigit() or after in "-+."):
            return None
    fixed = _CONTROL.sub(" ", line)
    tokens = fixed.split()
    return fixed if len(tokens) == len(COLUMNS) and all(_is_number(t) for t in tokens) else None


def _describe_bad(tokens: list[str], line: str) -> tuple[str, str]:
    """(field, message) for a line that is not six numbers."""
    if len(tokens) != len(COLUMNS):
        return "columns", f"found {len(tokens)} values {line.strip()[:80]!r}, expected 6 (x y z r g b)"
    for name, tok in zip(COLUMNS, tokens):
        if not _is_number(tok):
            return name, f"found {tok!r}, expected a number"
    return "columns", f"cannot read {line.strip()[:80]!r}"


def _scan(path: Path, text: str, bad_lines: str) -> tuple[str, list[int], list[int]]:
    """Line by line: the text with repaired lines fixed and skipped lines blanked, plus the
    repaired and skipped line numbers. Raises DataFormatError at the first bad line the policy
    does not allow."""
    lines = text.splitlines()
    repaired, skipped = [], []
    for i, line in enumerate(lines):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) == len(COLUMNS) and all(_is_number(t) for t in tokens) and not _CONTROL.search(line):
            continue
        fixed = _repair(line) if bad_lines != "error" and _CONTROL.search(line) else None
        if fixed is not None:
            lines[i] = fixed
            repaired.append(i + 1)
            continue
        if bad_lines == "skip":
            lines[i] = ""
            skipped.append(i + 1)
            continue
        fld, msg = _describe_bad(tokens, line)
        ctrl = _CONTROL.search(line)
        hint = (
            f" (it holds the control character {ctrl.group()!r}; fix the line in a text editor"
            + ("" if bad_lines == "error" else ", or use bad_lines='skip' to leave the point out")
            + ")"
            if ctrl
            else "; fix the line, or restore the file from the download"
        )
        raise DataFormatError(f"line {i + 1}: {msg}{hint}", path=path, field=fld)
    return "\n".join(lines), repaired, skipped


def _nth_data_line(text: str, row: int) -> int:
    """1-based line number of data row ``row`` (0-based; blank lines are not rows)."""
    k = -1
    for i, line in enumerate(text.splitlines()):
        if line.strip():
            k += 1
            if k == row:
                return i + 1
    return -1


def read_points(path: str | Path, *, bad_lines: str = "repair", notes: list[str] | None = None) -> PointsText:
    """Read one S3DIS text file (a room file or an annotation file): ``x y z r g b`` per line.

    ``bad_lines`` is one of :data:`BAD_LINES`. Repairs and skipped lines are warnings and notes.
    """
    if bad_lines not in BAD_LINES:
        raise ValueError(f"bad_lines must be one of {BAD_LINES}, got {bad_lines!r}")
    path = Path(path)
    if not path.is_file():
        raise DataFormatError("file not found", path=path)
    if path.stat().st_size == 0:
        raise DataFormatError("empty file, expected one point per line (x y z r g b)", path=path)
    table = None
    text = cleaned = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": handled below
            table = np.loadtxt(path, dtype=np.float64, comments=None, ndmin=2, encoding="latin-1")
        if table.shape[1] != len(COLUMNS) and len(table):
            table = None
    except ValueError:
        table = None
    repaired: list[int] = []
    skipped: list[int] = []
    if table is None:
        text = path.read_bytes().decode("latin-1")
        cleaned, repaired, skipped = _scan(path, text, bad_lines)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            table = np.loadtxt(io.StringIO(cleaned), dtype=np.float64, comments=None, ndmin=2)
        if not len(table):
            table = np.zeros((0, len(COLUMNS)))
    if not len(table):
        raise DataFormatError(
            "no points: the file holds no data lines, expected one point per line (x y z r g b)", path=path
        )
    xyz, rgb = table[:, :3], table[:, 3:]
    bad_xyz = ~np.isfinite(xyz).all(1)
    bad_rgb = ~((rgb >= 0) & (rgb <= 255) & (rgb == np.round(rgb))).all(1)
    if bad_xyz.any() or bad_rgb.any():
        rows = np.flatnonzero(bad_xyz | bad_rgb)
        if cleaned is None:
            cleaned = path.read_bytes().decode("latin-1")
        if bad_lines != "skip":
            r = int(rows[0])
            ln = _nth_data_line(cleaned, r)
            if bad_xyz[r]:
                k = int(np.flatnonzero(~np.isfinite(xyz[r]))[0])
                raise DataFormatError(
                    f"line {ln}: found {xyz[r].tolist()}, expected finite coordinates; fix the line, or "
                    "restore the file from the download",
                    path=path,
                    field=COLUMNS[k],
                )
            k = int(np.flatnonzero(~((rgb[r] >= 0) & (rgb[r] <= 255) & (rgb[r] == np.round(rgb[r]))))[0])
            raise DataFormatError(
                f"line {ln}: found {rgb[r, k]:g}, expected an integer colour 0..255; fix the line, or "
                "restore the file from the download",
                path=path,
                field=COLUMNS[3 + k],
            )
        data_lines = [i + 1 for i, line in enumerate(cleaned.splitlines()) if line.strip()]
        skipped = sorted(skipped + [data_lines[int(r)] for r in rows])
        keep = np.ones(len(table), bool)
        keep[rows] = False
        xyz, rgb = xyz[keep], rgb[keep]
    out = PointsText(path, np.ascontiguousarray(xyz), rgb.astype(np.uint8), repaired, skipped)
    if repaired:
        _note(
            notes,
            path,
            f"line(s) {_lines(repaired)}: a control character between two numbers was read as a separator "
            "(a known defect of the download)",
        )
    if skipped:
        _note(
            notes,
            path,
            f"line(s) {_lines(skipped)} cannot be read (a damaged value): {len(skipped)} point(s) left out",
        )
    if not len(out):
        raise DataFormatError("no readable points: every line is damaged", path=path)
    return out


def _lines(nums: Sequence[int], k: int = 5) -> str:
    s = ", ".join(map(str, nums[:k]))
    return s + (f" and {len(nums) - k} more" if len(nums) > k else "")


# -- matching annotation points to room points -------------------------------------------------
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9))


def _row_hash(cols: Sequence[np.ndarray]) -> np.ndarray:
    """uint64 [N]: a hash of the rows made of the 1-D columns ``cols`` (their exact values)."""
    h = np.zeros(len(cols[0]), np.uint64)
    with np.errstate(over="ignore"):
        for c in cols:
            c = np.asarray(c)
            bits = (c + 0.0).view(np.uint64) if c.dtype == np.float64 else c.astype(np.uint64)  # -0.0 == 0.0
            h ^= bits + _MIX[0] + (h << np.uint64(6)) + (h >> np.uint64(2))
            h *= _MIX[1]
        h ^= h >> np.uint64(31)
        h *= _MIX[2]
        h ^= h >> np.uint64(29)
    return h


def _pair_in_groups(order: np.ndarray, new: np.ndarray, n: int, m: int) -> np.ndarray:
    """Given rows sorted into groups of equal rows (``order``: row index at each sorted position,
    room rows ``< n`` first within a group, in order of appearance; ``new``: a group starts at
    that position), the room row of each annotation row (rank k among the group's annotation
    rows takes the group's k-th room row), or -1."""
    group = np.cumsum(new) - 1
    start = np.flatnonzero(new)
    is_ann = order >= n
    n_room = np.bincount(group[~is_ann], minlength=len(start))
    g = group[is_ann]
    rank = np.flatnonzero(is_ann) - start[g] - n_room[g]
    ok = rank < n_room[g]
    out_sorted = np.full(len(g), -1, np.int64)
    out_sorted[ok] = order[start[g[ok]] + rank[ok]]
    out = np.full(m, -1, np.int64)
    out[order[is_ann] - n] = out_sorted
    return out


def _match_exact(room: Sequence[np.ndarray], ann: Sequence[np.ndarray]) -> np.ndarray:
    """:func:`_match` by sorting the values themselves (slower; the reference)."""
    n, m = len(room[0]), len(ann[0])
    if not n or not m:
        return np.full(m, -1, np.int64)
    cols = [np.concatenate([r, q]) + (0.0 if r.dtype.kind == "f" else 0) for r, q in zip(room, ann)]
    order = np.lexsort((np.arange(n + m), *cols[::-1]))
    new = np.ones(n + m, bool)
    new[1:] = False
    for c in cols:
        cs = c[order]
        new[1:] |= cs[1:] != cs[:-1]
    return _pair_in_groups(order, new, n, m)


def _match(room: Sequence[np.ndarray], ann: Sequence[np.ndarray]) -> np.ndarray:
    """For each row of ``ann``, the index of an equal row of ``room``, or -1 (rows given as lists
    of 1-D columns of equal length). One to one: each room row is used at most once; equal rows
    are paired in order of appearance.

    Fast path: one value sort of 64-bit keys (the row's hash in the high bits, its index in the
    low bits) groups rows of equal hash, room rows first and in order of appearance. Every
    matched pair is then compared value by value; the few groups where a hash collision paired
    unequal rows are matched again by :func:`_match_exact`, so the result is exact.
    """
    n, m = len(room[0]), len(ann[0])
    if not n or not m:
        return np.full(m, -1, np.int64)
    bits = np.uint64(max(1, int(n + m - 1).bit_length()))
    key = np.concatenate([_row_hash(room), _row_hash(ann)])
    key >>= bits
    key <<= bits
    key |= np.arange(n + m, dtype=np.uint64)
    key.sort()
    order = (key & ((np.uint64(1) << bits) - np.uint64(1))).astype(np.int64)
    key >>= bits  # the hash group of each sorted position
    new = np.ones(n + m, bool)
    new[1:] = key[1:] != key[:-1]
    out = _pair_in_groups(order, new, n, m)
    hit = np.flatnonzero(out >= 0)
    bad = np.zeros(len(hit), bool)
    for rc, ac in zip(room, ann):
        bad |= (rc[out[hit]] + 0) != (ac[hit] + 0)  # + 0: -0.0 == 0.0 anyway; keeps ints ints
    if bad.any():  # hash collisions: match the rows of the groups concerned by their values
        pos = np.empty(n + m, np.int64)
        pos[order] = np.arange(n + m)
        gid = np.cumsum(new) - 1
        bad_groups = np.unique(gid[pos[n + hit[bad]]])
        in_bad = np.isin(gid, bad_groups)
        rows = order[in_bad]
        r_rows, a_rows = np.sort(rows[rows < n]), np.sort(rows[rows >= n] - n)
        sub = _match_exact([c[r_rows] for c in room], [c[a_rows] for c in ann])
        out[a_rows] = np.where(sub >= 0, r_rows[np.maximum(sub, 0)], -1)
    return out


def match_points(
    room_xyz: np.ndarray, room_rgb: np.ndarray, ann_xyz: np.ndarray, ann_rgb: np.ndarray
) -> np.ndarray:
    """int64 [M]: the room point each annotation point is, or -1.

    Pass 1 matches on all six values; pass 2 matches what is left on x, y, z alone (a point
    whose colour differs between the two files). One to one: no room point is used twice.
    """
    room_xyz, ann_xyz = np.asarray(room_xyz, np.float64), np.asarray(ann_xyz, np.float64)
    rc = [room_xyz[:, 0], room_xyz[:, 1], room_xyz[:, 2], _pack(room_rgb)]
    ac = [ann_xyz[:, 0], ann_xyz[:, 1], ann_xyz[:, 2], _pack(ann_rgb)]
    out = _match(rc, ac)
    left_a = np.flatnonzero(out < 0)
    if len(left_a):
        used = np.zeros(len(room_xyz), bool)
        used[out[out >= 0]] = True
        left_r = np.flatnonzero(~used)
        if len(left_r):
            second = _match(list(room_xyz[left_r].T), list(ann_xyz[left_a].T))
            hit = second >= 0
            out[left_a[hit]] = left_r[second[hit]]
    return out


def _pack(rgb: np.ndarray) -> np.ndarray:
    c = np.asarray(rgb, np.uint8).astype(np.int64)
    return (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]


# -- one room -----------------------------------------------------------------------------------
@dataclass
class S3DISRoom:
    """A room read from disk.

    id ``"Area_1/office_1"``; xyz float32 [N, 3] (metres, the room file's points in its order);
    rgb uint8 [N, 3]; labels int64 [N] (class 0..12, :data:`~.constants.IGNORE_INDEX` where no
    annotation covers the point) and instance int64 [N] (index into ``objects``, -1 none), both
    None when read without labels; objects: annotation file stems (``"chair_3"``) in instance
    order; unlabelled: room points no annotation covers; unmatched: annotation points with no
    room point left to match; notes: repairs and skips, one line each; sources: every file read.
    """

    id: str
    path: Path
    xyz: np.ndarray
    rgb: np.ndarray
    labels: np.ndarray | None = None
    instance: np.ndarray | None = None
    objects: list[str] = field(default_factory=list)
    unlabelled: int = 0
    unmatched: int = 0
    skipped_lines: int = 0
    notes: list[str] = field(default_factory=list)
    sources: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.xyz)


def read_room(room_dir: str | Path, *, labels: bool = True, bad_lines: str = "skip") -> S3DISRoom:
    """Read one room folder: its room file and (``labels=True``) its annotations, matched as the
    module docstring says. Reads one annotation file at a time (memory: the room plus one
    object, plus the match keys)."""
    d = Path(room_dir).expanduser()
    notes: list[str] = []
    room_file = find_room_file(d, notes)
    pts = read_points(room_file, bad_lines=bad_lines, notes=notes)
    out = S3DISRoom(
        room_id(d), room_file, pts.xyz.astype(np.float32), pts.rgb, notes=notes, sources=[room_file]
    )
    out.skipped_lines = len(pts.skipped)
    if not labels:
        return out
    files = annotation_files(d, notes)
    classes = [annotation_class(p) for p in files]  # all names checked before any point is read
    n = len(pts)
    lab = np.full(n, IGNORE_INDEX, np.int64)
    inst = np.full(n, -1, np.int64)
    ann_xyz, ann_rgb, ann_obj = [], [], []
    for k, p in enumerate(files):
        a = read_points(p, bad_lines=bad_lines, notes=notes)
        out.skipped_lines += len(a.skipped)
        ann_xyz.append(a.xyz)
        ann_rgb.append(a.rgb)
        ann_obj.append(np.full(len(a), k, np.int64))
    xyz_a, rgb_a, obj_a = np.concatenate(ann_xyz), np.concatenate(ann_rgb), np.concatenate(ann_obj)
    del ann_xyz, ann_rgb, ann_obj
    where = match_points(pts.xyz, pts.rgb, xyz_a, rgb_a)
    hit = where >= 0
    inst[where[hit]] = obj_a[hit]
    lab[where[hit]] = np.asarray(classes, np.int64)[obj_a[hit]]
    out.labels, out.instance = lab, inst
    out.objects = [p.stem for p in files]
    out.unlabelled = int((inst < 0).sum())
    out.unmatched = int((~hit).sum())
    out.sources += files
    return out
