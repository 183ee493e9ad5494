"""The model card (``README.md``) written into every model folder.

A Markdown file with the YAML front matter the Hugging Face Hub reads (library, tags), then
what a reader needs to trust and use the model: the task and its classes, the data it was
trained on, the final metrics, how to load it, and the whole configuration with the versions
it was trained with. Everything comes from the model document (:func:`fastai_sparse.weights.model_document`);
nothing is invented: a field that was not recorded says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["model_card"]


def _cell(v: Any) -> str:
    text = v if isinstance(v, str) else json.dumps(v, default=str)
    return text.replace("|", "\\|").replace("\n", " ")


def _number(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return _cell(v)


def _metrics_rows(metrics: Mapping) -> list[str]:
    rows = []
    for name, value in metrics.items():
        if name == "epoch":
            continue
        if isinstance(value, Mapping):  # a per-class table
            inner = ", ".join(f"{_cell(k)} {_number(v)}" for k, v in value.items())
            rows.append(f"| {_cell(name)} | {inner} |")
        else:
            rows.append(f"| {_cell(name)} | {_number(value)} |")
    return rows


def model_card(doc: Mapping) -> str:
    """The ``README.md`` of a model folder for the model document ``doc``."""
    cfg = doc.get("config") or {}
    task = doc.get("task") or "unknown task"
    classes = doc.get("class_names")
    tags = ["fastai-sparse", "3d", "point-cloud", "sparse-convolution"]
    if doc.get("task"):
        tags.append(str(doc["task"]))
    lines = ["---", "library_name: fastai-sparse", "tags:"]
    lines += [f"- {json.dumps(t)}" for t in tags]
    lines += ["---", "", f"# {task}", ""]
    lines += [
        f"A sparse convolutional network trained with [fastai-sparse](https://github.com/fastai-sparse/fastai-sparse) "
        f"for the task `{task}`.",
        "",
        "## Task",
        "",
        "| | |",
        "|---|---|",
        f"| task | `{_cell(task)}` |",
    ]
    target = cfg.get("target") or {}
    if target:
        lines.append(
            f"| target | `{_cell(target.get('type', '?'))}` (one value per {target.get('per', '?')}) |"
        )
    if classes is not None:
        lines.append(f"| classes ({len(classes)}) | {_cell(', '.join(map(str, classes)))} |")
    if cfg:
        kw = cfg.get("model_kwargs") or {}
        lines.append(f"| model | `{_cell(cfg.get('model'))}` {_cell(kw) if kw else ''} |")
        lines.append(f"| head | `{_cell(cfg.get('head'))}` {_cell(cfg.get('head_kwargs') or '')} |")
        if cfg.get("input_stage"):
            lines.append(f"| input stage | `{_cell(cfg['input_stage'])}` |")
        vox = cfg.get("voxelizer") or {}
        lines.append(
            f"| input | features {_cell(vox.get('features'))}, {_cell(vox.get('scale'))} voxels per unit "
            f"({doc.get('in_channels')} channels) |"
        )
    lines += ["", "## Data", ""]
    ds = cfg.get("dataset")
    if ds:
        lines.append(
            f"Dataset `{_cell(ds.get('name'))}`, splits {_cell(ds.get('splits'))}"
            + (f", read from `{_cell(ds['root'])}`." if ds.get("root") else ".")
        )
        opts = ds.get("options") or {}
        if opts:
            lines += ["", "Options: " + ", ".join(f"`{k}={_cell(v)}`" for k, v in opts.items()) + "."]
        if doc.get("config_source") == "task":
            lines += [
                "",
                "Exported from Python: the epochs, learning rate and schedule below are the task's "
                "defaults, not necessarily those used (`fastai-sparse train` records the run itself).",
            ]
        lines += [
            "",
            f"Training: {cfg.get('epochs')} epochs, batch size {cfg.get('bs')}, learning rate {cfg.get('lr')}, "
            f"optimizer `{_cell((cfg.get('optimizer') or {}).get('name'))}`, schedule "
            f"`{_cell((cfg.get('schedule') or {}).get('name'))}`, seed {cfg.get('seed')}.",
        ]
    else:
        lines.append("Not recorded: this model was saved without a configuration.")
    lines += ["", "## Metrics", ""]
    metrics = doc.get("metrics") or {}
    if metrics:
        lines += ["Validation set, after the last epoch:", "", "| metric | value |", "|---|---|"]
        lines += _metrics_rows(metrics)
    else:
        lines.append("Not recorded when this model was saved.")
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from fastai_sparse import from_pretrained",
        "",
        'predictor = from_pretrained("path/to/this/folder")   # or "owner/name" on the Hugging Face Hub',
        'result = predictor.predict("scan.ply")                # one label per point',
        "```",
        "",
        "```",
        f"fastai-sparse predict {task} --model path/to/this/folder scan.ply",
        "```",
        "",
        "Loading reads `model.safetensors` and `config.json` and rebuilds the task through the "
        "fastai-sparse registry: no code is loaded from these files. The plugin that provides "
        f"`{task}` must be installed.",
        "",
        "## Configuration",
        "",
        "Reproduce the run with `fastai-sparse train --config config.json` (the configuration is "
        "the `config` entry of `config.json`):",
        "",
        "```json",
        json.dumps(cfg, indent=2, default=str) if cfg else "null",
        "```",
        "",
    ]
    return "\n".join(lines)
