"""The ``fastai-sparse`` command.

Only click and the plugin machinery are imported at start-up, so ``--help`` is fast; torch
and fastai load inside the commands that need them. Plugins add subcommands through the
``register_commands`` hook.

Errors: the group runs every subcommand, the plugins' included, inside one handler
(:meth:`_Group.invoke`). An error raised on purpose (the :class:`~fastai_sparse.errors.FastaiSparseError`
family) or a file-system error (missing, unreadable or unwritable path, full disk, ...) ends the
command with one line, ``Error: <file or name>: <what is wrong>; <what to do>``, on stderr and
exit code 1. ``--traceback`` (anywhere on the command line) or ``FASTAI_SPARSE_DEBUG=1`` lets the
exception through with its whole stack. Any other exception is a bug: its traceback is printed,
then one line saying where to report it. Ctrl-C (or SIGTERM) ends the command with a short
message and exit code 130 (143); the writers are atomic, so nothing is left half-written.

This module is private: the parameter types and options a plugin's subcommands need are public
in :mod:`fastai_sparse.clitypes` (this module uses the same objects).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
import traceback
import warnings
from pathlib import Path

import click

from . import __version__
from .clitypes import InputDir, InputFile, PositiveFloat, model_option, overwrite_option
from .threads import threads_option

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
ENV_DEBUG = "FASTAI_SPARSE_DEBUG"
#: Where bugs in core are reported when the installed metadata names no ``Issues`` URL.
BUG_REPORT_URL = "https://github.com/fastai-sparse/fastai-sparse/issues"


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


def plural(n: int, word: str, many: str | None = None) -> str:
    """``"1 epoch"``, ``"2 epochs"`` (``many`` for irregular plurals)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


# -- errors ----------------------------------------------------------------------------------
_OS_HINTS = {
    errno.ENOENT: "check the path",
    errno.EACCES: "check the permissions of the file and its folder",
    errno.EPERM: "check the permissions of the file and its folder",
    errno.EISDIR: "pass a file, not a folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.EEXIST: "choose another name",
    errno.ENOSPC: "free some space or write somewhere else",
    errno.EDQUOT: "free some space or write somewhere else",
    errno.EROFS: "write somewhere else",
    errno.ENAMETOOLONG: "use a shorter name",
}


class CommandError(click.ClickException):
    """An error reported as one line (``Error: ...``) with exit code 1."""

    exit_code = 1


def _debug_enabled() -> bool:
    return os.environ.get(ENV_DEBUG, "").strip().lower() not in ("", "0", "false", "no", "off")


def error_line(exc: BaseException) -> str:
    """The one-line message (without ``Error: ``) for an error raised on purpose or an OSError."""
    if isinstance(exc, OSError) and not _is_ours(exc) and exc.errno is not None:
        what = (exc.strerror or str(exc)).strip()
        what = what[:1].lower() + what[1:]
        hint = _OS_HINTS.get(exc.errno)
        if exc.filename is not None:
            where = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
            return f"{where}: {what}" + (f"; {hint}" if hint else "")
        return what + (f"; {hint}" if hint else "")
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return "\n  ".join(line.rstrip() for line in lines)


def _is_ours(exc: BaseException) -> bool:
    from .errors import FastaiSparseError

    return isinstance(exc, FastaiSparseError)


def _bug_report(exc: BaseException) -> str:
    """One line: this is a bug, in core or in the plugin whose code raised, and where to report it."""
    from importlib import metadata

    culprit, dist = "fastai-sparse", "fastai-sparse"
    try:
        from . import plugins

        owners = {i.module.split(".")[0].split(":")[0]: i for i in plugins.discovered() if i.module}
        for frame, _ in traceback.walk_tb(exc.__traceback__):  # the innermost plugin frame wins
            top = str(frame.f_globals.get("__name__", "")).split(".")[0]
            if top in owners and top != "fastai_sparse":
                info = owners[top]
                culprit = f"the plugin {info.name!r}" + (
                    f" ({info.distribution})" if info.distribution else ""
                )
                dist = info.distribution or info.name
    except Exception:  # pragma: no cover - never let the report itself fail
        pass
    url = BUG_REPORT_URL if dist == "fastai-sparse" else None
    try:
        for entry in metadata.metadata(dist).get_all("Project-URL") or []:
            label, _, value = entry.partition(",")
            if label.strip().lower() in ("issues", "bug tracker", "bug reports", "tracker"):
                url = value.strip()
    except Exception:  # pragma: no cover
        pass
    where = f" at {url}" if url else f" to the authors of {dist}"
    return (
        f"This is a bug in {culprit} ({type(exc).__name__}), not a problem with your input: "
        f"please report it{where} with the command and the traceback above."
    )


def _format_warning(message, category, filename, lineno, line=None):
    """Warnings of the library as one ``Warning: ...`` line (no source line); others as usual."""
    if category.__module__.startswith("fastai_sparse"):
        return f"Warning: {message}\n"
    return _FORMAT_WARNING(message, category, filename, lineno, line)


_FORMAT_WARNING = warnings.formatwarning


class _Terminated(BaseException):
    """Raised by the SIGTERM handler so that ``finally`` blocks (temporary files) run."""


def _on_sigterm(signum, frame):  # pragma: no cover - exercised in a subprocess test
    raise _Terminated()


class _Group(click.Group):
    """The top-level group: adds the plugins' subcommands the first time the command list is
    needed, and turns errors into one line (see the module docstring)."""

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

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        # `--traceback` is accepted anywhere before `--` (users add it at the end of the line
        # they are debugging); the group option receives it.
        args = list(sys.argv[1:] if args is None else args)
        end = args.index("--") if "--" in args else len(args)
        if "--traceback" in args[:end]:
            args = ["--traceback", *[a for a in args[:end] if a != "--traceback"], *args[end:]]
        fmt = warnings.formatwarning
        warnings.formatwarning = _format_warning
        try:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        finally:
            warnings.formatwarning = fmt

    def invoke(self, ctx):
        debug = bool(ctx.params.get("show_traceback")) or _debug_enabled()
        previous = None
        if not debug:
            try:
                previous = signal.signal(signal.SIGTERM, _on_sigterm)
            except ValueError:  # not the main thread (e.g. a test runner)
                previous = None
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            if debug:
                raise
            click.echo("\nInterrupted: files being written were discarded; finished ones are kept.", err=True)
            raise click.exceptions.Exit(130) from None
        except _Terminated:
            click.echo("Terminated: files being written were discarded; finished ones are kept.", err=True)
            raise click.exceptions.Exit(143) from None
        except Exception as exc:
            if debug:
                raise
            if _is_ours(exc) or isinstance(exc, OSError):
                raise CommandError(error_line(exc)) from exc
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
            click.echo(_bug_report(exc), err=True)
            raise click.exceptions.Exit(1) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="fastai-sparse")
@click.option(
    "--traceback",
    "show_traceback",
    is_flag=True,
    help=f"Show the full stack of an error (also accepted after the command; or set {ENV_DEBUG}=1).",
)
def main(show_traceback: bool):
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
        counts = ", ".join(plural(len(v), k) for k, v in i.registered.items())
        hooks = ", ".join(h.removeprefix("register_") for h in i.hooks) or "-"
        rows.append([i.name, i.version or "-", i.status, hooks, counts or "-"])
    click.echo(_table(rows, ["plugin", "version", "status", "hooks (register_*)", "registered"]))
    for i in infos:
        if not i.installed:
            click.echo(f"\nplugin {i.name!r} is not installed: {i.error}")
        elif not i.ok:
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
@click.argument("kind", type=click.Choice(sorted(_KINDS)), metavar="KIND")
@click.argument("pattern", default="*")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(kind: str, pattern: str, as_json: bool):
    """List registered objects of one KIND: backends, datasets, heads, metrics, models,
    target-types or tasks (PATTERN is a wildcard)."""
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
    "--in-channels",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    metavar="N",
    help="Input feature channels used to build each model.",
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


# -- dataset options (-O NAME=VALUE) ---------------------------------------------------------
class _TaskCommand(click.Command):
    """A command whose first argument is a TASK: ``CMD TASK --help`` also lists the dataset
    options TASK declares (``CMD --help`` alone stays fast: it loads no plugin)."""

    def parse_args(self, ctx, args):
        ctx.meta["fastai_sparse.help_task"] = self._first_argument(args)
        return super().parse_args(ctx, args)

    def _first_argument(self, args: list[str]) -> str | None:
        takes_value = {
            o for p in self.params if isinstance(p, click.Option) and not p.is_flag for o in p.opts
        }
        skip = False
        for a in args:
            if skip:
                skip = False
            elif a == "--":
                break
            elif a.startswith("-"):
                skip = a in takes_value
            else:
                return a
        return None

    def format_epilog(self, ctx, formatter):
        super().format_epilog(ctx, formatter)
        name = ctx.meta.get("fastai_sparse.help_task")
        with formatter.section("Dataset options (-O NAME=VALUE, repeatable)"):
            if name is None:
                formatter.write_text(f"`fastai-sparse {self.name} TASK --help` lists the ones TASK declares.")
                return
            try:
                task = _registry().get("task", name)
            except Exception as exc:  # an unknown task: say so in the help, not as a traceback
                formatter.write_text(str(exc))
                return
            opts = [o for o in task.options if self.name in o.commands]
            if not opts:
                formatter.write_text(f"task {name!r} declares none for {self.name}.")
                return
            formatter.write_dl(
                [(o.describe().partition(":")[0], o.describe().partition(": ")[2]) for o in opts]
            )


class _LoggerList(click.ParamType):
    """``csv,tensorboard,wandb``: known logger names (:func:`fastai_sparse.loggers.parse_loggers`)."""

    name = "names"

    def convert(self, value, param, ctx):
        from .loggers import LoggerError, parse_loggers

        if isinstance(value, list):
            return value
        try:
            return parse_loggers(value)
        except LoggerError as e:
            self.fail(str(e), param, ctx)


def _dataset_option(func):
    return click.option(
        "-O",
        "--option",
        "options",
        multiple=True,
        metavar="NAME=VALUE",
        help="A dataset option TASK declares (repeatable; `TASK --help` lists them).",
    )(func)


def _task_options(task, pairs, command: str) -> dict:
    """The declared dataset options given as ``-O NAME=VALUE``; a usage error otherwise."""
    from .errors import OptionError

    try:
        return task.parse_options(pairs, command)
    except OptionError as exc:
        raise click.BadParameter(str(exc), param_hint="'-O' / '--option'") from None


# -- work ------------------------------------------------------------------------------------
@main.command()
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    default=Path("demo-report"),
    show_default=True,
    metavar="DIR",
    help="Report folder (HTML report, PNGs, metrics JSON, exported model).",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Training epochs [default: the demo's tuned value, 1 with --quick].",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="N",
    help="Random seed of the data, the weights and the augmentations.",
)
@click.option("--quick", is_flag=True, help="A very short run (smoke test): tiny data, one epoch.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@overwrite_option(
    help="Write the report into a folder that is not empty and not a previous demo report "
    "(files with the report's names are replaced, others kept)."
)
@threads_option(announce=False)
def demo(out: Path, epochs: int | None, seed: int, quick: bool, quiet: bool, overwrite: bool):
    """Train on embedded synthetic rooms (CPU) and write an HTML report."""
    from .demo import run_demo

    summary = run_demo(out, epochs=epochs, seed=seed, quick=quick, quiet=quiet, overwrite=overwrite)
    if summary.get("smoke_run"):
        click.echo(f"{summary['note']}: mIoU {summary['miou']:.3f}, chance {summary['chance_miou']:.3f}")
    click.echo(f"report: {summary['report']}")


@main.command(cls=_TaskCommand)
@click.argument("task_name", metavar="TASK", required=False)
@click.option(
    "--config",
    "config_file",
    type=InputFile("config file"),
    default=None,
    metavar="FILE",
    help="Run this configuration (a file from `fastai-sparse config TASK`, or a run's config.json).",
)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Change one configuration value (dotted keys: lr=0.01, model_kwargs.m=32, "
    "train_transforms.2.sigma=0.05, dataset.options.n=16); repeatable.",
)
@click.option(
    "--root",
    type=InputDir("dataset folder"),
    default=None,
    metavar="DIR",
    help="Dataset folder (real datasets; synthetic tasks need none).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    metavar="DIR",
    help="Run folder [default: runs/TASK].",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Training epochs [default: the task's].",
)
@click.option(
    "--bs", type=click.IntRange(min=1), default=None, metavar="N", help="Batch size [default: the task's]."
)
@click.option(
    "--lr",
    type=PositiveFloat(),
    default=None,
    metavar="LR",
    help="Peak learning rate of the task's schedule [default: the task's].",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="DataLoader worker processes (0: load in the main process) [default: the task's].",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Random seed of the data order, the weights and the augmentations [default: 0, or the config's].",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last finished epoch.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option(
    "--log",
    "loggers",
    type=_LoggerList(),
    default=None,
    metavar="NAMES",
    help="Experiment loggers, comma-separated: csv, tensorboard, wandb [default: csv, or the "
    'config\'s]; tensorboard and wandb need pip install "fastai-sparse[tensorboard]" / "[wandb]".',
)
@click.option(
    "--precision",
    type=click.Choice(["32", "bf16", "fp16"]),
    default=None,
    help="Numeric precision: 32 (float32), bf16 (bfloat16 autocast: CPU and CUDA) or fp16 (float16 autocast with "
    "loss scaling: CUDA only) [default: 32, or the config's].",
)
@overwrite_option(
    help="Start a new run in a folder that holds a finished or unfinished run, or files with a "
    "run's names (they are replaced)."
)
@_dataset_option
@threads_option(workers="workers", announce=False)
def train(
    task_name,
    config_file,
    assignments,
    root,
    out,
    epochs,
    bs,
    lr,
    workers,
    seed,
    resume,
    quiet,
    loggers,
    precision,
    overwrite,
    options,
):
    """Train TASK (or the task of --config), checkpointing every epoch.

    The run folder records the whole configuration in config.json; `train --config
    runs/TASK/config.json` runs it again.
    """
    from .registry import get_task
    from .training import train_task

    if config_file is not None:
        from .config import load_config

        named = load_config(config_file).get("task")
        if task_name is not None and named != task_name:
            raise CommandError(f"{config_file}: the config is for task {named!r}, not {task_name!r}")
        task_name = named
    if task_name is None:
        raise click.UsageError("name a TASK or pass --config FILE")
    task = get_task(task_name)
    dataset_options = _task_options(task, options, "train")
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
        dataset_kwargs=dataset_options or None,
        config=config_file,  # read again by train_task, so that its messages name the file
        overrides=list(assignments),
        precision=precision,
        loggers=loggers,
        overwrite=overwrite,
    )
    click.echo(json.dumps(result.get("metrics", {}), indent=2, default=str))


@main.command(name="config")
@click.argument("task_name", metavar="TASK")
@click.option(
    "--set", "assignments", multiple=True, metavar="KEY=VALUE", help="Change a value (as in train)."
)
def config_(task_name, assignments):
    """Print TASK's fully resolved configuration (JSON) to start a `train --config` from."""
    from .config import apply_overrides
    from .registry import get_task

    task = get_task(task_name)
    cfg = task.config()
    if assignments:
        cfg = apply_overrides(cfg, list(assignments), base=task)
    click.echo(json.dumps(cfg, indent=2))


@main.command(cls=_TaskCommand)
@click.argument("task_name", metavar="TASK")
@click.option(
    "--root",
    type=InputDir("dataset folder"),
    required=True,
    metavar="DIR",
    help="Dataset folder as downloaded.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    metavar="DIR",
    help="Cache folder [default: ROOT/cache].",
)
@click.option(
    "--jobs",
    "-j",
    type=int,
    default=2,
    show_default=True,
    metavar="N",
    help="Parallel worker processes.",
)
@click.option("--skip-bad", is_flag=True, help="Skip invalid items with a warning and a count at the end.")
@click.option(
    "--force", is_flag=True, help="Rebuild every cache file, also those that still match their sources."
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_dataset_option
@threads_option(processes="jobs")
def prepare(task_name, root, out, jobs, skip_bad, force, quiet, options):
    """Convert TASK's raw files to cached arrays.

    Resumable: files that still match their sources are kept, missing and out-of-date ones
    (sources edited, other options, an older version) are made. Safe to run twice at once.
    """
    import inspect

    from .registry import get_task

    task = get_task(task_name)
    if task.prepare is None:
        raise click.UsageError(f"task {task_name!r} has nothing to prepare: it reads its data directly")
    if jobs < 1:
        raise click.BadParameter(f"{jobs} worker processes; expected 1 or more", param_hint="'--jobs'")
    kwargs = {"out": out, "jobs": jobs, "skip_bad": skip_bad, **_task_options(task, options, "prepare")}
    params = inspect.signature(task.prepare).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    for flag, value in (("force", force), ("quiet", quiet)):
        if value and not (takes_any or flag in params):
            raise click.UsageError(f"task {task_name!r}: its prepare does not support --{flag}")
        if value:
            kwargs[flag] = True
    summary = task.prepare(root, **kwargs)
    click.echo(json.dumps(summary, indent=2, default=str))


@main.command()
@click.argument("task_name", metavar="TASK")
@click.argument(
    "inputs", nargs=-1, required=True, type=InputFile(allow_dir=True), metavar="INPUTS..."
)  # folders only for tasks whose reader takes them (predict_files checks)
@model_option()
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    metavar="PATH",
    help="Output file (one input) or folder (several inputs) [default: INPUT.pred.FORMAT next to each input].",
)
@click.option(
    "--tta",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Number of augmented passes to average [default: the task's].",
)
@click.option(
    "--format",
    "fmt",
    metavar="FORMAT",
    default=None,
    help="Output format: ply, txt, json, npz, or one the task adds (default: from the output name, "
    "else the task's default, else ply for per-point tasks).",
)
@overwrite_option()
@threads_option()
def predict(task_name, inputs, model_path, out, tta, fmt, overwrite):
    """Predict with a trained model on INPUTS (point cloud or mesh files); write one prediction per
    point or vertex.

    An INPUT may be a folder when TASK reads folders (e.g. an S3DIS room folder: its room file
    is read); other tasks refuse a folder with an error. Outputs never replace an input or the
    model's files, and two inputs never write the same output; an existing output is replaced
    only with --overwrite.
    """
    from .prediction import output_formats, predict_files
    from .registry import get_task

    task = get_task(task_name)
    if fmt is not None and fmt not in output_formats(task):
        raise click.BadParameter(
            f"{fmt!r} is not a format of task {task_name!r}; expected one of {', '.join(output_formats(task))}",
            param_hint="--format",
        )
    for src, dst in predict_files(
        task, model_path, list(inputs), out=out, tta=tta, fmt=fmt, overwrite=overwrite
    ):
        click.echo(f"{src} -> {dst}")


@main.command(name="new-plugin")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder to write the package into (default: ./fastai-sparse-NAME).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Write into a non-empty folder, replacing the scaffold's own files there.",
)
def new_plugin(name, directory, overwrite):
    """Write a new plugin package NAME to start from: a disk dataset with prepare, a fixture,
    a task and tests that pass as written (see docs/plugin-authoring.md)."""
    from .errors import OptionError
    from .scaffold import next_steps, write_plugin

    try:
        made = write_plugin(name, directory, overwrite=overwrite)
    except OptionError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from None
    n = made.names
    click.echo(
        f"wrote plugin {n.entry_point!r} ({n.distribution}: dataset {n.dataset!r}, task {n.task!r}) "
        f"in {made.directory}, {len(made.files)} files"
    )
    click.echo("next:")
    for line in next_steps(made):
        click.echo(f"  {line}")


def run() -> None:  # pragma: no cover - console entry for `python -m fastai_sparse`
    main(prog_name="fastai-sparse")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
