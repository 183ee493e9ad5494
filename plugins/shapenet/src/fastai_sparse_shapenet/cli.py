"""``fastai-sparse shapenet ...``: ShapeNet part tools (categories, predict)."""

from __future__ import annotations

import click

from fastai_sparse.threads import threads_option


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


def load_model(task_name: str, weights: str):
    """The task's model with the weights written by ``learn.save_weights`` (weights_only load)."""
    from fastai_sparse.learner import CheckpointError, read_weights
    from fastai_sparse.registry import get_task

    task = get_task(task_name)
    ckpt = read_weights(weights)
    if ckpt.get("task") not in (None, task_name):
        raise CheckpointError(f"{weights}: weights were trained for task {ckpt['task']!r}, not {task_name!r}")
    model = task.build_model(task.make_voxelizer().num_features)
    model.load_state_dict(ckpt["state_dict"])
    return task, model


@shapenet.command("predict")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--model", "weights", required=True, type=click.Path(exists=True), help="weights from save_weights"
)
@click.option("--task", "task_name", default="shapenet-part", show_default=True)
@click.option(
    "--category", default=None, help="category name or synset (default: the input's <synset>/ folder)"
)
@click.option("-o", "--out", required=True, type=click.Path(), help="output file (one input) or folder")
@click.option("--tta", default=1, show_default=True, help="voting passes")
@click.option(
    "--local/--global", "local", default=None, help="1-based ids within the category (.seg) or 0..49"
)
@threads_option()
def predict(inputs, weights, task_name, category, out, tta, local):
    """Predict the part of every point of INPUTS (.txt, .pts, .pts.train, .ply, ...)."""
    from pathlib import Path

    from .predict import predict_clouds, read_input, write_parts

    task, model = load_model(task_name, weights)
    out = Path(out)
    for src in inputs:
        cloud = read_input(src, category)
        labels = predict_clouds(model, task, [cloud], tta=tta)[0]
        dst = out / (Path(src).name.split(".")[0] + ".seg") if (len(inputs) > 1 or out.is_dir()) else out
        write_parts(dst, labels, cloud.meta["synset"], local)
        click.echo(f"{src} -> {dst}")
