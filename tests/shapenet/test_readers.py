"""ShapeNet part category table and readers: three layouts, real samples, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastai_sparse_shapenet", reason="fastai-sparse-shapenet is not installed")

from fastai_sparse.errors import DataFormatError
from fastai_sparse_shapenet.categories import (
    CATEGORIES,
    NUM_PARTS,
    PART_NAMES,
    category_mask,
    get_category,
    part_to_category,
)
from fastai_sparse_shapenet.fixtures import SyntheticShapeNet, make_fixture
from fastai_sparse_shapenet.readers import (
    ShapeNetPart,
    detect_layout,
    read_split_list,
    read_synsetoffset,
)

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"

# (name, synset, first id, last id) as published with the benchmark
EXPECTED = [
    ("Airplane", "02691156", 0, 3),
    ("Bag", "02773838", 4, 5),
    ("Cap", "02954340", 6, 7),
    ("Car", "02958343", 8, 11),
    ("Chair", "03001627", 12, 15),
    ("Earphone", "03261776", 16, 18),
    ("Guitar", "03467517", 19, 21),
    ("Knife", "03624134", 22, 23),
    ("Lamp", "03636649", 24, 27),
    ("Laptop", "03642806", 28, 29),
    ("Motorbike", "03790512", 30, 35),
    ("Mug", "03797390", 36, 37),
    ("Pistol", "03948459", 38, 40),
    ("Rocket", "04099429", 41, 43),
    ("Skateboard", "04225987", 44, 46),
    ("Table", "04379243", 47, 49),
]


def test_category_table():
    assert [(c.name, c.synset, c.part_ids[0], c.part_ids[-1]) for c in CATEGORIES] == EXPECTED
    assert NUM_PARTS == len(PART_NAMES) == 50
    assert PART_NAMES[0] == "Airplane/body" and PART_NAMES[5] == "Bag/body"
    assert get_category("airplane") is get_category("02691156") is get_category(0)
    p2c = part_to_category()
    mask = category_mask()
    for c in CATEGORIES:
        assert (p2c[c.part_ids] == c.index).all()
        assert mask[c.index].sum() == c.num_parts and mask[c.index, c.part_ids].all()
        assert (c.to_global(c.to_local(np.array(c.part_ids))) == c.part_ids).all()
    with pytest.raises(KeyError, match="unknown ShapeNet part category '12345678'"):
        get_category("12345678")


LAYOUTS = [("normal", False), ("v0", False), ("iccv17", False), ("iccv17", True)]


@pytest.mark.parametrize("layout,flat", LAYOUTS)
def test_layouts_read_back_what_was_written(tmp_path, layout, flat):
    root = make_fixture(tmp_path / "ds", layout, shapes={"train": 4, "val": 2}, points=64, flat=flat)
    assert detect_layout(root) == layout
    ref = {"train": SyntheticShapeNet(4, "train", points=64, categories=("airplane", "chair", "mug"))}
    ds = ShapeNetPart(root, "train")
    assert len(ds) == 4 and len(ShapeNetPart(root, "valid")) == 2
    by_synset: dict[str, list] = {}
    for c in ds:
        by_synset.setdefault(c.meta["synset"], []).append(c)
    for r in ref["train"]:
        # split lists are shuffled: find the shape with the same category and coordinates
        match = [c for c in by_synset[r.meta["synset"]] if np.allclose(c.xyz, r.xyz, atol=1e-4)]
        assert len(match) == 1
        c = match[0]
        assert c.attrs["labels"].dtype == np.int64
        np.testing.assert_array_equal(c.attrs["labels"], r.attrs["labels"])
        assert (
            c.meta["category"] == r.meta["category"] and c.meta["category_index"] == r.meta["category_index"]
        )
        assert Path(c.meta["path"]).is_file() and c.meta["layout"] == layout
        if layout == "normal":
            np.testing.assert_allclose(c.attrs["normals"], r.attrs["normals"], atol=1e-5)
        else:
            assert "normals" not in c.attrs


def test_trainval_and_category_filter(tmp_path):
    root = make_fixture(tmp_path / "ds", "normal", shapes={"train": 6, "val": 3})
    assert len(ShapeNetPart(root, "trainval")) == 9
    only = ShapeNetPart(root, "train", categories=["Mug"])
    assert len(only) == 2 and all(c.meta["category"] == "Mug" for c in only)


def test_nonormal_layout_refuses_normals(tmp_path):
    root = make_fixture(tmp_path / "ds", "v0", shapes={"train": 2})
    with pytest.raises(DataFormatError, match=r"no surface normals.*shapenet-part-nonormals"):
        ShapeNetPart(root, "train", normals=True)


# -- real files ---------------------------------------------------------------------------------


def test_real_iccv17_samples():
    root = REAL / "shapenet_iccv17"
    if not root.is_dir():
        pytest.skip(f"real ShapeNet ICCV17 samples not found at {root}")
    assert detect_layout(root) == "iccv17"
    ds = ShapeNetPart(root, "train")
    assert len(ds) == 4
    for c in ds:
        pts = Path(c.meta["path"])
        seg = pts.parent / (pts.name.split(".")[0] + ".seg")
        n_lines = sum(1 for ln in pts.read_text().splitlines() if ln.strip())
        local = np.array([int(v) for v in seg.read_text().split()])
        assert len(c) == n_lines == len(local)
        cat = get_category(pts.parent.name)
        np.testing.assert_array_equal(c.attrs["labels"], local - 1 + cat.first)
        assert c.meta["category"] == cat.name
        assert np.abs(c.xyz).max() < 1.5
    assert read_synsetoffset(root / "synsetoffset2category.txt")["Airplane"] == "02691156"


@pytest.mark.parametrize("split,n", [("train", 12137), ("val", 1870), ("test", 2874)])
def test_real_split_lists(split, n):
    path = REAL / "shapenet_part_split" / f"shuffled_{split}_file_list.json"
    if not path.is_file():
        pytest.skip(f"real split lists not found at {path}")
    entries = read_split_list(path)
    assert len(entries) == n == len(json.loads(path.read_text()))
    assert {s for s, _ in entries} == {c.synset for c in CATEGORIES}
    assert len({e for e in entries}) == n


def test_real_split_list_with_missing_files(tmp_path):
    split_dir = REAL / "shapenet_part_split"
    if not split_dir.is_dir():
        pytest.skip(f"real split lists not found at {split_dir}")
    root = make_fixture(tmp_path / "ds", "normal", shapes={"train": 1})
    with pytest.raises(
        DataFormatError, match=r"shuffled_val_file_list.json.*entry 0 'shape_data/\d{8}/\w+' has no file"
    ):
        ShapeNetPart(root, "val", split_dir=split_dir)


# -- bad input ------------------------------------------------------------------------------------


@pytest.fixture
def v0(tmp_path):
    root = make_fixture(tmp_path / "v0", "v0", shapes={"train": 2}, points=20)
    seg = sorted((root / "02691156" / "points_label").glob("*.seg"))[0]
    return root, seg


def test_length_mismatch(v0):
    root, seg = v0
    lines = seg.read_text().splitlines()
    seg.write_text("\n".join(lines[:-2]) + "\n")
    with pytest.raises(DataFormatError, match=rf"{seg.name}.*18 part ids for 20 points"):
        [c for c in ShapeNetPart(root, "train")]


def test_local_part_out_of_range(v0):
    root, seg = v0
    lines = seg.read_text().splitlines()
    lines[4] = "5"  # airplanes have parts 1..4
    seg.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=rf"{seg.name}.*line 5: part 5 is outside Airplane .*1\.\.4"):
        [c for c in ShapeNetPart(root, "train")]


def test_global_part_out_of_range_and_columns(tmp_path):
    root = make_fixture(tmp_path / "n", "normal", shapes={"train": 1}, points=10)
    f = next((root / "02691156").glob("*.txt"))
    lines = f.read_text().splitlines()
    bad = lines.copy()
    bad[2] = " ".join([*bad[2].split()[:6], "12.0"])  # a chair part in an airplane
    f.write_text("\n".join(bad) + "\n")
    with pytest.raises(DataFormatError, match=rf"{f.name}.*line 3: part 12 is outside Airplane .*0\.\.3"):
        ShapeNetPart(root, "train")[0]
    bad = lines.copy()
    bad[6] = " ".join(bad[6].split()[:5])
    f.write_text("\n".join(bad) + "\n")
    with pytest.raises(DataFormatError, match=rf"{f.name}.*line 7: found 5 values, expected 7"):
        ShapeNetPart(root, "train")[0]


def test_unknown_synset_and_missing_entry(tmp_path):
    root = make_fixture(tmp_path / "n", "normal", shapes={"train": 2}, points=10)
    sf = root / "train_test_split" / "shuffled_train_file_list.json"
    entries = json.loads(sf.read_text())
    sf.write_text(json.dumps([*entries, "shape_data/12345678/abc"]))
    with pytest.raises(
        DataFormatError, match=r"shuffled_train_file_list.json: entry 2: .*unknown synset '12345678'"
    ):
        ShapeNetPart(root, "train")
    sf.write_text(json.dumps([*entries, "shape_data/02691156/missing"]))
    with pytest.raises(DataFormatError, match=r"entry 2 'shape_data/02691156/missing' has no file"):
        ShapeNetPart(root, "train")
    iccv = make_fixture(tmp_path / "i", "iccv17", shapes={"train": 1}, points=10)
    (iccv / "train_data" / "99999999").mkdir()
    with pytest.raises(DataFormatError, match=r"99999999.*unknown synset '99999999'"):
        ShapeNetPart(iccv, "train")


def test_seg_with_extra_column(v0):
    root, seg = v0
    lines = seg.read_text().splitlines()
    lines[1] = "1 2"
    seg.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=rf"{seg.name}.*line 2: found 2 values"):
        [c for c in ShapeNetPart(root, "train")]


def test_prepare_summary_and_skip_bad(tmp_path):
    from fastai_sparse_shapenet.tasks import prepare

    root = make_fixture(tmp_path / "n", "normal", shapes={"train": 4, "val": 2, "test": 2}, points=16)
    s = prepare(root, out=tmp_path / "out", jobs=2)
    assert {k: v["shapes"] for k, v in s["splits"].items()} == {"train": 4, "val": 2, "test": 2}
    assert s["splits"]["train"]["points"] == 64 and s["bad"] == []
    assert json.loads((tmp_path / "out" / "shapenet_part_summary.json").read_text())["layout"] == "normal"
    f = sorted((root / "03797390").glob("*.txt"))[0]
    lines = f.read_text().splitlines()
    lines[0] = " ".join([*lines[0].split()[:6], "7.0"])
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"part 7 is outside Mug"):
        prepare(root)
    s = prepare(root, skip_bad=True)
    assert [Path(p).name for p, _ in s["bad"]] == [f.name] and "part 7" in s["bad"][0][1]
