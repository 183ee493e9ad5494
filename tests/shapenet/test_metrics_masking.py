"""ShapeNet metrics vs a hand-worked example; logit masking in head, loss and prediction."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("fastai_sparse_shapenet", reason="fastai-sparse-shapenet is not installed")
torch = pytest.importorskip("torch")

from fastai_sparse_shapenet.categories import CATEGORIES, category_mask  # noqa: E402
from fastai_sparse_shapenet.metrics import (  # noqa: E402
    ClassMIoU,
    InstanceMIoU,
    format_category_table,
    shape_iou,
    shapenet_scores,
)
from fastai_sparse_shapenet.parts import (  # noqa: E402
    NEG,
    MaskedPartHead,
    MaskedPartLoss,
    ShapeNetPartTarget,
    mask_logits,
)

# Hand-worked example. Airplane (parts 0..3), truth [0,0,1,1,2,2], prediction [0,1,1,1,2,0]:
#   part 0: I = 1 (point 0), U = {0, 1, 5} = 3  -> 1/3
#   part 1: I = 2 (points 2, 3), U = {1, 2, 3} -> 2/3
#   part 2: I = 1 (point 4), U = {4, 5}        -> 1/2
#   part 3: absent from both                    -> 1
#   shape score = (1/3 + 2/3 + 1/2 + 1) / 4 = 0.625
# A Bag predicted perfectly (1.0) and a second Airplane predicted perfectly (1.0):
#   instance mIoU = (0.625 + 1 + 1) / 3 = 0.875
#   class mIoU = mean(Airplane (0.625 + 1) / 2 = 0.8125, Bag 1.0) = 0.90625
A_TRUE, A_PRED = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 1, 2, 0])
B_TRUE = np.array([4, 4, 5])
A2 = np.array([3, 3, 0, 1])


def test_shape_iou_hand_worked():
    assert shape_iou(A_PRED, A_TRUE, "Airplane") == pytest.approx(0.625)
    assert shape_iou(B_TRUE, B_TRUE, "Bag") == 1.0
    # a shape with one part predicted as another of its parts: 0 for both, other parts absent -> 1
    assert shape_iou(np.array([37, 37]), np.array([36, 36]), "Mug") == 0.0
    assert shape_iou(np.array([0, 1]), np.array([0, 1]), "Airplane") == 1.0  # parts 2, 3 absent count 1
    # ignored points are left out
    assert shape_iou(np.array([0, 3]), np.array([0, -100]), "Airplane") == 1.0


def test_scores_hand_worked():
    s = shapenet_scores([A_PRED, B_TRUE, A2], [A_TRUE, B_TRUE, A2], ["Airplane", "02773838", 0])
    assert s["instance_miou"] == pytest.approx(0.875)
    assert s["class_miou"] == pytest.approx(0.90625)
    assert s["per_category"] == {"Airplane": (2, pytest.approx(0.8125)), "Bag": (1, 1.0)}
    table = format_category_table(s)
    assert "Airplane" in table and "0.8125" in table and "0.9062" in table


def _logits_for(labels: np.ndarray, wrong_part: int = 49) -> torch.Tensor:
    """Logits whose unmasked argmax is ``wrong_part`` (a Table part) everywhere, and whose
    argmax within the category is ``labels``."""
    z = torch.zeros(len(labels), 50)
    z[torch.arange(len(labels)), torch.as_tensor(labels)] = 5.0
    z[:, wrong_part] = 10.0
    return z


def test_metric_objects_accumulate_over_batches():
    preds = [A_PRED, B_TRUE, A2]
    trues = [A_TRUE, B_TRUE, A2]
    inst, cls = InstanceMIoU(), ClassMIoU()
    # batch 1: the first two shapes (category in the batch); batch 2: the third (category from labels)
    b1 = {"point_offsets": torch.tensor([0, 6, 9]), "category": torch.tensor([0, 1])}
    b2 = {"point_offsets": torch.tensor([0, 4])}
    for m in (inst, cls):
        m.reset()
        for x, p, t in [(b1, preds[:2], trues[:2]), (b2, preds[2:], trues[2:])]:
            learn = SimpleNamespace(
                pred=_logits_for(np.concatenate(p)), yb=(torch.as_tensor(np.concatenate(t)),), xb=(x,)
            )
            m.accumulate(learn)
    assert inst.value == pytest.approx(0.875) and inst.name == "shapenet_instance_miou"
    assert cls.value == pytest.approx(0.90625) and cls.name == "shapenet_class_miou"
    assert "Bag" in inst.table()
    inst.reset()
    assert np.isnan(inst.value)


def test_mask_logits_and_head_never_predict_outside_category():
    from fastai_sparse.engine import SparseTensor

    g = torch.Generator().manual_seed(0)
    cats = torch.tensor([0, 4, 10, 15])
    coords = torch.cat([torch.full((30, 1), b) for b in range(4)] + [], 0)
    coords = torch.cat([coords, torch.randint(0, 20, (120, 3), generator=g)], 1).int()
    feats = torch.randn(120, 8, generator=g)
    head = MaskedPartHead(in_channels=8)
    target = ShapeNetPartTarget()
    clouds = [SimpleNamespace(meta={"category_index": int(c)}) for c in cats]
    x = target.collate_inputs(clouds)
    assert x["category"].tolist() == cats.tolist() and x["part_mask"].shape == (4, 50)
    out = head(SparseTensor(coords, feats), x)
    allowed = torch.from_numpy(category_mask())[cats.repeat_interleave(30)]
    assert (allowed.gather(1, out.argmax(1, keepdim=True))).all()
    assert (out[~allowed] == NEG).all() and torch.isfinite(out).all()
    unmasked = head(SparseTensor(coords, feats))  # a core that does not pass the batch
    masked = mask_logits(unmasked, cats.repeat_interleave(30))
    # torch.allclose, not torch.testing.assert_close: the latter imports torch.distributed.tensor
    # on first use (seconds), which made this fast test the slowest of the file
    assert torch.allclose(masked, out), float((masked - out).abs().max())


def test_masked_loss_equals_cross_entropy_over_category_parts():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(7, 50, generator=g)
    y = torch.tensor([0, 3, 4, 5, 47, 49, -100])
    loss = MaskedPartLoss()(logits, y)
    ref = []
    for i in range(6):  # by hand: softmax over the category's parts only
        c = next(c for c in CATEGORIES if y[i].item() in c.part_ids)
        sub = logits[i, c.part_ids]
        ref.append(-(sub[y[i] - c.first] - torch.logsumexp(sub, 0)))
    assert torch.allclose(loss, torch.stack(ref).mean())


def test_target_check_rejects_parts_of_other_categories():
    from fastai_sparse.errors import DataFormatError
    from fastai_sparse.geometry import PointCloud

    t = ShapeNetPartTarget()
    ok = PointCloud(np.zeros((3, 3)), {"labels": np.array([36, 37, 36])}, meta={"category": "Mug"})
    t.check(ok)
    bad = PointCloud(
        np.zeros((3, 3)), {"labels": np.array([36, 12, 36])}, meta={"category": "Mug", "path": "m.txt"}
    )
    with pytest.raises(DataFormatError, match=r"m.txt.*point 1 has part 12 \(Chair/back\), outside Mug"):
        t.check(bad)
    in_folder = PointCloud(
        np.zeros((1, 3)), {"labels": np.array([36])}, meta={"path": "d/03797390/points/a.pts"}
    )
    assert t.category_index(in_folder) == 11
    with pytest.raises(DataFormatError, match="category is unknown"):
        t.check(PointCloud(np.zeros((1, 3)), {"labels": np.array([0])}))


def test_check_plugin():
    from fastai_sparse.testing import check_plugin

    summary = check_plugin("shapenet", tasks=["shapenet-part"])
    assert summary["registered"]["task"] == [
        "shapenet-part",
        "shapenet-part-nonormals",
        "shapenet-part-synthetic",
    ]
    assert summary["registered"]["head"] == ["shapenet-part-masked"]
    assert summary["tasks"]["shapenet-part"]["valid"]["outputs"][1] == 50


@pytest.mark.slow
def test_check_plugin_every_task():
    from fastai_sparse.testing import check_plugin

    summary = check_plugin("shapenet")
    assert set(summary["tasks"]) == {"shapenet-part", "shapenet-part-nonormals", "shapenet-part-synthetic"}


def test_model_of_the_task_masks_through_the_batch(tmp_path):
    from fastai_sparse.batch import collate
    from fastai_sparse.registry import get_task
    from fastai_sparse_shapenet.fixtures import make_fixture

    task = get_task("shapenet-part")
    root = make_fixture(tmp_path / "d", "normal", shapes={"train": 3, "val": 1}, points=64)
    ds = task.datasets(root)["train"]
    pipe = task.pipeline(train=True)
    samples = [pipe(ds[i], np.random.default_rng(i)) for i in range(3)]
    x, y = collate(samples, task.target)
    assert x["category"].tolist() == [s.cloud.meta["category_index"] for s in samples]
    model = task.build_model(int(x["feats"].shape[1]))
    out = model(x)
    allowed = torch.from_numpy(category_mask())[torch.repeat_interleave(x["category"], 64)]
    assert (out[~allowed] == NEG).all(), "SparseModel did not pass the batch to the needs_batch head"
    assert allowed.gather(1, out.argmax(1, keepdim=True)).all()
    loss = task.loss_func()(out, y)
    ref = torch.nn.functional.cross_entropy(out, y)  # masked logits: the masked loss is plain CE
    assert torch.allclose(loss, ref)
