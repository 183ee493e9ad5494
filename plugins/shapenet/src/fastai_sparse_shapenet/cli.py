"""``fastai-sparse shapenet ...``: ShapeNet part tools (categories, predict)."""

from __future__ import annotations

from pathlib import Path

import click

from fastai_sparse.clitypes import InputFile, model_option, overwrite_option, threads_option


@click.group()
def shapenet():
    """ShapeNet part segmentation tools."""


@shapenet.command("categories")
def categories():
    """List the 16 categories with their synsets and global part ids."""
    from .categories import CATEGORIES

    for c in CATEGORIES:
        parts = ", ".join(f"{i} {p}" for i, p in zip(c.part_ids, c.parts))
        click.echo(f"{c.name:<11} {c.synset}  {parts}")


def _check_category(ctx, param, value):
    if value is None:
        return None
    from .categories import get_category

    try:
        return get_category(value).synset
    except KeyError as e:
        raise click.BadParameter(e.args[0]) from None


def load_model(task_name: str, weights: str):
    """The task's model with saved weights (a model folder, a weights file or a Hub id; read
    without running code)."""
    from fastai_sparse.hub import pretrained_path
    from fastai_sparse.learner import CheckpointError, read_weights
    from fastai_sparse.registry import get_task

    task = get_task(task_name)
    ckpt = read_weights(pretrained_path(weights))
    if ckpt.get("task") not in (None, task_name):
        raise CheckpointError(f"{weights}: weights were trained for task {ckpt['task']!r}, not {task_name!r}")
    model = task.build_model(task.make_voxelizer().num_features)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(
            f"{weights}: the weights do not fit task {task_name!r}'s model ({str(e).splitlines()[0]}); "
            "pass the --task they were trained for"
        ) from e
    return task, model


@shapenet.command("predict")
@click.argument("inputs", nargs=-1, required=True, type=InputFile(), metavar="INPUTS...")
@model_option("weights")
@click.option(
    "--task",
    "task_name",
    default="shapenet-part",
    show_default=True,
    metavar="TASK",
    help="The task the weights were trained for.",
)
@click.option(
    "--category",
    default=None,
    callback=_check_category,
    metavar="NAME",
    help="Category name or synset [default: the input's <synset>/ folder].",
)
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="Output file (one input) or folder (several inputs), one part id per line.",
)
@click.option(
    "--tta", type=click.IntRange(min=1), default=1, show_default=True, metavar="N", help="Voting passes."
)
@click.option(
    "--local/--global",
    "local",
    default=None,
    help="Write 1-based ids within the category (the .seg convention) or global ids 0..49 "
    "[default: local for a .seg output].",
)
@overwrite_option()
@threads_option()
def predict(inputs, weights, task_name, category, out, tta, local, overwrite):
    """Predict the part of every point of INPUTS (.txt, .pts, .pts.train, .ply, ...).

    Outputs are named INPUT.seg in a folder; they never replace an input or the weights file,
    and an existing output is replaced only with --overwrite.
    """
    from fastai_sparse.files import atomic_path, plan_outputs
    from fastai_sparse.hub import model_files

    from .predict import predict_clouds, read_input, write_parts

    dsts = plan_outputs(inputs, out, suffix=".seg", overwrite=overwrite, protected=model_files(weights))
    task, model = load_model(task_name, weights)
    for src, dst in zip(inputs, dsts):
        cloud = read_input(src, category)
        labels = predict_clouds(model, task, [cloud], tta=tta)[0]
        with atomic_path(dst, overwrite=overwrite) as tmp:
            write_parts(tmp, labels, cloud.meta["synset"], dst.suffix == ".seg" if local is None else local)
        click.echo(f"{src} -> {dst}")
