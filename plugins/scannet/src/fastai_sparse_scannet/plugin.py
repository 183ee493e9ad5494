"""fastai-sparse plugin registration for ScanNet v2 (all registration lives here)."""

from __future__ import annotations

from fastai_sparse import hookimpl


@hookimpl
def register_datasets(register):
    from fastai_sparse.registry import Factory

    register(
        Factory(
            "scannet-v2",
            "fastai_sparse_scannet.dataset:ScanNetScenes",
            description="ScanNet v2 scenes: mesh vertices, colours, 20-class labels, instances",
        )
    )


@hookimpl
def register_tasks(register):
    from .tasks import detection_task, scannet_tasks

    for task in scannet_tasks():
        register(task)
    register(detection_task(head="det-center"))
