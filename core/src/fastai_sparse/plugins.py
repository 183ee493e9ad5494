"""Plugin loading: entry points, the built-in plugin, isolation of broken plugins.

Plugins are found through the ``fastai_sparse`` entry-point group and loaded once, lazily,
the first time a registry is queried. Which plugins load is chosen by the environment
variable ``FASTAI_SPARSE_PLUGINS``:

* unset or empty: every installed plugin;
* ``none``: no external plugin (only core's built-in one);
* ``name,name``: only those entry-point names; a name that no installed plugin has is
  reported (with the closest installed name) by a warning and by ``fastai-sparse plugins``.

``FASTAI_SPARSE_TRACE=1`` prints every hook call and its result (pluggy tracing).

Each plugin is imported and registered in its own ``try``: a plugin that fails to import,
implements a hook that does not exist (a typo pluggy would otherwise ignore), or raises
while registering is rolled back, recorded in :attr:`PluginInfo.error`, and reported by one
warning. It never breaks core or the other plugins.

Two distributions offering the same entry-point name are both reported and neither is loaded
(which one would win depends on ``sys.path`` order, so loading either could silently replace
the plugin the user meant). One distribution listed twice, as an editable install is (through
its ``.egg-info`` and its ``.dist-info``), is one plugin.
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
import sys
import traceback
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError

__all__ = [
    "BUILTIN_NAME",
    "ENTRY_POINT_GROUP",
    "ENV_PLUGINS",
    "ENV_TRACE",
    "PluginInfo",
    "PluginLoadWarning",
    "discover",
    "selected_names",
]

ENTRY_POINT_GROUP = "fastai_sparse"
ENV_PLUGINS = "FASTAI_SPARSE_PLUGINS"
ENV_TRACE = "FASTAI_SPARSE_TRACE"
BUILTIN_NAME = "builtin"
BUILTIN_MODULE = "fastai_sparse.builtin.plugin"


class PluginLoadWarning(UserWarning):
    """Issued once for each plugin that could not be loaded or registered."""


@dataclass
class PluginInfo:
    """What is known about one plugin: where it comes from and whether it works."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    error_detail: str | None = None
    obj: Any = field(default=None, repr=False)
    warned: bool = field(default=False, repr=False)
    installed: bool = True  # False for a name FASTAI_SPARSE_PLUGINS asks for that no plugin has

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def status(self) -> str:
        return "ok" if self.ok else ("NOT INSTALLED" if not self.installed else "BROKEN")

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": list(self.hooks),
            "registered": {k: list(v) for k, v in self.registered.items()},
            "ok": self.ok,
            "installed": self.installed,
            "error": self.error,
        }


def selected_names(value: str | None = None) -> set[str] | None:
    """The external plugin names selected by ``FASTAI_SPARSE_PLUGINS`` (None = all)."""
    value = os.environ.get(ENV_PLUGINS, "") if value is None else value
    value = value.strip()
    if not value:
        return None
    if value.lower() == "none":
        return set()
    return {v.strip() for v in value.split(",") if v.strip()}


def _entry_points() -> list[metadata.EntryPoint]:
    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


def _format_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _hook_names(obj: Any) -> list[str]:
    """Names of the attributes of ``obj`` marked with ``@hookimpl``."""
    names = []
    for attr in dir(obj):
        try:
            value = getattr(obj, attr)
        except Exception:  # pragma: no cover - exotic objects
            continue
        if callable(value) and getattr(value, f"{hookspecs.PROJECT}_impl", None) is not None:
            names.append(attr)
    return sorted(names)


def _check_hook_names(info: PluginInfo, known: Iterable[str]) -> None:
    known = list(known)
    for name in info.hooks:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known hooks: {', '.join(known)}"
            raise PluginError(
                f"plugin {info.name!r} implements {name!r}, which is not a fastai-sparse hook{hint}"
            )


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if os.environ.get(ENV_TRACE, "").strip() not in ("", "0"):
        pm.trace.root.setwriter(lambda msg: print(msg, end="", file=sys.stderr))
        pm.enable_tracing()
    return pm


def _load(info: PluginInfo, loader) -> None:
    try:
        obj = loader()
    except Exception as exc:
        info.error = f"failed to import {info.module!r}: {_format_error(exc)}"
        info.error_detail = traceback.format_exc()
        return
    info.obj = obj
    info.hooks = _hook_names(obj)
    try:
        _check_hook_names(info, [*hookspecs.HOOK_KINDS, "register_commands"])
    except PluginError as exc:
        info.error = str(exc)


def discover(names: set[str] | None = None, extra: Iterable[tuple[str, Any]] = ()) -> list[PluginInfo]:
    """Import the built-in plugin and the selected external plugins.

    Returns one :class:`PluginInfo` per plugin, broken ones included (with ``error`` set).
    ``extra`` adds ``(name, module_or_object)`` pairs, for tests and the conformance kit.
    """
    infos = [PluginInfo(BUILTIN_NAME, BUILTIN_MODULE, "fastai-sparse", _version("fastai-sparse"))]
    _load(infos[0], lambda: importlib.import_module(BUILTIN_MODULE))
    seen: dict[str, PluginInfo] = {BUILTIN_NAME: infos[0]}
    # group the entry points by name first: a name offered by two distributions loads neither
    by_name: dict[str, list[tuple[metadata.EntryPoint, PluginInfo]]] = {}
    for ep in _entry_points():
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else None
        info = PluginInfo(ep.name, ep.value, dist_name, dist.version if dist is not None else None)
        same = by_name.setdefault(ep.name, [])
        if any(_same_distribution(i, info) for _, i in same):
            continue  # one distribution seen twice (an editable install's egg-info, a path twice)
        same.append((ep, info))
    installed = sorted(by_name)
    for name in installed:
        if names is not None and name not in names:
            continue
        same = by_name[name]
        if name in seen:  # an external plugin named like the built-in one
            for _, info in same:
                info.error = f"the plugin name {name!r} is reserved for core's built-in plugin; rename it"
                infos.append(info)
            continue
        if len(same) > 1:
            offered = ", ".join(sorted(repr(i.distribution or i.module) for _, i in same))
            for _, info in same:
                info.error = (
                    f"the plugin name {name!r} is offered by {len(same)} distributions ({offered}); "
                    "none of them is loaded: uninstall all but one"
                )
                infos.append(info)
            seen[name] = same[0][1]
            continue
        ep, info = same[0]
        _load(info, ep.load)
        seen[name] = info
        infos.append(info)
    for wanted in sorted((names or set()) - set(installed)):
        info = PluginInfo(wanted, "-", installed=False)
        close = difflib.get_close_matches(wanted, installed, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else "check the name"
        info.error = (
            f"{ENV_PLUGINS} names {wanted!r}, but no installed plugin has that name; {hint} "
            f"(installed: {', '.join(installed) or 'none'})"
        )
        infos.append(info)
    for name, obj in extra:
        info = PluginInfo(name, getattr(obj, "__name__", repr(obj)))
        if name in seen:
            info.error = f"plugin name {name!r} is already used by {seen[name].module!r}"
        else:
            _load(info, lambda obj=obj: importlib.import_module(obj) if isinstance(obj, str) else obj)
            seen[name] = info
        infos.append(info)
    return infos


def _normalize(dist_name: str | None) -> str | None:
    return None if dist_name is None else re.sub(r"[-_.]+", "-", dist_name).lower()


def _same_distribution(a: PluginInfo, b: PluginInfo) -> bool:
    """One distribution found twice: the same normalised name (an editable install is listed
    through its ``.egg-info`` folder and its ``.dist-info``), or the same module without metadata."""
    if a.distribution is not None and b.distribution is not None:
        return _normalize(a.distribution) == _normalize(b.distribution)
    return a.module == b.module


def warn_broken(info: PluginInfo) -> None:
    """Warn once per plugin that it was skipped."""
    if info.warned or info.ok:
        return
    info.warned = True
    warnings.warn(
        f"fastai-sparse plugin {info.name!r} was skipped: {info.error} (run `fastai-sparse plugins` for details)",
        PluginLoadWarning,
        stacklevel=3,
    )


_discovered: dict[frozenset | None, list[PluginInfo]] = {}


def discovered() -> list[PluginInfo]:
    """The plugins selected by the environment, imported once per process (cached)."""
    names = selected_names()
    key = None if names is None else frozenset(names)
    if key not in _discovered:
        infos = discover(names)
        for info in infos:
            warn_broken(info)
        _discovered[key] = infos
    return _discovered[key]


def forget() -> None:
    """Drop the cache of :func:`discovered` (the next call imports the plugins again)."""
    _discovered.clear()


def install_commands(cli: Any, infos: list[PluginInfo]) -> None:
    """Let every working plugin add subcommands to the click group ``cli`` (failures isolated)."""
    for info in infos:
        if not info.ok or "register_commands" not in info.hooks:
            continue
        before = set(getattr(cli, "commands", {}))
        try:
            info.obj.register_commands(cli=cli)
        except Exception as exc:
            for name in set(getattr(cli, "commands", {})) - before:
                cli.commands.pop(name, None)
            info.error = f"register_commands failed: {_format_error(exc)}"
            info.error_detail = traceback.format_exc()
            warn_broken(info)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
