"""The label configuration: the plugin's copy against the official values, a user's file in the
data root, and one-line errors for broken files."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from fastai_sparse import DataFormatError
from fastai_sparse_semantickitti.config import (
    CONFIG_NAME,
    IGNORE_INDEX,
    config_from_dict,
    default_config,
    find_config,
    load_config,
)

#: The 19 benchmark classes in learning-class order, with the raw id each is written as
#: (SemanticKITTI API, config/semantic-kitti.yaml, learning_map_inv).
OFFICIAL = [
    ("car", 10), ("bicycle", 11), ("motorcycle", 15), ("truck", 18), ("other-vehicle", 20),
    ("person", 30), ("bicyclist", 31), ("motorcyclist", 32), ("road", 40), ("parking", 44),
    ("sidewalk", 48), ("other-ground", 49), ("building", 50), ("fence", 51), ("vegetation", 70),
    ("trunk", 71), ("terrain", 72), ("pole", 80), ("traffic-sign", 81),
]  # fmt: skip


def test_plugin_copy_has_the_official_classes():
    cfg = default_config()
    assert cfg.num_classes == 19
    assert list(zip(cfg.class_names, cfg.class_raw_ids)) == OFFICIAL
    assert cfg.splits == {"train": [0, 1, 2, 3, 4, 5, 6, 7, 9, 10], "valid": [8], "test": list(range(11, 22))}
    assert len(cfg.labels) == 34 and set(cfg.learning_map) == set(cfg.labels)
    # colours are stored BGR; the class colours are RGB: car is BGR (245, 150, 100)
    assert cfg.color_map[10] == (245, 150, 100) and tuple(cfg.class_colors[0]) == (100, 150, 245)
    assert cfg.class_colors.shape == (19, 3) and cfg.class_colors.dtype == np.uint8


def test_raw_ids_map_to_classes_as_the_learning_map_says():
    cfg = default_config()
    raw = np.array([10, 252, 60, 40, 13, 16, 257, 0, 1, 52, 99, 81, 259, 254], np.uint16)
    want = ["car", "car", "road", "road", "other-vehicle", "other-vehicle", "other-vehicle", None, None,
            None, None, "traffic-sign", "other-vehicle", "person"]  # fmt: skip
    got = cfg.to_classes(raw)
    assert got.dtype == np.int64
    assert [cfg.class_names[c] if c >= 0 else None for c in got] == want
    assert (got[[7, 8, 9, 10]] == IGNORE_INDEX).all()
    # every class index back to the raw id of learning_map_inv
    np.testing.assert_array_equal(cfg.to_raw(np.arange(19)), [r for _, r in OFFICIAL])
    assert cfg.to_raw(np.arange(19)).dtype == np.uint32
    with pytest.raises(DataFormatError, match=r"class indices span 0..19"):
        cfg.to_raw(np.array([0, 19]))


def test_unknown_raw_id_names_the_file_and_the_ids():
    with pytest.raises(DataFormatError) as e:
        default_config().to_classes(np.array([10, 12, 12, 300], np.uint16), path="seq/labels/000001.label")
    msg = str(e.value)
    assert (
        "seq/labels/000001.label" in msg
        and "[12, 300]" in msg
        and "3 points" in msg
        and "learning_map" in msg
    )
    assert "\n" not in msg


def test_root_config_is_used_when_present(tmp_path):
    assert find_config(tmp_path) is default_config()
    data = yaml.safe_load(default_config().path.read_text())
    data["learning_map"][52] = 13  # a user maps other-structure to building
    (tmp_path / CONFIG_NAME).write_text(yaml.safe_dump(data))
    cfg = find_config(tmp_path)
    assert cfg.path == tmp_path / CONFIG_NAME and cfg.class_names == default_config().class_names
    assert cfg.to_classes(np.array([52]))[0] == cfg.class_names.index("building")
    assert cfg.fingerprint != default_config().fingerprint


def _official():
    return yaml.safe_load(default_config().path.read_text())


def _drop(key):
    def damage(d):
        del d[key]

    damage.__name__ = f"no_{key}"
    return damage


def _class_out_of_range(d):
    d["learning_map"][10] = 20


def _raw_id_too_big(d):
    d["learning_map"][70000] = 1
    d["labels"][70000] = "huge"


def _inv_gap(d):
    del d["learning_map_inv"][7]


def _unnamed(d):
    d["learning_map"][123] = 1


def _bad_colour(d):
    d["color_map"][10] = [245, 150]


def _not_a_mapping(d):
    d["learning_map"] = [1, 2, 3]


def _class_without_raw_id(d):
    d["learning_map"][31] = 0
    d["learning_map"][253] = 0


CASES = [
    (_drop("learning_map"), "missing key(s) ['learning_map']"),
    (_drop("labels"), "missing key(s) ['labels']"),
    (_drop("learning_map_inv"), "missing key(s) ['learning_map_inv']"),
    (_class_out_of_range, "maps raw id 10 to class 20, out of range"),
    (_raw_id_too_big, "raw ids [70000], out of range"),
    (_inv_gap, "expected every class 0..K exactly once"),
    (_unnamed, "raw ids [123] that labels does not name"),
    (_bad_colour, "color_map[10] is [245, 150]"),
    (_not_a_mapping, "learning_map is list"),
    (_class_without_raw_id, "learning classes [7] receive no raw id"),
]


@pytest.mark.parametrize(("damage", "what"), CASES, ids=lambda c: getattr(c, "__name__", "").strip("_"))
def test_broken_config_is_one_line_naming_file_and_problem(tmp_path, damage, what):
    data = _official()
    damage(data)
    path = tmp_path / CONFIG_NAME
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(DataFormatError) as e:
        load_config(path)
    msg = str(e.value)
    assert str(path) in msg and what in msg, msg
    assert "\n" not in msg


def test_not_yaml_and_not_a_mapping(tmp_path):
    p = tmp_path / CONFIG_NAME
    p.write_text("labels: [unclosed\n")
    with pytest.raises(DataFormatError, match="not valid YAML"):
        load_config(p)
    p.write_text("- just\n- a list\n")
    with pytest.raises(DataFormatError, match="expected a mapping"):
        load_config(p)
    with pytest.raises(DataFormatError, match="label configuration not found"):
        load_config(tmp_path / "nope.yaml")
    # a file in the root is validated when the dataset looks for it
    with pytest.raises(DataFormatError, match="expected a mapping"):
        find_config(tmp_path)


def test_a_smaller_configuration_builds(tmp_path):
    cfg = config_from_dict(
        {
            "labels": {0: "unlabeled", 10: "car", 40: "road", 252: "moving-car"},
            "learning_map": {0: 0, 10: 1, 252: 1, 40: 2},
            "learning_map_inv": {0: 0, 1: 10, 2: 40},
        }
    )
    assert cfg.class_names == ["car", "road"] and cfg.num_classes == 2
    assert tuple(cfg.class_colors[0]) == (128, 128, 128)  # no colour map: grey
    assert cfg.to_classes(np.array([252, 40, 0])).tolist() == [0, 1, IGNORE_INDEX]
