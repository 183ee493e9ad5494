"""Readers for whole-shape datasets: ModelNet40 / ModelNet10 (mesh and resampled-points layouts)
and generic mesh folders (one sub-folder per class).

Every dataset is a lazy :class:`ShapeDataset`: a ``Sequence`` of
:class:`~fastai_sparse.geometry.PointCloud`, item ``i`` being a pure function of ``(seed, split,
i)``. Meshes are sampled to ``points`` surface points (area-weighted, face normals) with core's
:func:`~fastai_sparse.transforms.mesh.sample_surface`; point files are subsampled without
replacement (all points kept when there are fewer). Each cloud has ``xyz`` float32 [N, 3] (centred
and scaled into the unit sphere when ``normalize``), ``attrs["normals"]`` float32 [N, 3], ``target``
= int class index and ``meta`` with ``path``, ``id``, ``category`` and ``split``.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fastai_sparse.errors import DataFormatError, FastaiSparseError
from fastai_sparse.geometry import Mesh, PointCloud

__all__ = [
    "MESH_EXTENSIONS",
    "MODELNET10_CLASSES",
    "MODELNET40_CLASSES",
    "Y_UP_TO_Z_UP",
    "MeshFolder",
    "ModelNet",
    "ModelNet10",
    "ModelNet40",
    "ShapeDataset",
    "ShapeItem",
    "check_classes",
    "item_rng",
    "load_shape",
    "mesh_folder_items",
    "modelnet_mesh_items",
    "modelnet_resampled_items",
    "prepared_path",
    "read_item",
]

#: The 40 ModelNet40 classes, in the order of ``modelnet40_shape_names.txt`` (class index = position).
MODELNET40_CLASSES: tuple[str, ...] = (
    "airplane", "bathtub", "bed", "bench", "bookshelf", "bottle", "bowl", "car", "chair", "cone",
    "cup", "curtain", "desk", "door", "dresser", "flower_pot", "glass_box", "guitar", "keyboard",
    "lamp", "laptop", "mantel", "monitor", "night_stand", "person", "piano", "plant", "radio",
    "range_hood", "sink", "sofa", "stairs", "stool", "table", "tent", "toilet", "tv_stand", "vase",
    "wardrobe", "xbox",
)  # fmt: skip
#: The 10 ModelNet10 classes (order of ``modelnet10_shape_names.txt``).
MODELNET10_CLASSES: tuple[str, ...] = (
    "bathtub", "bed", "chair", "desk", "dresser", "monitor", "night_stand", "sofa", "table", "toilet",
)  # fmt: skip

#: File extensions read by the mesh-folder dataset (lower case).
MESH_EXTENSIONS: tuple[str, ...] = (".off", ".ply", ".obj", ".stl", ".txt", ".pts", ".xyz", ".npz")

#: rotation +90 degrees about x taking a y-up frame to z-up: (x, y, z) -> (x, -z, y)
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

#: dataset split name -> the folder / list name of the split in ModelNet (which has no validation split)
_SPLIT_FILES = {"train": "train", "valid": "test", "test": "test"}
_ID = re.compile(r"^(?P<cls>.+)_(?P<num>\d+)$")


def _split_name(split: str) -> str:
    if split not in _SPLIT_FILES:
        raise ValueError(f"split must be one of {sorted(_SPLIT_FILES)}, got {split!r}")
    return _SPLIT_FILES[split]


def _hidden(p: Path) -> bool:
    return p.name.startswith((".", "__")) or p.name == "__MACOSX"


@dataclass(frozen=True)
class ShapeItem:
    """One file of a shape dataset: its path, class index, id (file stem) and class name;
    ``source``: for a prepared (cached) item, the raw file it was made from."""

    path: Path
    label: int
    id: str
    category: str
    source: Path | None = None


_SPLIT_CODE = {"train": 0, "valid": 1, "test": 2}


def item_rng(seed: int, split: str, item_id: str) -> np.random.Generator:
    """The random state of one item: a function of the seed, the split and the item's id only
    (not of its position, so adding or removing files changes no other item's points)."""
    return np.random.default_rng([int(seed), _SPLIT_CODE.get(split, 3), zlib.crc32(item_id.encode())])


def read_item(
    path: str | Path, points: int, rng: np.random.Generator, *, normalize: bool = True, y_up: bool = False
) -> PointCloud:
    """:func:`load_shape` of one file, any reader error re-raised as DataFormatError naming the
    file; ``y_up``: turn a y-up file z-up (+90 degrees about x, normals follow)."""
    try:
        cloud = load_shape(path, points, rng, normalize=normalize)
    except FastaiSparseError:
        raise
    except Exception as e:  # a reader's own error (plyfile, trimesh, OS): name the file
        raise DataFormatError(f"cannot read the file: {type(e).__name__}: {e}", path=path) from e
    if y_up:
        cloud = cloud.map_points(lambda p: p @ Y_UP_TO_Z_UP.T, Y_UP_TO_Z_UP)
    return cloud


# ---------------------------------------------------------------------------------------------
# one file -> PointCloud


def load_shape(
    path: str | Path,
    points: int = 2048,
    rng: np.random.Generator | None = None,
    *,
    normalize: bool = True,
    estimate_normals: bool = True,
) -> PointCloud:
    """Read one mesh or point file and return ``points`` surface points with normals.

    Meshes (OFF, OBJ, STL, PLY with faces): ``points`` samples, area-weighted, face normals; a
    mesh of zero total area (no faces, or only degenerate ones) raises DataFormatError naming the
    file. Point files (txt ``x y z [nx ny nz]``, PLY without faces): a random subset of ``points``
    without replacement (all of them when the file has fewer); normals from the file, else
    estimated from 16 neighbours (``estimate_normals``). ``normalize`` centres the bounding box
    and scales into the unit sphere. Returns xyz float32 [n, 3], ``attrs["normals"]`` float32
    [n, 3] (plus any other per-point attribute of the file), ``meta["path"]``.
    """
    from fastai_sparse.io import load
    from fastai_sparse.transforms import AddNormals
    from fastai_sparse.transforms.mesh import normalize as normalize_obj
    from fastai_sparse.transforms.mesh import sample_surface

    path = Path(path)
    rng = np.random.default_rng(0) if rng is None else rng
    obj = load(path)
    obj.meta.setdefault("path", str(path))
    if isinstance(obj, Mesh):
        if len(obj.faces) == 0:
            raise DataFormatError(
                f"the mesh has {len(obj.vertices)} vertices and 0 faces (zero surface area), expected "
                "triangles to sample points from",
                path=path,
                field="faces",
            )
        cloud = sample_surface(obj, points, rng)
    else:
        cloud = obj
        if len(cloud) == 0:
            raise DataFormatError("the file holds 0 points, expected at least one", path=path, field="xyz")
        if len(cloud) > points:
            cloud = cloud.select(np.sort(rng.choice(len(cloud), points, replace=False)))
        if "normals" not in cloud.attrs:
            cloud = AddNormals(estimate=estimate_normals)(cloud)
    if normalize:
        cloud = normalize_obj(cloud)
    return cloud


class ShapeDataset(Sequence):
    """A lazy sequence of shapes: item ``i`` = :func:`load_shape` of ``items[i]`` with the class as
    target, drawn from ``numpy.random.default_rng([seed, split code, i])`` (same on every call).

    items: :class:`ShapeItem` list; classes: all class names (targets index into them).
    y_up: the files have y up (as ``modelnet40_normal_resampled``): points and normals are rotated
    so that z is up, like the ModelNet meshes and every task's augmentation (rotation about z).
    skip_bad: read every file once now and drop those that fail, with one warning listing them
    (``bad`` holds ``(path, message)`` pairs); otherwise a bad file raises when its item is read,
    with the file's path in the message.
    cache: the :class:`~fastai_sparse.cache.CacheFormat` of prepared items (``path`` an ``.npz``
    written by ``prepare``, ``source`` its raw file): they are read from the cache, checked against
    their raw file (a stale one raises :class:`~fastai_sparse.errors.StaleCacheError` with the
    command that rebuilds it), and from the raw file when the cache file is missing.
    """

    def __init__(
        self,
        items: Sequence[ShapeItem],
        classes: Sequence[str],
        split: str = "train",
        points: int = 2048,
        seed: int = 0,
        normalize: bool = True,
        skip_bad: bool = False,
        name: str = "shapes",
        y_up: bool = False,
        cache: Any = None,
    ):
        if points < 1:
            raise ValueError(f"points must be >= 1, got {points}")
        self.items, self.classes = list(items), tuple(classes)
        self.split, self.points, self.seed, self.normalize, self.name = (
            split,
            int(points),
            int(seed),
            normalize,
            name,
        )
        self.y_up = bool(y_up)
        self.cache = cache
        self._unchecked_warned = False
        self.bad: list[tuple[Path, str]] = []
        if skip_bad:
            self._drop_bad()

    def _drop_bad(self) -> None:
        good = []
        for i, it in enumerate(self.items):
            try:
                self._read(i, it)
            except FastaiSparseError as e:
                self.bad.append((it.path, str(e)))
            else:
                good.append(it)
        self.items = good
        if self.bad:
            listing = "\n".join(f"  {m}" if str(p) in m else f"  {p}: {m}" for p, m in self.bad[:20])
            more = f"\n  ... and {len(self.bad) - 20} more" if len(self.bad) > 20 else ""
            warnings.warn(
                f"{self.name} ({self.split}): skipped {len(self.bad)} unreadable file(s) of "
                f"{len(self.bad) + len(good)}:\n{listing}{more}",
                stacklevel=3,
            )

    def __len__(self) -> int:
        return len(self.items)

    def rng(self, i: int) -> np.random.Generator:
        return item_rng(self.seed, self.split, self.items[i].id)

    def _read(self, i: int, it: ShapeItem) -> PointCloud:
        cloud = self._read_cached(i, it) if self.cache is not None else None
        if cloud is None:
            src = it.source if it.source is not None else it.path
            cloud = read_item(src, self.points, self.rng(i), normalize=self.normalize, y_up=self.y_up)
        meta = {**cloud.meta, "path": str(it.path), "id": it.id, "category": it.category, "split": self.split}
        return cloud.replace(target=int(it.label), meta=meta)

    def _read_cached(self, i: int, it: ShapeItem) -> PointCloud | None:
        """The item from its prepared file (a subset of ``points`` of the stored ones), or None
        when there is no prepared file but the raw one is known."""
        from fastai_sparse.cache import CacheItem
        from fastai_sparse.transforms.mesh import normalize as normalize_obj

        sources = (it.source,) if it.source is not None else ()
        arrays = self.cache.load(CacheItem(it.id, it.path, sources), check=bool(sources))
        if arrays is None:
            if it.source is None:
                raise DataFormatError(f"prepared file of {it.id!r} is missing", path=it.path)
            return None
        if not sources and not self._unchecked_warned:
            self._unchecked_warned = True
            warnings.warn(
                f"{self.name}: the prepared files in {it.path.parents[2]} are read without checking them "
                "against their raw files, which are not found under the data root",
                stacklevel=4,
            )
        cloud = PointCloud(arrays["xyz"], {"normals": arrays["normals"]}, meta={"path": str(it.path)})
        if len(cloud) > self.points:
            cloud = cloud.select(np.sort(self.rng(i).choice(len(cloud), self.points, replace=False)))
        return normalize_obj(cloud) if self.normalize else cloud

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        j = int(i) + len(self) if i < 0 else int(i)
        if not 0 <= j < len(self):
            raise IndexError(f"{self.name} index {i} out of range for {len(self)} items")
        return self._read(j, self.items[j])

    def counts(self) -> dict[str, int]:
        """Number of items per class name (classes with no item included, as 0)."""
        c = dict.fromkeys(self.classes, 0)
        for it in self.items:
            c[it.category] += 1
        return c

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.name!r}, split={self.split!r}, n={len(self)}, "
            f"classes={len(self.classes)}, points={self.points})"
        )


# ---------------------------------------------------------------------------------------------
# ModelNet


def _find_dir(root: Path, names: Sequence[str], marker: str) -> Path | None:
    """``root`` itself when it holds ``marker``, else the first ``root/<name>`` that does."""
    for d in [root, *(root / n for n in names)]:
        if (d / marker).exists():
            return d
    return None


def _mesh_root(root: Path, variant: str) -> Path | None:
    """The folder holding ``<class>/{train,test}/`` for ModelNet40 / ModelNet10, if any."""
    folder = {"modelnet40": "ModelNet40", "modelnet10": "ModelNet10"}[variant]
    for d in (root / folder, root):
        if d.is_dir() and any(
            (c / "train").is_dir() or (c / "test").is_dir() for c in d.iterdir() if c.is_dir()
        ):
            return d
    return None


def _resampled_root(root: Path, variant: str) -> Path | None:
    return _find_dir(root, ("modelnet40_normal_resampled",), f"{variant}_shape_names.txt")


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise DataFormatError(f"missing file, expected the ModelNet list {path.name}", path=path)
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    return [ln for ln in lines if ln]


def modelnet_mesh_items(root: str | Path, split: str, classes: Sequence[str]) -> list[ShapeItem]:
    """Items of the mesh layout ``<root>/<class>/{train,test}/<class>_<nnnn>.off``.

    Files in ``root`` (README.txt, .DS_Store, ...) and hidden folders are ignored. A folder whose
    name is not one of ``classes`` raises; so does a class folder holding no ``.off`` file at all
    (in any split), and a file whose name does not start with its class.
    """
    root, part = Path(root), _split_name(split)
    index = {c: i for i, c in enumerate(classes)}
    items: list[ShapeItem] = []
    folders = sorted(
        p for p in root.iterdir() if p.is_dir() and not _hidden(p) and not (p / "prepared.json").exists()
    )
    if not folders:
        raise DataFormatError("no class folders, expected <class>/{train,test}/<class>_<nnnn>.off", path=root)
    for d in folders:
        if d.name not in index:
            raise DataFormatError(
                f"folder {d.name!r} is not a class of this dataset; expected one of {list(classes)}",
                path=d,
            )
        all_off = [p for p in d.glob("*/*") if p.suffix.lower() == ".off"]
        if not all_off:
            raise DataFormatError(
                f"class folder {d.name!r} holds no .off file, expected {d.name}/{{train,test}}/{d.name}_<nnnn>.off",
                path=d,
            )
        for p in sorted((d / part).glob("*")):
            if p.suffix.lower() != ".off" or _hidden(p):
                continue
            m = _ID.match(p.stem)
            if not m or m["cls"] != d.name:
                raise DataFormatError(
                    f"file name {p.name!r} does not match its class folder, expected {d.name}_<nnnn>.off",
                    path=p,
                )
            items.append(ShapeItem(p, index[d.name], p.stem, d.name))
    return items


def modelnet_resampled_items(
    root: str | Path, split: str, variant: str = "modelnet40"
) -> tuple[list[ShapeItem], tuple[str, ...]]:
    """Items and classes of ``modelnet40_normal_resampled/``: ``<variant>_shape_names.txt`` (the
    classes), ``<variant>_{train,test}.txt`` (ids such as ``airplane_0001``; class = id without the
    last ``_NNNN``), files ``<class>/<id>.txt`` of comma-separated ``x,y,z,nx,ny,nz``.

    An id whose class is not in the shape names, or whose file is missing, raises naming both.
    """
    root, part = Path(root), _split_name(split)
    names_file = root / f"{variant}_shape_names.txt"
    classes = tuple(_read_list(names_file))
    if len(set(classes)) != len(classes):
        raise DataFormatError(f"class names repeat: {classes}", path=names_file)
    index = {c: i for i, c in enumerate(classes)}
    list_file = root / f"{variant}_{part}.txt"
    items = []
    for k, sid in enumerate(_read_list(list_file), start=1):
        m = _ID.match(sid)
        if not m or m["cls"] not in index:
            raise DataFormatError(
                f"line {k}: found id {sid!r}, expected <class>_<NNNN> with <class> in {names_file.name}",
                path=list_file,
                field="id",
            )
        p = root / m["cls"] / f"{sid}.txt"
        if not p.is_file():
            raise DataFormatError(f"line {k}: id {sid!r} listed but its file is missing", path=p)
        items.append(ShapeItem(p, index[m["cls"]], sid, m["cls"]))
    return items, classes


def ModelNet(
    root: str | Path,
    split: str = "train",
    variant: str = "modelnet40",
    layout: str = "auto",
    points: int = 2048,
    seed: int = 0,
    normalize: bool = True,
    skip_bad: bool = False,
    z_up: bool = True,
    prepared: bool | str | Path = True,
    allow_missing_classes: bool = False,
) -> ShapeDataset:
    """ModelNet40 or ModelNet10 as a :class:`ShapeDataset`.

    root: a folder holding ``ModelNet40/`` (or ``ModelNet10/``) with the OFF meshes, or
    ``modelnet40_normal_resampled/``, or one of those folders itself. layout: ``"mesh"``,
    ``"resampled"`` or ``"auto"`` (mesh when both exist). split: ``"train"``; ``"valid"`` and
    ``"test"`` both give the official test split (ModelNet has no validation split).
    Targets index into ``MODELNET40_CLASSES`` / ``MODELNET10_CLASSES``. The resampled files have
    y up; with ``z_up`` (default) they are rotated to z up like the meshes. prepared: read the
    cache written by ``fastai-sparse prepare`` (``<root>/<variant>-prepared`` or ``root`` itself
    when it holds ``prepared.json``; a path to read another folder; False to ignore it); each
    prepared file is checked against its raw file (see :class:`ShapeDataset`).

    Classes: a training split with files of fewer than two classes raises DataFormatError (a
    one-class model is always right); classes of the variant without training files give one
    warning naming them and the ways on (``modelnet10``, a mesh-folder task, or
    ``allow_missing_classes=True`` to train the full head anyway, silently).
    """
    if variant not in ("modelnet40", "modelnet10"):
        raise ValueError(f"variant must be 'modelnet40' or 'modelnet10', got {variant!r}")
    if layout not in ("auto", "mesh", "resampled"):
        raise ValueError(f"layout must be 'auto', 'mesh' or 'resampled', got {layout!r}")
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError("not a folder, expected the ModelNet data root", path=root)
    classes = MODELNET40_CLASSES if variant == "modelnet40" else MODELNET10_CLASSES
    cache_dir, marker = _prepared_dir(root, variant, prepared, layout)
    raw = _modelnet_raw(root, split, variant, marker.get("layout", layout) if marker else layout, classes)
    if cache_dir is None:
        if raw is None:
            folder = "ModelNet40" if variant == "modelnet40" else "ModelNet10"
            raise DataFormatError(
                f"found neither {folder}/<class>/{{train,test}}/*.off nor modelnet40_normal_resampled/"
                f"{variant}_shape_names.txt (layout={layout!r})",
                path=root,
            )
        items, y_up, found_layout = raw
        fmt = None
    else:
        from .prepare import prepared_format

        fmt = prepared_format(root, marker)
        if raw is not None:  # prepared files checked against their raw files
            raw_items, y_up, found_layout = raw
            items = [
                dataclasses.replace(
                    it, path=prepared_path(cache_dir, split, it.category, it.id), source=it.path
                )
                for it in raw_items
            ]
        else:  # only the prepared folder: read as it is
            items, y_up, found_layout = (
                _prepared_items(cache_dir, split, classes),
                False,
                marker.get("layout"),
            )
    hint = "mesh-folder-cls trains on the class folders that are there"
    if variant == "modelnet40" and {it.category for it in items} <= set(MODELNET10_CLASSES):
        hint = "they are all ModelNet10 classes: train modelnet10-cls; or " + hint
    check_classes(
        items,
        classes,
        split,
        where=root,
        what=f"{variant} classes",
        hint=hint,
        allow_missing=allow_missing_classes,
    )
    ds = ShapeDataset(
        items, classes, split, points, seed, normalize, skip_bad, name=variant, y_up=y_up and z_up, cache=fmt
    )
    ds.layout = found_layout
    return ds


def prepared_path(cache_dir: str | Path, split: str, category: str, item_id: str) -> Path:
    """Where ``prepare`` writes the item ``item_id`` of ``category``: ``<cache>/{train,test}/<class>/<id>.npz``."""
    return Path(cache_dir) / _split_name(split) / category / f"{item_id}.npz"


def _modelnet_raw(
    root: Path, split: str, variant: str, layout: str, classes: Sequence[str]
) -> tuple[list[ShapeItem], bool, str] | None:
    """``(items, y_up, layout)`` of the raw files under ``root`` in ``layout``, or None."""
    mesh_dir = _mesh_root(root, variant) if layout in ("auto", "mesh") else None
    if mesh_dir is not None:
        return modelnet_mesh_items(mesh_dir, split, classes), False, "mesh"
    res_dir = _resampled_root(root, variant) if layout in ("auto", "resampled") else None
    if res_dir is None:
        return None
    items, found = modelnet_resampled_items(res_dir, split, variant)
    if found != tuple(classes):
        raise DataFormatError(
            f"{variant}_shape_names.txt lists {list(found)}, expected the {len(classes)} {variant} "
            f"classes {list(classes)}",
            path=res_dir / f"{variant}_shape_names.txt",
        )
    return items, True, "resampled"


def check_classes(
    items: Sequence[ShapeItem],
    classes: Sequence[str],
    split: str,
    *,
    where: str | Path,
    what: str = "classes",
    hint: str = "",
    allow_missing: bool = False,
) -> None:
    """The checks every classification dataset makes on its training split: files of at least
    two classes (DataFormatError otherwise: with one class every prediction is right, accuracy
    1.0 means nothing), and, unless ``allow_missing``, one warning naming the ``classes`` that
    have no training file (the model still gets an output for each and never learns them)."""
    if split != "train":
        return
    found = sorted({it.category for it in items})
    if len(found) < 2:
        raise DataFormatError(
            f"the training split holds files of {len(found)} class{'' if len(found) == 1 else 'es'}"
            f"{' (' + ', '.join(found) + ')' if found else ''}; classification needs at least two "
            "(with one, every prediction is right and accuracy 1.0 means nothing): add a folder of files "
            "for each other class",
            path=where,
        )
    missing = [c for c in classes if c not in found]
    if missing and not allow_missing:
        shown = ", ".join(missing[:10]) + (f", ... ({len(missing)} in all)" if len(missing) > 10 else "")
        warnings.warn(
            f"{where}: only {len(found)} of the {len(classes)} {what} have training files; no files of "
            f"{shown}. The model would have {len(classes)} outputs and never learn the missing ones"
            + (f"; {hint}" if hint else "")
            + "; or pass allow_missing_classes=True (-O allow_missing_classes=true) to train it anyway",
            stacklevel=3,
        )


def _prepared_dir(
    root: Path, variant: str, prepared: bool | str | Path, layout: str = "auto"
) -> tuple[Path | None, dict | None]:
    """The prepared folder and its ``prepared.json`` (None, None when there is none to use: not
    found, ``prepared=False``, or made from another layout than the one asked for)."""
    import json

    if prepared is False:
        return None, None
    cands = [Path(prepared)] if not isinstance(prepared, bool) else [root, root / f"{variant}-prepared"]
    for d in cands:
        marker = d / "prepared.json"
        if marker.is_file():
            info = json.loads(marker.read_text())
            if info.get("variant") != variant:
                raise DataFormatError(
                    f"the prepared folder holds {info.get('variant')!r}, expected {variant!r}", path=marker
                )
            if layout != "auto" and info.get("layout", layout) != layout:
                return None, None
            return d, info
    if not isinstance(prepared, bool):
        raise DataFormatError("no prepared.json here: run `fastai-sparse prepare` first", path=prepared)
    return None, None


def _prepared_items(cache: Path, split: str, classes: Sequence[str]) -> list[ShapeItem]:
    index = {c: i for i, c in enumerate(classes)}
    part = cache / _split_name(split)
    items = []
    for p in sorted(part.glob("*/*.npz")):
        if p.parent.name not in index:
            raise DataFormatError(f"folder {p.parent.name!r} is not a class of this dataset", path=p.parent)
        items.append(ShapeItem(p, index[p.parent.name], p.stem, p.parent.name))
    return items


def ModelNet40(root: str | Path, split: str = "train", **kwargs: Any) -> ShapeDataset:
    """:func:`ModelNet` with ``variant="modelnet40"``."""
    return ModelNet(root, split, "modelnet40", **kwargs)


def ModelNet10(root: str | Path, split: str = "train", **kwargs: Any) -> ShapeDataset:
    """:func:`ModelNet` with ``variant="modelnet10"``."""
    return ModelNet(root, split, "modelnet10", **kwargs)


# ---------------------------------------------------------------------------------------------
# generic mesh folders


def _shape_files(d: Path) -> list[Path]:
    return sorted(
        p for p in d.rglob("*") if p.is_file() and not _hidden(p) and p.suffix.lower() in MESH_EXTENSIONS
    )


def mesh_folder_items(
    root: str | Path,
    split: str = "train",
    classes: Sequence[str] | None = None,
    valid_pct: float = 0.2,
    seed: int = 0,
) -> tuple[list[ShapeItem], tuple[str, ...]]:
    """Items and classes of a folder with one sub-folder per class.

    Layouts, in this order: ``root/{train,test|valid}/<class>/...``; ``root/<class>/{train,test|valid}/...``
    (ModelNet-like); else ``root/<class>/...`` split per class by a seeded random fraction
    ``valid_pct`` (at least one training file per class). Files with an extension in
    :data:`MESH_EXTENSIONS` are read, in sub-folders too; others are ignored. classes: default the
    sorted class-folder names. A class folder with no readable-looking file raises, naming it.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError("not a folder, expected a folder with one sub-folder per class", path=root)
    _split_name(split)
    want_train = split == "train"

    def split_dir(parent: Path) -> Path | None:
        names = ("train",) if want_train else ("test", "valid", "val")
        return next((parent / n for n in names if (parent / n).is_dir()), None)

    if (root / "train").is_dir():
        # root/{train,test}/<class>/...: classes = folders found in any split
        if not any((root / n).is_dir() for n in ("test", "valid", "val")):
            raise DataFormatError(
                "has train/ but no test/ or valid/ folder for the validation split", path=root
            )
        mode = "top"
        split_roots = [root / s for s in ("train", "test", "valid", "val") if (root / s).is_dir()]
        found = sorted({p.name for s in split_roots for p in s.iterdir() if p.is_dir() and not _hidden(p)})
        class_dirs = {n: [s / n for s in split_roots if (s / n).is_dir()] for n in found}
    else:
        dirs = sorted(p for p in root.iterdir() if p.is_dir() and not _hidden(p))
        mode = "nested" if any((d / "train").is_dir() for d in dirs) else "fraction"
        class_dirs = {d.name: [d] for d in dirs}
    if not class_dirs:
        raise DataFormatError("no class sub-folders found, expected root/<class>/<files>", path=root)
    names = tuple(sorted(class_dirs)) if classes is None else tuple(classes)
    unknown = sorted(set(class_dirs) - set(names))
    if unknown:
        raise DataFormatError(
            f"class folders {unknown} are not in the given classes {list(names)}", path=root
        )
    index = {c: i for i, c in enumerate(names)}
    items: list[ShapeItem] = []
    for name, dirs in sorted(class_dirs.items()):
        if not any(_shape_files(d) for d in dirs):
            raise DataFormatError(
                f"class folder {name!r} holds no shape file, expected files ending in {', '.join(MESH_EXTENSIONS)}",
                path=dirs[0],
            )
        if mode == "top":
            d = split_dir(root) / name
            files = _shape_files(d) if d.is_dir() else []
        elif mode == "nested":
            sd = split_dir(dirs[0])
            files = _shape_files(sd) if sd is not None else []
        else:
            allf = _shape_files(dirs[0])
            order = np.random.default_rng([seed, index[name]]).permutation(len(allf))
            n_valid = min(round(valid_pct * len(allf)), len(allf) - 1)
            chosen = order[n_valid:] if want_train else order[:n_valid]
            files = [allf[k] for k in sorted(chosen)]
        items += [ShapeItem(p, index[name], p.stem, name) for p in files]
    return items, names


def MeshFolder(
    root: str | Path,
    split: str = "train",
    classes: Sequence[str] | None = None,
    valid_pct: float = 0.2,
    points: int = 2048,
    seed: int = 0,
    normalize: bool = True,
    skip_bad: bool = False,
    allow_missing_classes: bool = False,
) -> ShapeDataset:
    """A folder of meshes or point files, one sub-folder per class, as a :class:`ShapeDataset`
    (see :func:`mesh_folder_items` for the layouts and the split). ``skip_bad=True`` reads every
    file once and drops the unreadable ones with a warning that counts and lists them.

    A training split with files of fewer than two classes raises DataFormatError; ``classes``
    given without training files give one warning naming them (``allow_missing_classes=True``:
    none), see :func:`check_classes`."""
    items, names = mesh_folder_items(root, split, classes, valid_pct, seed)
    check_classes(
        items,
        names,
        split,
        where=root,
        hint="remove them from classes= or add their folders",
        allow_missing=allow_missing_classes,
    )
    return ShapeDataset(
        items, names, split, points, seed, normalize, skip_bad, name=f"mesh-folder {Path(root).name}"
    )
