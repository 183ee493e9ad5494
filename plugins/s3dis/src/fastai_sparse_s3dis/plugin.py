"""fastai-sparse plugin registration for S3DIS (all registration lives here)."""

from __future__ import annotations

from fastai_sparse import hookimpl


@hookimpl
def register_datasets(register):
    from fastai_sparse.registry import Factory

    register(
        Factory(
            "s3dis",
            "fastai_sparse_s3dis.dataset:S3DISRooms",
            description="S3DIS v1.2 Aligned rooms: points, colours, 13-class labels, objects",
        )
    )


@hookimpl
def register_tasks(register):
    from .tasks import s3dis_tasks

    for task in s3dis_tasks():
        register(task)
