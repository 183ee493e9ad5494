"""Inference from a weights file, without a training set: what ``fastai-sparse predict`` runs.

:class:`Predictor` pairs a task's validation pipeline with a model and predicts one input at a
time, with optional test-time augmentation (the same views as ``learn.tta``), returning a
:class:`~fastai_sparse.learner.Prediction` with one row per original point or vertex.
:func:`predict_files` writes the results: a PLY with a ``label`` property and colours by class,
the one-value-per-line text format of benchmark submissions, NPZ arrays, or JSON for
per-sample tasks (top classes with probabilities), or a format the task adds itself
(``Task.output_formats``, e.g. a benchmark's submission layout).

Outputs are planned before any work (:func:`fastai_sparse.files.plan_outputs`): an output that
would replace an input or the weights file, two inputs writing one output, and an existing output
without ``overwrite=True`` are refused before the model is even loaded. Every file is written
atomically with the user's permissions (:func:`fastai_sparse.files.atomic_path`), a task's own
formats included.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import FastaiSparseError
from .geometry import Mesh, PointCloud

__all__ = ["FORMATS", "Predictor", "output_formats", "output_values", "predict_files"]

FORMATS = ("ply", "txt", "npz", "json")


def _as_input(item: Any, reader=None) -> tuple[PointCloud, Mesh | PointCloud]:
    """(cloud to predict on, original object to write back): see
    :func:`fastai_sparse.learner.load_input`, the one reader of every prediction path."""
    from .learner.predict import load_input

    return load_input(item, reader)


class Predictor:
    """A task's validation pipeline plus a model, for inference.

    >>> pred = Predictor.from_weights(get_task("synthetic-rooms-seg"), "runs/rooms/model")  # doctest: +SKIP
    >>> result = pred.predict("room.ply", tta=4)                                      # doctest: +SKIP
    >>> result.labels.shape                      # one label per point of room.ply     # doctest: +SKIP
    """

    def __init__(
        self,
        task,
        model: torch.nn.Module | None = None,
        state_dict: dict | None = None,
        device: str | torch.device | None = None,
    ):
        from .learner import unlabelled_pipeline

        self.task = task
        self.pipeline = unlabelled_pipeline(task.pipeline(train=False))
        self.model, self._state = model, state_dict
        self.device = torch.device(device) if device is not None else torch.device("cpu")

    @classmethod
    def from_weights(
        cls, task, path: str | Path, device: str | torch.device | None = None, **hub: Any
    ) -> Predictor:
        """A predictor for saved weights: a model folder, a ``.safetensors`` file, an older
        ``.pth`` file, or a Hugging Face Hub model id (``hub``: ``revision``, ``cache_dir``,
        ``local_files_only``, ``token``; see :func:`fastai_sparse.hub.pretrained_path`).

        Nothing in the file runs: tensors are read with safetensors (older files with
        ``torch.load(weights_only=True)``) and the task is rebuilt through the registry from the
        stored configuration, starting from ``task`` (None: the registered task the weights name),
        so the model and the validation pipeline are those that were trained. Raises
        :class:`~fastai_sparse.errors.CheckpointError` when the file is missing or damaged, or was
        trained for another task or other classes (a task whose classes come from its data and
        that offers ``with_classes(names)`` takes the stored names), and
        :class:`~fastai_sparse.errors.UnsafeFileError` for a file that would run code.
        """
        from .hub import pretrained_path
        from .weights import read_weights, task_for_weights

        ckpt = read_weights(pretrained_path(path, **hub))
        task = task_for_weights(ckpt, task)
        return cls(task, state_dict=ckpt["state_dict"], device=device)

    @classmethod
    def from_pretrained(cls, path_or_id: str | Path, task=None, device=None, **hub: Any) -> Predictor:
        """The same as :meth:`from_weights` with the task taken from the weights."""
        return cls.from_weights(task, path_or_id, device=device, **hub)

    def _model_for(self, in_channels: int) -> torch.nn.Module:
        if self.model is None:
            from .errors import CheckpointError

            model = self.task.build_model(in_channels)
            if self._state is not None:
                try:
                    model.load_state_dict(self._state)
                except RuntimeError as e:
                    raise CheckpointError(
                        f"the weights do not fit task {self.task.name!r}'s model with {in_channels} input "
                        f"channels: {str(e).splitlines()[0]}"
                    ) from e
            self.model = model
        self.model.to(self.device).eval()
        return self.model

    @torch.no_grad()
    def logits(self, cloud: PointCloud, tta: int = 1) -> torch.Tensor:
        """Model outputs averaged over ``tta`` views: [N, K] per point or [K] per sample."""
        from .batch import collate
        from .learner import default_tta_offset, tta_views

        total = None
        for view in tta_views(max(1, tta), default_tta_offset(self.pipeline)):
            sample = self.pipeline(view(cloud), np.random.default_rng(0))
            x, _ = collate([sample], self.task.target, labels=False)
            x = {k: v.to(self.device) for k, v in x.items()}
            out = self._model_for(int(x["feats"].shape[1]))(x).float().cpu()
            total = out if total is None else total + out
        out = total / max(1, tta)
        if getattr(self.task.target, "per", "point") != "point":
            out = out[0]
        elif len(out) != len(cloud):
            raise FastaiSparseError(
                f"the model returned {len(out)} rows for {len(cloud)} points: task {self.task.name!r}'s "
                f"validation transforms must keep every point to predict per point"
            )
        return out

    def predict(self, item: Any, tta: int | None = None):
        """Predict a path, Mesh or PointCloud; returns a :class:`~fastai_sparse.learner.Prediction`."""

        from .learner import make_prediction

        cloud, _ = _as_input(item, self.task.read_input)
        if tta is None:
            tta = int(self.task.defaults.get("tta") or 1)
        out = self.logits(cloud, tta)
        per = getattr(self.task.target, "per", "point")
        return make_prediction(per, out, self.task.class_names, cloud, self.task.class_names is not None)


def output_formats(task) -> tuple[str, ...]:
    """Every output format ``predict`` can write for ``task``: :data:`FORMATS` plus the task's own."""
    return (*FORMATS, *(f for f in task.output_formats if f not in FORMATS))


def output_values(task, labels: np.ndarray) -> np.ndarray:
    """The values written to files for class indices: ``task.label_values`` (e.g. NYU40 ids) or
    the indices themselves."""
    labels = np.asarray(labels, dtype=np.int64)
    if task.label_values is None:
        return labels
    return np.asarray(task.label_values, dtype=np.int64)[labels]


def _atomic_write(path: Path, write, overwrite: bool = True) -> None:
    from .files import atomic_path

    with atomic_path(path, overwrite=overwrite) as tmp:
        write(tmp)


def write_result(
    task, result, original, path: Path, fmt: str, top_k: int = 5, overwrite: bool = True
) -> Path:
    """Write one prediction in ``fmt`` (see :data:`FORMATS`), atomically; with
    ``overwrite=False`` an existing ``path`` raises :class:`~fastai_sparse.errors.OutputExistsError`."""
    from . import io

    path = Path(path)
    if fmt in task.output_formats:
        from .files import atomic_path

        with atomic_path(path, overwrite=overwrite) as tmp:
            task.output_formats[fmt].write(task, result, original, tmp)
        return path
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {output_formats(task)}")
    if result.per != "point":
        if fmt != "json":
            raise FastaiSparseError(f"task {task.name!r} predicts one value per sample: use --format json")
        payload: dict[str, Any] = {"task": task.name, "input": str(original.meta.get("path", ""))}
        to_json = getattr(task.target, "result_json", None)
        if to_json is not None:  # structured outputs (boxes, keypoints) describe themselves
            payload.update(to_json(result.logits))
        elif result.probs is not None:
            order = np.argsort(-result.probs)[:top_k]
            names = task.class_names or [str(i) for i in range(len(result.probs))]
            payload["label"] = names[int(result.labels)]
            payload["top"] = [{"class": names[i], "probability": float(result.probs[i])} for i in order]
        else:
            payload["values"] = np.asarray(result.logits).reshape(-1).tolist()
        _atomic_write(path, lambda p: p.write_text(json.dumps(payload, indent=2) + "\n"), overwrite)
        return path
    values = output_values(task, result.labels)
    if fmt == "txt":
        _atomic_write(path, lambda p: np.savetxt(p, values, fmt="%d"), overwrite)
    elif fmt == "npz":

        def write_npz(p: Path) -> None:
            with open(p, "wb") as f:  # a file object: savez would append ".npz" to the temporary name
                np.savez_compressed(
                    f,
                    labels=values,
                    class_index=result.labels,
                    probs=result.probs,
                    confidence=result.confidence,
                )

        _atomic_write(path, write_npz, overwrite)
    elif fmt == "json":
        _atomic_write(
            path,
            lambda p: p.write_text(json.dumps({"task": task.name, "labels": values.tolist()})),
            overwrite,
        )
    else:
        from .viz.colors import class_colors

        k = len(task.class_names or []) or int(result.labels.max()) + 1
        palette = np.asarray(task.class_colors if task.class_colors is not None else class_colors(k))
        colors = palette[result.labels]
        if colors.dtype != np.uint8:
            colors = np.clip(np.round(colors * (255 if colors.max() <= 1 else 1)), 0, 255).astype(np.uint8)
        _atomic_write(
            path,
            lambda p: io.write_ply(
                p,
                original,
                labels=values,
                colors=colors,
                extra={"confidence": np.asarray(result.confidence, np.float32)},
            ),
            overwrite,
        )
    return path


def _default_format(task, out: Path | None) -> str:
    if out is not None and out.suffix.lstrip(".").lower() in output_formats(task):
        return out.suffix.lstrip(".").lower()
    if task.defaults.get("format"):
        return str(task.defaults["format"])
    return "ply" if getattr(task.target, "per", "point") == "point" else "json"


def predict_files(
    task,
    model_path: str | Path,
    inputs: Sequence[str | Path],
    out: str | Path | None = None,
    tta: int | None = None,
    fmt: str | None = None,
    overwrite: bool = False,
) -> Iterator[tuple[Path, Path]]:
    """Predict every input file and write the results; yields ``(input, output)`` pairs.

    ``out``: the output file for a single input, or a folder for several (default: next to
    each input, named ``<stem>.pred.<format>``, the whole stem kept: ``room.v1.ply`` ->
    ``room.v1.pred.ply``). ``model_path``: a model folder, a weights file or a Hub model id. Before
    anything is computed the inputs and the model are checked (readable regular files in their
    format, a readable folder; see :func:`fastai_sparse.hub.check_model_source`) and the outputs
    planned: an output that would be an input or a file of the model, or two inputs writing one
    output, raise
    :class:`~fastai_sparse.errors.OutputConflictError`; an existing output raises
    :class:`~fastai_sparse.errors.OutputExistsError` unless ``overwrite``.
    """
    from .files import check_input_file, check_outputs, check_writable_folder, plan_outputs
    from .hub import check_model_source, model_files

    if tta is not None and int(tta) < 1:
        raise ValueError(f"tta must be at least 1, got {tta}")
    srcs = [check_input_file(p, allow_dir=task.read_input is not None) for p in inputs]
    model_path = check_model_source(model_path)
    protected = model_files(model_path)
    out = Path(out) if out is not None else None
    fmt = fmt or _default_format(task, out)
    if fmt not in output_formats(task):
        raise FastaiSparseError(
            f"unknown output format {fmt!r} for task {task.name!r}; expected one of {output_formats(task)}"
        )
    writer = task.output_formats.get(fmt)
    if writer is not None:  # the task's own layout names the outputs; the same checks apply
        several = len(srcs) > 1 or (out is not None and out.is_dir())
        dsts = [Path(writer.path(src, out, several)) for src in srcs]
        check_outputs(dsts, [*srcs, *protected], overwrite=overwrite, sources=srcs)
        for folder in dict.fromkeys(d.parent for d in dsts):
            check_writable_folder(folder)
    else:
        if out is not None and not out.is_dir() and len(srcs) == 1:
            suffix = out.suffix.lstrip(".").lower()
            if suffix in FORMATS and suffix != fmt:
                from .errors import OutputConflictError

                raise OutputConflictError(
                    out,
                    f"the name says .{suffix} but the format is {fmt}",
                    f"name the output .{fmt} or drop --format",
                )
        dsts = plan_outputs(srcs, out, suffix=f".pred.{fmt}", overwrite=overwrite, protected=protected)
    predictor = Predictor.from_weights(task, model_path)
    for src, dst in zip(srcs, dsts):
        cloud, original = _as_input(src, task.read_input)
        result = predictor.predict(cloud, tta=tta)
        yield src, write_result(predictor.task, result, original, dst, fmt, overwrite=overwrite)
