"""``fastai-sparse semantickitti ...``: classes, predict whole sequences, check a submission.

Errors raised on purpose reach the user as one line through core's command group.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from fastai_sparse.clitypes import InputDir, InputFile, model_option, overwrite_option, threads_option


def _sequences(value: str | None) -> list[str] | None:
    """``"11-21"``, ``"11,13"`` or ``"8"`` -> sequence names."""
    from .reader import parse_sequences

    if not value:
        return None
    try:
        return parse_sequences(value)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--sequences") from None


@click.group()
def semantickitti():
    """SemanticKITTI tools: label classes, predicting sequences, checking a submission."""


@semantickitti.command("classes")
@click.option("--root", type=click.Path(path_type=Path, file_okay=False), default=None, metavar="DIR",
              help="Data root.")  # fmt: skip
@click.option("--config", type=InputFile("label configuration"), default=None, metavar="FILE",
              help="A semantic-kitti.yaml (default: ROOT's, else the plugin's copy).")  # fmt: skip
def classes(root, config):
    """List the learning classes: index, name, raw id written, raw ids mapped to it."""
    from .config import find_config

    cfg = find_config(root, config)
    click.echo(f"label configuration: {cfg.path}")
    for i, (name, raw) in enumerate(zip(cfg.class_names, cfg.class_raw_ids)):
        mapped = sorted(r for r, c in cfg.learning_map.items() if c == i + 1)
        click.echo(f"{i:3d}  {name:<16} writes {raw:<4} reads {mapped}")
    ignored = sorted(r for r, c in cfg.learning_map.items() if c == 0)
    click.echo(f"  -  (ignored)        reads {ignored}")


@semantickitti.command("predict")
@model_option()
@click.option("--root", required=True, type=InputDir("data root"), metavar="DIR",
              help="Data root (holding sequences/).")  # fmt: skip
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="Submission folder: gets sequences/NN/predictions/*.label.")  # fmt: skip
@click.option(
    "--sequences",
    default="11-21",
    show_default=True,
    metavar="SEQS",
    help="Sequences to predict (e.g. 08 or 11-21).",
)
@click.option("--task", "task_name", default="semantickitti-seg", show_default=True, metavar="TASK",
              help="The task the weights were trained for.")  # fmt: skip
@click.option("--tta", type=click.IntRange(min=1), default=None, metavar="N",
              help="Augmented views to average [default: the task's].")  # fmt: skip
@click.option("--device", default=None, metavar="DEVICE",
              help="Device: cpu, cuda, cuda:1 ... [default: cuda when available].")  # fmt: skip
@overwrite_option(help="Replace prediction files that exist already (never a scan).")
@click.option("--skip-existing", is_flag=True, help="Keep complete prediction files (resume a stopped run).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@threads_option()
def predict(model_path, root, out, sequences, task_name, tta, device, overwrite, skip_existing, quiet):
    """Predict every scan of SEQUENCES in the submission layout, then check the result."""
    from fastai_sparse import get_task

    from .submission import describe_check, predict_sequences

    if overwrite and skip_existing:
        raise click.UsageError("--overwrite and --skip-existing exclude each other")
    summary = predict_sequences(
        get_task(task_name),
        model_path,
        root,
        out,
        _sequences(sequences),
        tta=tta,
        device=device,
        overwrite=overwrite,
        skip_existing=skip_existing,
        quiet=quiet,
    )
    click.echo(f"wrote {summary['written']} prediction files ({summary['skipped']} kept) to {summary['out']}")
    problems = describe_check(summary["check"])
    for line in problems:
        click.echo(f"check: {line}", err=True)
    if problems:
        raise SystemExit(1)
    click.echo(f"check: {summary['check']['scans']} scans complete and well formed")


@semantickitti.command("check")
@click.argument("predictions", type=InputDir("predictions folder"), metavar="PREDICTIONS")
@click.option("--root", required=True, type=InputDir("data root"), metavar="DIR",
              help="Data root whose sequences/NN/velodyne scans were predicted.")  # fmt: skip
@click.option(
    "--sequences",
    default="11-21",
    show_default=True,
    metavar="SEQS",
    help="Sequences to check (e.g. 08 or 11-21).",
)
@click.option("--config", type=InputFile("label configuration"), default=None, metavar="FILE",
              help="A semantic-kitti.yaml saying which raw ids are valid (default: ROOT's, else the plugin's).")  # fmt: skip
@click.option("--sizes-only", is_flag=True, help="Check file sizes only (do not read the ids).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
def check(predictions, root, sequences, config, sizes_only, as_json):
    """Check that PREDICTIONS (the folder holding sequences/) is complete and well formed:
    one file per scan, one uint32 per point, valid raw ids, nothing else."""
    from .submission import check_predictions, describe_check

    report = check_predictions(
        predictions, root, _sequences(sequences), config=config, read_ids=not sizes_only
    )
    if as_json:
        click.echo(json.dumps(report, indent=2))
    problems = describe_check(report)
    for line in problems:
        click.echo(f"error: {line}", err=True)
    if problems:
        raise SystemExit(1)
    if not as_json:
        click.echo(
            f"ok: {report['scans']} scans of sequences {', '.join(report['sequences'])} have complete, "
            "well-formed predictions; zip the sequences/ folder to submit"
        )
