"""The ``fastai-sparse`` command.

Only click and the plugin machinery are imported at start-up, so ``--help`` is fast; torch
and fastai load inside the commands that need them. Plugins add subcommands through the
``register_commands`` hook.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _registry():
    from .registry import default_registry

    return default_registry()


def _echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


class _Group(click.Group):
    """Adds the plugins' subcommands the first time the command list is needed."""

    _plugins_added = False

    def _add_plugin_commands(self) -> None:
        if not self._plugins_added:
            self._plugins_added = True
            from . import plugins

            plugins.install_commands(self, plugins.discovered())

    def list_commands(self, ctx):
        self._add_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx, name):
        cmd = super().get_command(ctx, name)
        if cmd is None:
            self._add_plugin_commands()
            cmd = super().get_command(ctx, name)
        return cmd


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="fastai-sparse")
def main():
    """fastai-sparse: train sparse convolutional networks on 3D data with fastai.

    \b
    Start with:
      fastai-sparse demo      train on embedded synthetic rooms (CPU, minutes)
      fastai-sparse tasks     every task, from every installed plugin
    """


# -- registry listings -----------------------------------------------------------------------
@main.command()
@click.argument("pattern", default="*")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def tasks(pattern: str, as_json: bool):
    """List registered tasks (PATTERN is a wildcard, e.g. 'scannet*')."""
    reg = _registry()
    rows = []
    for name in reg.list("task", pattern):
        task = reg.get("task", name)
        rows.append(
            {
                "name": name,
                "plugin": reg.owner("task", name),
                "target": getattr(task.target, "name", type(task.target).__name__),
                "model": task.model,
                "head": task.head,
                "needs_root": task.needs_root,
                "description": task.description,
            }
        )
    if as_json:
        return _echo_json(rows)
    if not rows:
        click.echo(f"no task matches {pattern!r}")
        return
    click.echo(
        _table(
            [[r["name"], r["plugin"], r["target"], r["description"]] for r in rows],
            ["task", "plugin", "target", "description"],
        )
    )


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--requirements", is_flag=True, help="Print installed plugin distributions as name==version lines."
)
@click.option("--verbose", "-v", is_flag=True, help="Show tracebacks of broken plugins.")
def plugins(as_json: bool, requirements: bool, verbose: bool):
    """List installed plugins: version, hooks, what they registered, broken ones."""
    infos = _registry().plugins
    if requirements:
        for dist in sorted({(i.distribution, i.version) for i in infos if i.distribution and i.version}):
            click.echo(f"{dist[0]}=={dist[1]}")
        return
    if as_json:
        return _echo_json([i.as_dict() for i in infos])
    rows = []
    for i in infos:
        counts = ", ".join(f"{len(v)} {k}s" for k, v in i.registered.items())
        hooks = ", ".join(h.removeprefix("register_") for h in i.hooks) or "-"
        rows.append([i.name, i.version or "-", "ok" if i.ok else "BROKEN", hooks, counts or "-"])
    click.echo(_table(rows, ["plugin", "version", "status", "hooks (register_*)", "registered"]))
    broken = [i for i in infos if not i.ok]
    for i in broken:
        click.echo(f"\nplugin {i.name!r} ({i.module}) is broken: {i.error}")
        if verbose and i.error_detail:
            click.echo(i.error_detail.rstrip())


_KINDS = {
    "datasets": "dataset",
    "models": "model",
    "heads": "head",
    "metrics": "metric",
    "backends": "backend",
    "target-types": "target-type",
    "tasks": "task",
}


@main.command(name="list")
@click.argument("kind", type=click.Choice(sorted(_KINDS)))
@click.argument("pattern", default="*")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(kind: str, pattern: str, as_json: bool):
    """List registered objects of one KIND (datasets, models, heads, metrics, backends, ...)."""
    reg = _registry()
    k = _KINDS[kind]
    rows = []
    for name in reg.list(k, pattern):
        obj = reg.get(k, name)
        row = {
            "name": name,
            "plugin": reg.owner(k, name),
            "description": getattr(obj, "description", "") or "",
        }
        if k == "backend":
            row["available"] = bool(obj.available())
        rows.append(row)
    if as_json:
        return _echo_json(rows)
    cols = ["name", "plugin", *(["available"] if k == "backend" else []), "description"]
    click.echo(_table([[str(r[c]) for c in cols] for r in rows], cols))


@main.command()
@click.argument("pattern", default="*")
@click.option(
    "--in-channels", default=3, show_default=True, help="Input feature channels used to build each model."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models(pattern: str, in_channels: int, as_json: bool):
    """List registered backbones with their parameter counts."""
    reg = _registry()
    rows = []
    for name in reg.list("model", pattern):
        factory = reg.get("model", name)
        try:
            model = factory(in_channels=in_channels)
            params = sum(p.numel() for p in model.parameters())
            error = None
        except Exception as exc:
            params, error = None, f"{type(exc).__name__}: {exc}"
        rows.append(
            {
                "name": name,
                "plugin": reg.owner("model", name),
                "params": params,
                "description": factory.description,
                "error": error,
            }
        )
    if as_json:
        return _echo_json(rows)
    click.echo(
        _table(
            [
                [
                    r["name"],
                    r["plugin"],
                    f"{r['params']:,}" if r["params"] is not None else r["error"],
                    r["description"],
                ]
                for r in rows
            ],
            ["model", "plugin", "parameters", "description"],
        )
    )


# -- work ------------------------------------------------------------------------------------
@main.command()
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    default=Path("demo-report"),
    show_default=True,
    help="Report folder (HTML report, PNGs, metrics JSON, exported model).",
)
@click.option("--epochs", type=int, default=None, help="Training epochs (default: the demo's tuned value).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quick", is_flag=True, help="A very short run (smoke test): tiny data, one epoch.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(out: Path, epochs: int | None, seed: int, quick: bool, quiet: bool):
    """Train on embedded synthetic rooms (CPU) and write an HTML report."""
    from .demo import run_demo

    summary = run_demo(out, epochs=epochs, seed=seed, quick=quick, quiet=quiet)
    click.echo(f"report: {summary['report']}")


@main.command()
@click.argument("task_name", metavar="TASK")
@click.option("--root", type=click.Path(path_type=Path), default=None, help="Dataset folder (real datasets).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run folder (default: runs/TASK).")
@click.option("--epochs", type=int, default=None)
@click.option("--bs", type=int, default=None, help="Batch size.")
@click.option("--lr", type=float, default=None, help="Maximum learning rate (one-cycle).")
@click.option("--workers", type=int, default=None, help="DataLoader worker processes.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last finished epoch.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def train(task_name, root, out, epochs, bs, lr, workers, seed, resume, quiet):
    """Train TASK, checkpointing every epoch."""
    from .registry import get_task
    from .training import train_task

    task = get_task(task_name)
    result = train_task(
        task,
        root=root,
        out=out or Path("runs") / task_name,
        epochs=epochs,
        bs=bs,
        lr=lr,
        num_workers=workers,
        seed=seed,
        resume=resume,
        quiet=quiet,
    )
    click.echo(json.dumps(result.get("metrics", {}), indent=2, default=str))


@main.command()
@click.argument("task_name", metavar="TASK")
@click.option(
    "--root",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    required=True,
    help="Dataset folder as downloaded.",
)
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="Cache folder (default: ROOT/cache)."
)
@click.option("--jobs", "-j", type=int, default=2, show_default=True, help="Parallel worker processes.")
@click.option("--skip-bad", is_flag=True, help="Skip invalid items with a warning and a count at the end.")
def prepare(task_name, root, out, jobs, skip_bad):
    """Convert TASK's raw files to cached arrays (resumable)."""
    from .registry import get_task

    task = get_task(task_name)
    if task.prepare is None:
        raise click.ClickException(f"task {task_name!r} has nothing to prepare: it reads its data directly")
    summary = task.prepare(root, out=out, jobs=jobs, skip_bad=skip_bad)
    click.echo(json.dumps(summary, indent=2, default=str))


@main.command()
@click.argument("task_name", metavar="TASK")
@click.argument(
    "inputs", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False)
)
@click.option(
    "--model",
    "model_path",
    required=True,
    type=click.Path(path_type=Path, exists=True),
    help="Weights file written by `train`, `demo` or learn.save_weights.",
)
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Output file (one input) or folder (several inputs).",
)
@click.option("--tta", type=int, default=None, help="Number of augmented passes to average.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["ply", "txt", "json", "npz"]),
    default=None,
    help="Output format (default: from the output name, else ply for per-point tasks).",
)
def predict(task_name, inputs, model_path, out, tta, fmt):
    """Predict with a trained model on INPUT files; write one prediction per point or vertex."""
    from .prediction import predict_files
    from .registry import get_task

    task = get_task(task_name)
    for src, dst in predict_files(task, model_path, list(inputs), out=out, tta=tta, fmt=fmt):
        click.echo(f"{src} -> {dst}")


def run() -> None:  # pragma: no cover - console entry for `python -m fastai_sparse`
    main(prog_name="fastai-sparse")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
