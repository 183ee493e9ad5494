"""``fastai-sparse new-plugin NAME``: write a complete plugin package to start from.

The package (templates in ``fastai_sparse/templates/plugin``, shipped with core and tested by
its suite, so it always matches this version of the plugin contract) holds:

- ``pyproject.toml`` with the ``fastai_sparse`` entry point;
- a disk-dataset reader for one text file per scene (``x y z r g b label``), with errors that
  name the file, the line and the field;
- ``prepare`` on :mod:`fastai_sparse.cache` (checked, resumable, parallel caches);
- a lazy dataset (cache first, raw files otherwise);
- a fixture writer in the real file layout, for the conformance kit and tests;
- a segmentation task, and a test file running the conformance kit.

It installs and passes :func:`fastai_sparse.testing.check_plugin` and its own tests as written;
the author then edits the reader for their files. Standard library only: ``--help`` stays fast.

Names derived from NAME (lowercase letters and digits, words joined by ``-`` or ``_``), e.g.
``my-rooms``: distribution ``fastai-sparse-my-rooms``, package ``fastai_sparse_my_rooms``,
entry point (plugin name) ``my_rooms``, dataset ``my-rooms``, task ``my-rooms-seg``.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path

from .errors import OptionError, OutputExistsError

__all__ = ["PluginNames", "Scaffold", "next_steps", "plugin_names", "write_plugin"]

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
TEMPLATE_SUFFIX = ".tmpl"


@dataclass(frozen=True)
class PluginNames:
    """Every name the new plugin uses, derived from NAME."""

    name: str
    distribution: str
    package: str
    entry_point: str
    dataset: str
    task: str

    def substitutions(self) -> dict[str, str]:
        from . import __version__

        return {
            "__DIST__": self.distribution,
            "__PKG__": self.package,
            "__EP__": self.entry_point,
            "__DATASET__": self.dataset,
            "__TASK__": self.task,
            "__TITLE__": self.name,
            "__CORE_VERSION__": ".".join(__version__.split(".")[:2]),
        }


def plugin_names(name: str) -> PluginNames:
    """The names for NAME; OptionError saying what is allowed when NAME is not usable."""
    raw = str(name).strip()
    if not _NAME.match(raw) or len(raw) > 40:
        hint = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")
        suggestion = f" (e.g. {hint!r})" if hint and _NAME.match(hint) and hint[0].isalpha() else ""
        raise OptionError(
            f"plugin name {raw!r}: use lowercase letters and digits, words joined by '-' or '_', "
            f"starting with a letter, at most 40 characters{suggestion}"
        )
    ident = raw.replace("-", "_")
    if keyword.iskeyword(ident):
        raise OptionError(f"plugin name {raw!r} is a Python keyword; choose another")
    slug = raw.replace("_", "-").removeprefix("fastai-sparse-")
    ident = slug.replace("-", "_")
    if not slug:
        raise OptionError(f"plugin name {raw!r}: give the dataset's name, not only 'fastai-sparse'")
    return PluginNames(
        name=slug,
        distribution=f"fastai-sparse-{slug}",
        package=f"fastai_sparse_{ident}",
        entry_point=ident,
        dataset=slug,
        task=f"{slug}-seg",
    )


def _installed_plugin(entry_point: str) -> str | None:
    """The distribution that already provides a fastai-sparse plugin of this name, if any."""
    for ep in metadata.entry_points(group="fastai_sparse"):
        if ep.name == entry_point:
            dist = getattr(ep, "dist", None)
            return dist.metadata["Name"] if dist is not None else ep.value
    return None


@dataclass
class Scaffold:
    """What :func:`write_plugin` wrote: the folder, the names, the files (relative paths)."""

    directory: Path
    names: PluginNames
    files: list[Path] = field(default_factory=list)


def _templates():
    return resources.files("fastai_sparse") / "templates" / "plugin"


def _walk(folder, prefix: Path = Path()) -> list[tuple[Path, object]]:
    out = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name == "__pycache__":
            continue
        if entry.is_dir():
            out += _walk(entry, prefix / entry.name)
        elif entry.name.endswith(TEMPLATE_SUFFIX):
            out.append((prefix / entry.name.removesuffix(TEMPLATE_SUFFIX), entry))
    return out


def _render(text: str, subs: dict[str, str]) -> str:
    for key, value in subs.items():
        text = text.replace(key, value)
    return text


def write_plugin(name: str, directory: str | Path | None = None, overwrite: bool = False) -> Scaffold:
    """Write the plugin package for NAME into ``directory`` (default ``./fastai-sparse-NAME``).

    Refuses (:class:`~fastai_sparse.errors.OutputExistsError`) a folder that exists and is not
    empty, unless ``overwrite`` (then the scaffold's own files are replaced and nothing else is
    touched), and a NAME whose plugin is already installed (:class:`OptionError`).
    """
    names = plugin_names(name)
    other = _installed_plugin(names.entry_point)
    if other is not None:
        raise OptionError(
            f"plugin name {names.entry_point!r} is already used by the installed distribution {other!r}; "
            "choose another NAME"
        )
    target = Path(directory) if directory is not None else Path(names.distribution)
    if target.exists() and not target.is_dir():
        raise OutputExistsError(target, "is a file, not a folder", "choose another --dir")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise OutputExistsError(
            target,
            "the folder exists and is not empty",
            "choose another --dir, or pass --overwrite to replace the scaffold's files in it",
        )
    subs = names.substitutions()
    result = Scaffold(target, names)
    for rel, source in _walk(_templates()):
        dest = target / Path(_render(str(rel), subs))
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(_render(source.read_text(encoding="utf-8"), subs), encoding="utf-8")
        result.files.append(dest.relative_to(target))
    return result


def next_steps(scaffold: Scaffold) -> list[str]:
    """The three commands to run next, as lines to print."""
    d, n = scaffold.directory, scaffold.names
    return [
        f"1. pip install -e {d}    (then `fastai-sparse plugins` lists {n.entry_point!r})",
        f"2. cd {d} && python -m pytest    (the conformance kit on a fixture dataset)",
        f"3. edit src/{n.package}/reader.py for your files, then: "
        f"fastai-sparse train {n.task} --root /path/to/data",
    ]
