"""Mixed-precision training (``--precision``): bf16 on the CPU follows the float32 loss curve,
really computes in bfloat16, is recorded in the run's config; fp16 on the CPU is an error."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from fastai_sparse.cli import main
from fastai_sparse.errors import ConfigError
from fastai_sparse.precision import PrecisionError, check_precision

from .conftest import SMALL_ROOMS

#: bf16 keeps 8 significant bits; over 6 optimizer steps on the rooms task the per-batch losses
#: of a bf16 run stay within 0.1 % of the float32 run's (measured: at most 5e-4 relative), so
#: 1 % leaves room for other CPUs and BLAS builds while a wrong reduced-precision path (e.g.
#: bfloat16 sums across blocks, or a float32 run mislabelled bf16) fails.
LOSS_RTOL = 1e-2


def _recorder():
    from fastai.callback.core import Callback

    class Record(Callback):
        """Raw training losses per batch and the dtypes of the model's outputs."""

        def __init__(self):
            self.losses, self.dtypes = [], set()

        def before_fit(self):
            self.hook = self.learn.model.register_forward_hook(
                lambda m, i, o: self.dtypes.add(str(getattr(o, "dtype", type(o).__name__)))
            )

        def after_loss(self):
            if self.training:
                self.losses.append(float(self.learn.loss))

        def after_fit(self):
            self.hook.remove()

    return Record()


@pytest.mark.slow
def test_bf16_loss_curve_follows_float32(small_run):
    curves = {}
    for precision in ("32", "bf16"):
        rec = _recorder()
        result = small_run(precision, overrides={"epochs": 3}, precision=precision, cbs=[rec])
        curves[precision] = np.array(rec.losses)
        assert rec.dtypes == {"torch.float32" if precision == "32" else "torch.bfloat16"}
        assert result["config"]["precision"] == precision
        out = result["out"]
        assert json.loads((out / "config.json").read_text())["precision"] == precision
        assert json.loads((out / "run.json").read_text())["precision"] == precision
    a, b = curves["32"], curves["bf16"]
    assert len(a) == len(b) == 6
    assert not np.array_equal(a, b)  # the bf16 run did not silently run in float32
    np.testing.assert_allclose(b, a, rtol=LOSS_RTOL)
    assert b[-1] < b[0]  # and it learns


def test_fp16_on_cpu_is_an_error_before_anything_is_written(small_run, tmp_path):
    with pytest.raises(PrecisionError, match=r"fp16 needs a CUDA GPU.*use --precision bf16"):
        small_run("fp16", precision="fp16")
    assert not (tmp_path / "fp16").exists()
    res = CliRunner().invoke(
        main, ["train", "synthetic-rooms-seg", "--out", str(tmp_path / "cli"), "--precision", "fp16"]
    )
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == [
        "Error: precision fp16 needs a CUDA GPU (float16 autocast with loss scaling); this run is on cpu: "
        "use --precision bf16 (or 32)"
    ]
    assert not (tmp_path / "cli").exists()


def test_precision_values_are_checked():
    assert check_precision(32, "cpu") == "32" and check_precision("BF16", "cpu") == "bf16"
    with pytest.raises(PrecisionError, match="precision 'fp8': expected one of 32, bf16, fp16"):
        check_precision("fp8", "cpu")
    from fastai_sparse import get_task
    from fastai_sparse.config import apply_overrides

    cfg = get_task("synthetic-rooms-seg").config()
    assert cfg["precision"] == "32"
    assert apply_overrides(cfg, ["precision=bf16"])["precision"] == "bf16"
    with pytest.raises(ConfigError, match=r'^precision: expected one of 32, bf16, fp16, got "half"'):
        apply_overrides(cfg, ["precision=half"])
    res = CliRunner().invoke(main, ["train", "synthetic-rooms-seg", "--precision", "half"])
    assert res.exit_code == 2 and "'half' is not one of '32', 'bf16', 'fp16'" in res.output


@pytest.mark.slow
def test_train_config_reruns_precision_and_loggers(tmp_path):
    """``train --config`` of a bf16 run logged to csv and TensorBoard trains in bf16 and logs to
    both again, to the same weights bit for bit (CPU, one thread)."""
    pytest.importorskip(
        "tensorboard", reason='tensorboard not installed: pip install "fastai-sparse[tensorboard]"'
    )
    import warnings

    import torch
    from safetensors.torch import load_file

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    sets = [w for k, v in SMALL_ROOMS.items() for w in ("--set", f"{k}={v}")]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            first = CliRunner().invoke(
                main,
                [
                    *(
                        "train",
                        "synthetic-rooms-seg",
                        "--out",
                        str(tmp_path / "a"),
                        *sets,
                        "--set",
                        "epochs=1",
                    ),
                    *("--precision", "bf16", "--log", "csv,tensorboard", "--quiet", "--threads", "1"),
                ],
            )
            assert first.exit_code == 0, first.output
            again = CliRunner().invoke(
                main,
                [
                    *("train", "--config", str(tmp_path / "a" / "config.json"), "--out", str(tmp_path / "b")),
                    *("--quiet", "--threads", "1"),
                ],
            )
            assert again.exit_code == 0, again.output
    finally:
        torch.set_num_threads(before)
    for run in ("a", "b"):
        cfg = json.loads((tmp_path / run / "config.json").read_text())
        assert (cfg["precision"], cfg["loggers"]) == ("bf16", ["csv", "tensorboard"])
        assert json.loads((tmp_path / run / "run.json").read_text())["precision"] == "bf16"
        assert any((tmp_path / run / "tensorboard").glob("events.out.tfevents.*"))
        assert (tmp_path / run / "history.csv").is_file()
    a = load_file(tmp_path / "a" / "model" / "model.safetensors")
    b = load_file(tmp_path / "b" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
