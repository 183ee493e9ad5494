"""Training precision: float32, or mixed precision with bfloat16 or float16 (``--precision``).

``"32"`` trains in float32 (the default). ``"bf16"`` and ``"fp16"`` run the forward pass and
the loss under :func:`torch.autocast` with that dtype while the weights, the optimizer state
and the weight updates stay float32 ("mixed precision"):

* ``bf16`` works on the CPU and on CUDA GPUs that support bfloat16 (Ampere and newer); it has
  float32's range, so it needs no loss scaling;
* ``fp16`` works on CUDA GPUs only, with dynamic loss scaling (:class:`torch.amp.GradScaler`:
  the loss is multiplied before the backward pass, a step whose gradients overflow is skipped
  and the scale lowered). On the CPU it is an error (:class:`PrecisionError`), not a silent
  float32 run.

What runs in which dtype inside the sparse engine is listed in
:mod:`fastai_sparse.engine.functional` (convolutions: reduced-precision GEMMs with float32
accumulation, float32 sums across blocks) and :class:`~fastai_sparse.engine.SparseBatchNorm`
(statistics in float32); coordinates, kernel maps and every index are integers, untouched.
The model's output is cast to float32 before the loss (fastai's ``after_pred``), so losses and
metrics are float32.

Why fastai's :class:`~fastai.callback.fp16.MixedPrecision`, subclassed: it already does what
a training loop needs around autocast (the autocast region from the batch to the loss, the
float32 cast of the predictions, loss scaling, skipping overflowed steps through fastai's
``CancelStepException``), but it hard-codes ``autocast("cuda")``, so on the CPU it silently
trains in float32 (``to_bf16()`` is a no-op there). :class:`SparseMixedPrecision` changes only
that: autocast and the scaler run on the device type of the model's parameters. Using
``torch.autocast`` directly would mean re-writing the loss-scaling and step-skipping logic.

Nothing here imports torch or fastai at import time.
"""

from __future__ import annotations

from typing import Any

from .errors import FastaiSparseError

# ``SparseMixedPrecision`` (the callback) is built on first access, so that importing this module
# imports neither torch nor fastai.
__all__ = ["PRECISIONS", "PrecisionError", "check_precision", "set_precision"]

#: The values of ``--precision`` (and of the ``precision`` key of a config).
PRECISIONS = ("32", "bf16", "fp16")
_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


class PrecisionError(FastaiSparseError, ValueError):
    """A precision that is unknown or that the device cannot run."""


def normalize_precision(precision: Any) -> str:
    """``"32"``, ``"bf16"`` or ``"fp16"`` (also accepts the integer 32); PrecisionError otherwise."""
    p = str(precision).strip().lower() if precision is not None else "32"
    if p not in PRECISIONS:
        raise PrecisionError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    return p


def check_precision(precision: Any, device: Any) -> str:
    """The normalised precision, checked against ``device`` (a torch device or its name).

    fp16 on anything but CUDA, and bf16 on a GPU without bfloat16 support, raise
    :class:`PrecisionError` with what to use instead.
    """
    import torch

    p = normalize_precision(precision)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if p == "fp16" and dev.type != "cuda":
        raise PrecisionError(
            f"precision fp16 needs a CUDA GPU (float16 autocast with loss scaling); this run is on "
            f"{dev.type}: use --precision bf16 (or 32)"
        )
    if p == "bf16" and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise PrecisionError(
            f"precision bf16: the GPU {torch.cuda.get_device_name(dev)} does not support bfloat16; "
            "use --precision fp16 (or 32)"
        )
    return p


def _model_device(learn: Any):
    import torch

    for p in learn.model.parameters():
        return p.device
    return getattr(learn.dls, "device", None) or torch.device("cpu")


def _callback_class():
    from fastai.callback.fp16 import AMPMode, MixedPrecision
    from fastcore.foundation import L
    from torch.amp import GradScaler, autocast

    class SparseMixedPrecision(MixedPrecision):
        """fastai's :class:`~fastai.callback.fp16.MixedPrecision` with autocast and the loss
        scaler on the device type of the model (fastai's is CUDA-only): bf16 on CPU and CUDA,
        fp16 (with loss scaling) on CUDA. ``precision``: ``"bf16"`` or ``"fp16"``; other keyword
        arguments go to :class:`torch.amp.GradScaler`."""

        def __init__(self, precision: str = "bf16", **kwargs):
            p = normalize_precision(precision)
            if p == "32":
                raise PrecisionError("SparseMixedPrecision: precision 32 needs no callback")
            super().__init__(amp_mode=AMPMode.BF16 if p == "bf16" else AMPMode.FP16, **kwargs)
            self.precision = p

        def before_fit(self):
            import torch

            dev = _model_device(self.learn)
            check_precision(self.precision, dev)
            dtype = getattr(torch, _DTYPES[self.precision])
            self.kwargs["enabled"] = dtype == torch.float16  # bf16 has float32's range: no scaling
            self.autocast = autocast(dev.type, dtype=dtype)
            self.learn.scaler = GradScaler(dev.type, **self.kwargs)
            self.scales = L()

        def __repr__(self) -> str:
            return f"SparseMixedPrecision({self.precision!r})"

    return SparseMixedPrecision


def __getattr__(name: str):
    if name == "SparseMixedPrecision":  # built on first use: fastai is imported only then
        cls = _callback_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def set_precision(learn: Any, precision: Any = "32") -> Any:
    """Make ``learn`` (a fastai Learner) train in ``precision`` (``"32"``, ``"bf16"``,
    ``"fp16"``), replacing any mixed-precision callback it had; returns ``learn``.

    Checked against the device of the model at once (fp16 on the CPU raises
    :class:`PrecisionError`) and again when training starts.
    """
    from fastai.callback.fp16 import MixedPrecision

    p = check_precision(precision, _model_device(learn))
    for cb in [c for c in learn.cbs if isinstance(c, MixedPrecision)]:
        learn.remove_cb(cb)
    if p != "32":
        learn.add_cb(__getattr__("SparseMixedPrecision")(p))
    return learn
