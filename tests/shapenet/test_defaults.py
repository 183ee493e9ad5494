"""The ShapeNet part tasks' measured defaults (benchmarks/bench_real_shapes.py): a UNet backbone
without its final BN+ReLU, one-cycle to 1e-2; other backbones get no UNet-only option."""

from __future__ import annotations

import pytest

pytest.importorskip("fastai_sparse_shapenet", reason="fastai-sparse-shapenet is not installed")


def test_unet_is_built_without_the_final_bn_relu():
    from fastai_sparse_shapenet.tasks import make_task

    task = make_task("shapenet-part-nonormals", normals=False)
    assert task.model_kwargs == {"output_bn_relu": False}
    assert (task.defaults["lr"], task.defaults["schedule"]) == (1e-2, "one-cycle")
    model = task.build_model(1)
    assert not model.backbone.output_bn_relu
    assert make_task(model="unet-small").model_kwargs == {"output_bn_relu": False}


def test_other_backbones_get_no_unet_option():
    from fastai_sparse_shapenet.tasks import make_task

    task = make_task(model="resnet-sparse-small")
    assert task.model_kwargs == {}
