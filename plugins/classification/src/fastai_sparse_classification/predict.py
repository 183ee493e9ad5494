"""Whole-shape prediction: read a file the way the datasets do (mesh surface sampled, normals),
predict with TTA by rotation voting, report the top-k classes; confusion matrix of a learner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .readers import load_shape

__all__ = ["classify_files", "confusion_matrix_of", "predict_shape", "top_k"]


def top_k(prediction: Any, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most probable classes of a per-sample :class:`~fastai_sparse.learner.Prediction`
    as ``(class name, probability)`` pairs, most probable first."""
    probs = np.asarray(prediction.probs, np.float64).reshape(-1)
    names = prediction.class_names or [str(i) for i in range(len(probs))]
    order = np.argsort(-probs, kind="stable")[: max(1, int(k))]
    return [(str(names[i]), float(probs[i])) for i in order]


def predict_shape(
    predictor: Any, item: str | Path | Any, *, tta: int = 1, k: int = 5, points: int = 2048, seed: int = 0
) -> tuple[Any, list[tuple[str, float]]]:
    """Predict one shape file (or Mesh / PointCloud): ``(Prediction, top-k pairs)``.

    predictor: a ``SparseLearner`` or a ``fastai_sparse.prediction.Predictor`` (anything with
    ``predict(cloud, tta=...)``). A path is read with :func:`~fastai_sparse_classification.readers.load_shape`
    (``points`` surface samples with normals, seeded), as the training data were; a Mesh is
    sampled the same way. ``tta`` > 1 averages the logits of views rotated about z (voting).
    """
    from fastai_sparse.geometry import Mesh
    from fastai_sparse.transforms.mesh import sample_surface

    rng = np.random.default_rng(seed)
    if isinstance(item, (str, Path)):
        cloud = load_shape(item, points, rng)
    elif isinstance(item, Mesh):
        cloud = sample_surface(item, points, rng)
    else:
        cloud = item
    pred = predictor.predict(cloud, tta=tta)
    return pred, top_k(pred, k)


def confusion_matrix_of(learn: Any, dl: Any = None, tta: int = 1) -> np.ndarray:
    """Confusion matrix int64 [K, K] (rows truth, columns prediction) of a classification
    learner on ``dl`` (default the validation loader), with ``tta`` rotation views averaged."""
    from fastai_sparse.metrics import confusion_matrix

    dl = dl if dl is not None else learn.dls.valid
    if tta > 1:
        preds, targs = learn.tta(n=tta, dl=dl)
    else:
        preds, targs = learn.get_preds(dl=dl)[:2]
    return confusion_matrix(preds, targs, len(learn.class_names)).numpy()


def classify_files(
    task: Any, model_path: str | Path, inputs: Any, *, tta: int | None = None, k: int = 5, points: int = 2048
) -> Any:
    """Yield ``(input path, top-k pairs)`` for shape files with a model folder, a weights file
    or a Hugging Face Hub model id (see :func:`fastai_sparse.hub.pretrained_path`).

    task: a Task or a registered task name. A :class:`~fastai_sparse_classification.tasks.MeshFolderTask`
    without classes takes them from the weights file.
    """
    from fastai_sparse.hub import pretrained_path
    from fastai_sparse.learner import read_weights
    from fastai_sparse.prediction import Predictor
    from fastai_sparse.registry import get_task

    from .tasks import MeshFolderTask

    task = get_task(task) if isinstance(task, str) else task
    model_path = pretrained_path(model_path)
    if isinstance(task, MeshFolderTask) and task.class_names is None:
        task = task.with_classes(read_weights(model_path).get("class_names") or ())
    predictor = Predictor.from_weights(task, model_path)
    views = int(tta if tta is not None else (task.defaults.get("tta") or 1))
    for src in inputs:
        _, top = predict_shape(predictor, src, tta=max(1, views), k=k, points=points)
        yield Path(src), top
