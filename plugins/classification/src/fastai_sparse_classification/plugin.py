"""fastai-sparse plugin hooks of fastai-sparse-classification: every registration is here.

Factories are named by ``"module:attr"`` strings and tasks are built inside the hook, so
importing this module imports neither torch nor fastai.
"""

from __future__ import annotations

from fastai_sparse import hookimpl
from fastai_sparse.registry import Factory

_PKG = "fastai_sparse_classification"


@hookimpl
def register_datasets(register):
    register(
        Factory(
            "modelnet40",
            f"{_PKG}.readers:ModelNet",
            description="ModelNet40 (OFF meshes or normal_resampled)",
            variant="modelnet40",
        )
    )
    register(
        Factory(
            "modelnet10",
            f"{_PKG}.readers:ModelNet",
            description="ModelNet10 (OFF meshes or normal_resampled)",
            variant="modelnet10",
        )
    )
    register(
        Factory(
            "mesh-folder", f"{_PKG}.readers:MeshFolder", description="one sub-folder per class of shape files"
        )
    )
    register(
        Factory(
            "synthetic-up-axis",
            f"{_PKG}.regression:UpAxisShapes",
            description="tilted shapes, up vector target",
        )
    )


@hookimpl
def register_metrics(register):
    register(
        Factory(
            "angle-error", f"{_PKG}.metrics:angle_error", description="mean angle (degrees) between 3-vectors"
        )
    )


@hookimpl
def register_tasks(register):
    from .tasks import plugin_tasks

    for task in plugin_tasks():
        register(task)


@hookimpl
def register_commands(cli):
    import click

    from fastai_sparse.clitypes import InputFile, model_option, threads_option

    @cli.command("classify")
    @click.argument("task_name", metavar="TASK")
    @click.argument("inputs", nargs=-1, required=True, type=InputFile(), metavar="INPUTS...")
    @model_option()
    @click.option(
        "--tta",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help="Rotation views to vote over [default: the task's].",
    )
    @click.option(
        "-k",
        "--top",
        "k",
        type=click.IntRange(min=1),
        default=5,
        show_default=True,
        metavar="N",
        help="Classes to print per input.",
    )
    @click.option(
        "--points",
        type=click.IntRange(min=1),
        default=2048,
        show_default=True,
        metavar="N",
        help="Surface samples per mesh.",
    )
    @threads_option()
    def classify(task_name, inputs, model_path, tta, k, points):
        """Print the top-k classes of the shape files INPUTS (meshes are sampled on their surface)."""
        from .predict import classify_files

        for src, top in classify_files(task_name, model_path, inputs, tta=tta, k=k, points=points):
            click.echo(src)
            for name, p in top:
                click.echo(f"  {name:<20s} {p:.3f}")
