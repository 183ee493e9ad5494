"""Task: one object that says how to train on a kind of data.

A task ties together a dataset factory, a target type, the training and validation
transforms, a voxelizer, a backbone and a head (by registered name), a loss, metrics and
default hyper-parameters. It is a plain Python object you can build by hand and print::

    >>> from fastai_sparse import get_task
    >>> task = get_task("synthetic-rooms-seg")        # doctest: +SKIP
    >>> dls = task.dataloaders(bs=4)                    # doctest: +SKIP
    >>> learn = task.learner(dls)                       # doctest: +SKIP
    >>> learn.fit_one_cycle(5, 1e-2)                    # doctest: +SKIP

``task.dataloaders`` and ``task.learner`` are thin wrappers over
:func:`fastai_sparse.learner.sparse_dataloaders` and :func:`fastai_sparse.learner.sparse_learner`,
which a user can also call directly with objects of their own.

``task.config()`` writes the task, fully resolved, as a JSON-ready dict; ``Task.from_config(cfg)``
rebuilds it through the registry (see :mod:`fastai_sparse.config`); ``task.replace(**fields)``
is a copy with some fields changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import FastaiSparseError, OptionError

__all__ = ["DEFAULTS", "Task", "TaskOption"]

#: Default hyper-parameters; a task overrides any of them in ``Task.defaults``. ``schedule``: a
#: learning-rate schedule of :mod:`fastai_sparse.schedules` (a name or a dict), ``lr`` its peak.
DEFAULTS: dict[str, Any] = {
    "bs": 8,
    "epochs": 10,
    "lr": 1e-3,
    "schedule": "one-cycle",
    "tta": 0,
    "num_workers": 0,
}


def _describe(obj: Any) -> str:
    if obj is None:
        return "None"
    if isinstance(obj, str):
        return repr(obj)
    name = getattr(obj, "name", None)
    if isinstance(name, str) and not isinstance(obj, type):
        return repr(obj) if len(repr(obj)) < 100 else f"<{type(obj).__name__} {name!r}>"
    r = repr(obj)
    return r if len(r) < 100 else f"<{getattr(obj, '__qualname__', type(obj).__name__)}>"


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class TaskOption:
    """A dataset option a user may set from the command line: ``-O name=value`` on ``prepare``
    and ``train`` (``fastai-sparse prepare TASK --help`` lists a task's options).

    name: the keyword given to the task's ``prepare`` and dataset factory (``"label_source"``).
    help: one line. type: ``str``, ``int``, ``float``, ``bool`` (``true/false/yes/no/1/0``) or
    ``pathlib.Path``. choices: the allowed values (strings), if limited. default: shown in the
    help only (the function's own default applies when the option is not given). commands: where
    it applies, ``("prepare", "train")`` by default.

    >>> TaskOption("label_source", "where labels come from", choices=("nyu40", "raw-id")).parse("raw-id")
    'raw-id'
    """

    name: str
    help: str = ""
    type: type = str
    choices: tuple[str, ...] = ()
    default: Any = None
    commands: tuple[str, ...] = ("prepare", "train")

    def parse(self, text: str) -> Any:
        """The value of ``text`` (a command-line string) as this option's type; OptionError if not."""
        text = str(text).strip()
        if self.choices:
            if text not in self.choices:
                raise OptionError(f"option {self.name}={text!r}: expected one of {', '.join(self.choices)}")
            return text
        if self.type is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise OptionError(f"option {self.name}={text!r}: expected true or false")
        if self.type in (int, float):
            try:
                return self.type(text)
            except ValueError:
                kind = "an integer" if self.type is int else "a number"
                raise OptionError(f"option {self.name}={text!r}: expected {kind}") from None
        if self.type is Path:
            return Path(text).expanduser()
        return text

    def describe(self) -> str:
        """``name=VALUE  help (one of ...; default ...)`` for help texts."""
        kind = "|".join(self.choices) if self.choices else getattr(self.type, "__name__", "str").lower()
        default = str(self.default).lower() if isinstance(self.default, bool) else self.default
        extra = [f"default {default}"] if self.default is not None else []
        return f"{self.name}={kind}: {self.help}" + (f" ({'; '.join(extra)})" if extra else "")


@dataclass(eq=False, repr=False)
class Task:
    """How to train on one kind of data.

    Args:
        name: registry name, lowercase with dashes (``"scannet-seg"``).
        target: a target type (``Segmentation``, ``Classification``, ``Regression``,
            ``BoundingBoxes``, ``KeypointTarget``): checks samples, collates targets, gives
            the default loss and metrics.
        dataset: ``factory(split=..., root=..., **kwargs) -> Sequence[PointCloud | Mesh]``;
            a callable, a :class:`~fastai_sparse.registry.Factory`, a ``"module:attr"``
            string, or the name of a registered dataset.
        description: one line shown by ``fastai-sparse tasks``.
        train_transforms / valid_transforms: transforms applied to each sample (callables
            ``(cloud, rng) -> cloud``); validation transforms must not add training noise.
        voxelizer: a :class:`~fastai_sparse.voxelize.Voxelizer` (scale, features, grid).
        model / model_kwargs: registered backbone name and its keyword arguments.
        head / head_kwargs: registered head name (default: ``seg-linear`` for per-point
            targets, ``cls-pool`` for per-sample ones) and its keyword arguments.
        input_stage: optional registered model name run on per-point features before the
            backbone (e.g. ``"vfe"``).
        loss: loss callable ``(pred, y) -> scalar``; default ``target.loss_func()``.
        metrics: registered metric names; default ``target.metrics``.
        needs_root: whether ``dataloaders`` requires a data ``root`` (real datasets do).
        splits: names of the training and validation splits given to the dataset factory.
        defaults: hyper-parameters (``bs``, ``epochs``, ``lr``, ``schedule``, ``tta``, ...) over
            :data:`DEFAULTS`; optionally ``optimizer`` (``{"name": "sgd", "mom": 0.9}``: a fastai
            optimizer and its keywords, see :mod:`fastai_sparse.config`).
        prepare: optional ``prepare(root, **kwargs)`` run by ``fastai-sparse prepare``.
        fixture: optional ``fixture(directory) -> root`` writing a tiny dataset in the real
            file format, used by the conformance kit and tests.
        class_colors: optional per-class RGB colours (uint8 [K, 3]) for predictions.
        label_values: optional value written to output files for each class index (e.g. the
            NYU40 id of each ScanNet benchmark class); default the class index itself.
        read_input: optional ``read_input(path) -> PointCloud | Mesh`` used by prediction to
            read a user's file (e.g. to find a ShapeNet shape's category from its folder);
            default :func:`fastai_sparse.io.load`.
        options: the dataset options a user may set from the command line
            (:class:`TaskOption`; ``-O name=value`` on ``prepare`` and ``train``).
        output_formats: extra output formats of ``predict`` beyond ply, txt, npz and json (e.g.
            a benchmark's submission layout): ``{name: writer}``, where a writer has
            ``path(src, out, several) -> Path`` (where the prediction of input ``src`` goes,
            given ``-o`` (None, a folder or a file) and whether there are several inputs) and
            ``write(task, result, original, path) -> Path`` (``path`` is a temporary name next to
            the final one, moved into place when ``write`` returns: write there, derive nothing
            from its name). ``defaults["format"]`` names the
            format ``predict`` writes when none is asked for.
    """

    name: str
    target: Any
    dataset: Callable | str
    description: str = ""
    train_transforms: Sequence[Callable] = ()
    valid_transforms: Sequence[Callable] = ()
    voxelizer: Any = None
    model: str = "unet-m16"
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    head: str | None = None
    head_kwargs: Mapping[str, Any] = field(default_factory=dict)
    input_stage: str | None = None
    loss: Callable | None = None
    metrics: Sequence[str] | None = None
    needs_root: bool = False
    splits: tuple[str, str] = ("train", "valid")
    defaults: Mapping[str, Any] = field(default_factory=dict)
    prepare: Callable | None = None
    fixture: Callable | None = None
    class_colors: Any = None
    label_values: Sequence[int] | None = None
    read_input: Callable | None = None
    options: Sequence[TaskOption] = ()
    output_formats: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.options = tuple(self.options)
        self.defaults = {**DEFAULTS, **dict(self.defaults)}
        self.model_kwargs = dict(self.model_kwargs)
        self.head_kwargs = dict(self.head_kwargs)
        self.output_formats = dict(self.output_formats)
        self.train_transforms = list(self.train_transforms)
        self.valid_transforms = list(self.valid_transforms)
        if self.head is None:
            self.head = "seg-linear" if getattr(self.target, "per", "point") == "point" else "cls-pool"

    def __repr__(self) -> str:
        lines = [f"Task({self.name!r}" + (f", {self.description!r}" if self.description else "")]
        rows = [
            ("target", _describe(self.target)),
            ("dataset", _describe(self.dataset)),
            ("train_transforms", "[" + ", ".join(_describe(t) for t in self.train_transforms) + "]"),
            ("valid_transforms", "[" + ", ".join(_describe(t) for t in self.valid_transforms) + "]"),
            ("voxelizer", _describe(self.voxelizer)),
            ("model", f"{self.model!r} {self.model_kwargs or ''}".rstrip()),
            ("head", f"{self.head!r} {self.head_kwargs or ''}".rstrip()),
        ]
        if self.input_stage:
            rows.append(("input_stage", repr(self.input_stage)))
        rows += [
            ("loss", _describe(self.loss) if self.loss else "target default"),
            ("metrics", repr(list(self.metric_names))),
            ("defaults", repr(dict(self.defaults))),
        ]
        if self.options:
            rows.append(("options", ", ".join(o.name for o in self.options)))
        return "\n".join(lines + [f"  {k}: {v}" for k, v in rows]) + "\n)"

    # -- configuration --------------------------------------------------------------------------
    def config(self, **settings: Any) -> dict:
        """This task, fully resolved, as a JSON-ready dict (dataset options, transforms with their
        parameters, voxelizer, model and head kwargs, loss, metrics, optimizer, schedule, seed,
        versions). ``settings``: ``root``, ``dataset_options``, ``seed``, ``epochs``, ``bs``,
        ``lr``, ... (see :func:`fastai_sparse.config.task_config`)."""
        from .config import task_config

        return task_config(self, **settings)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | str | Path, *, base: Task | None = None) -> Task:
        """The task a config describes (a dict or a JSON file), rebuilt through the registry
        (``base``: start from this Task instead of the registered one of that name). Raises
        :class:`~fastai_sparse.errors.ConfigError` naming the key of an unknown key or a bad value."""
        from .config import load_config, resolve_config

        source = None
        if isinstance(cfg, (str, Path)):
            source, cfg = cfg, load_config(cfg)
        task = resolve_config(cfg, base=base, source=source)[1]
        if not isinstance(task, cls):
            raise TypeError(f"the config describes a {type(task).__name__}, not a {cls.__name__}")
        return task

    def replace(self, **changes: Any) -> Task:
        """A copy with the given fields changed: ``task.replace(model_kwargs={"m": 32})``.
        ``defaults`` are merged over the task's: ``task.replace(defaults={"lr": 0.01})``."""
        import dataclasses

        if "defaults" in changes:
            changes["defaults"] = {**self.defaults, **dict(changes["defaults"])}
        return dataclasses.replace(self, **changes)

    # -- pieces ---------------------------------------------------------------------------------
    def parse_options(self, pairs: Sequence[str], command: str = "train") -> dict[str, Any]:
        """``{name: value}`` from ``["name=value", ...]`` (``-O`` on the command line), checked
        against :attr:`options` declared for ``command``; OptionError names what is wrong and
        the declared options. Dashes in names are read as underscores."""
        declared = {o.name: o for o in self.options if command in o.commands}

        def known() -> str:
            if not declared:
                return f"task {self.name!r} declares no dataset options for {command}"
            return f"the options of {self.name!r} for {command}: " + "; ".join(
                o.describe() for o in declared.values()
            )

        out: dict[str, Any] = {}
        for pair in pairs:
            key, sep, value = str(pair).partition("=")
            key = key.strip().replace("-", "_")
            if not sep or not key:
                raise OptionError(f"option {pair!r}: expected NAME=VALUE; {known()}")
            if key not in declared:
                raise OptionError(f"unknown option {key!r}; {known()}")
            if key in out:
                raise OptionError(f"option {key!r} is given twice")
            out[key] = declared[key].parse(value)
        return out

    @property
    def metric_names(self) -> list[str]:
        return list(self.metrics if self.metrics is not None else getattr(self.target, "metrics", ()))

    @property
    def class_names(self) -> list[str] | None:
        classes = getattr(self.target, "classes", None)
        return list(classes) if classes is not None else None

    def dataset_factory(self, registry=None) -> Callable:
        from .registry import Factory, default_registry, resolve

        ds = self.dataset
        if isinstance(ds, str) and ":" not in ds:
            return (registry or default_registry()).get("dataset", ds)
        if isinstance(ds, Factory):
            return ds
        return resolve(ds)

    def datasets(self, root: str | Path | None = None, registry=None, **kwargs: Any) -> dict[str, Sequence]:
        """The training and validation datasets: ``{"train": seq, "valid": seq}``."""
        if self.needs_root and root is None:
            raise FastaiSparseError(
                f"task {self.name!r} reads a dataset from disk: pass root=<the dataset folder> "
                f"(or --root on the command line)"
            )
        factory = self.dataset_factory(registry)
        extra = {} if root is None else {"root": root}
        train_split, valid_split = self.splits
        return {
            "train": factory(split=train_split, **extra, **kwargs),
            "valid": factory(split=valid_split, **extra, **kwargs),
        }

    def make_voxelizer(self):
        if self.voxelizer is not None:
            return self.voxelizer
        from .voxelize import Voxelizer

        return Voxelizer()

    def pipeline(self, train: bool):
        """The per-sample pipeline ``(cloud, rng) -> SparseSample`` for training or validation."""
        from .batch import SamplePipeline
        from .transforms import Compose

        tfms = self.train_transforms if train else self.valid_transforms
        return SamplePipeline(Compose(list(tfms)), self.make_voxelizer(), self.target)

    def build_model(self, in_channels: int, registry=None, **model_kwargs: Any):
        """A :class:`~fastai_sparse.models.SparseModel`: backbone + head (+ input stage)."""
        from .models import SparseModel
        from .registry import default_registry

        reg = registry or default_registry()
        input_stage = None
        if self.input_stage:
            input_stage = reg.get("model", self.input_stage)(in_channels=in_channels)
            in_channels = input_stage.out_channels
        backbone = reg.get("model", self.model)(
            in_channels=in_channels, **{**self.model_kwargs, **model_kwargs}
        )
        head = reg.get("head", self.head)(
            in_channels=backbone.out_channels, num_outputs=self.target.num_outputs, **self.head_kwargs
        )
        return SparseModel(backbone, head, input_stage=input_stage)

    def build_metrics(self, registry=None) -> list:
        from .registry import default_registry

        reg = registry or default_registry()
        return [reg.build_metric(n, self.target) for n in self.metric_names]

    def loss_func(self) -> Callable:
        return self.loss if self.loss is not None else self.target.loss_func()

    # -- fastai -------------------------------------------------------------------------------
    def dataloaders(
        self,
        root: str | Path | None = None,
        bs: int | None = None,
        *,
        valid_bs: int | None = None,
        num_workers: int | None = None,
        seed: int = 0,
        path: str | Path | None = None,
        device: Any = None,
        **dataset_kwargs: Any,
    ):
        """fastai ``DataLoaders`` of sparse batches for this task."""
        from .learner import sparse_dataloaders

        ds = self.datasets(root, **dataset_kwargs)
        dls = sparse_dataloaders(
            ds["train"],
            ds["valid"],
            self.pipeline(train=True),
            self.pipeline(train=False),
            self.target,
            bs=bs or self.defaults["bs"],
            valid_bs=valid_bs,
            num_workers=self.defaults["num_workers"] if num_workers is None else num_workers,
            seed=seed,
            path=path if path is not None else (root if root is not None else "."),
            device=device,
        )
        # what the loaders were made from, for the configuration stored with exported weights
        dls.root, dls.dataset_options = root, dict(dataset_kwargs)
        return dls

    def learner(self, dls, model=None, *, path: str | Path | None = None, **kwargs: Any):
        """A fastai ``Learner`` for this task on ``dls`` (model built from the registry)."""
        from .learner import sparse_learner

        if model is None:
            x, _ = dls.one_batch()
            model = self.build_model(int(x["feats"].shape[1]))
        if self.defaults.get("optimizer") and "opt_func" not in kwargs:
            from .config import optimizer_func

            kwargs["opt_func"] = optimizer_func(self.defaults["optimizer"])
        return sparse_learner(
            dls,
            model,
            loss_func=kwargs.pop("loss_func", None) or self.loss_func(),
            metrics=kwargs.pop("metrics", None) or self.build_metrics(),
            path=path if path is not None else dls.path,
            task=self,
            **kwargs,
        )
