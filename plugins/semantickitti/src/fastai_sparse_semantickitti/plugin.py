"""fastai-sparse plugin registration for SemanticKITTI (all registration lives here).

Factories are ``"module:attr"`` strings and the task is built inside the hook, so importing
this module is cheap.
"""

from __future__ import annotations

from fastai_sparse import hookimpl


@hookimpl
def register_datasets(register):
    from fastai_sparse import Factory

    register(
        Factory(
            "semantickitti",
            "fastai_sparse_semantickitti.dataset:SemanticKittiScans",
            description="SemanticKITTI LiDAR scans (sequences/NN/velodyne + labels), 19 classes",
        )
    )


@hookimpl
def register_tasks(register):
    from .tasks import seg_task

    register(seg_task())


@hookimpl
def register_commands(cli):
    from .cli import semantickitti

    cli.add_command(semantickitti)
