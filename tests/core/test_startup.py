"""Start-up stays light: importing the package and `fastai-sparse --help` load neither torch nor
fastai, with every installed plugin (plugins must import heavy modules lazily)."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
{code}
heavy = sorted(m for m in ("torch", "fastai", "scipy", "plotly", "matplotlib") if m in sys.modules)
print("HEAVY:" + ",".join(heavy))
"""


def run(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", CHECK.format(code=code)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("HEAVY:")[-1].strip()


def test_import_is_light():
    assert run("import fastai_sparse; fastai_sparse.hookimpl; fastai_sparse.Factory") == ""


def test_help_is_light_with_every_installed_plugin():
    code = (
        "from fastai_sparse.cli import main\n"
        "try:\n    main(['--help'], prog_name='fastai-sparse')\nexcept SystemExit:\n    pass"
    )
    assert run(code) == ""


def test_training_errors_live_in_errors_without_fastai():
    code = (
        "from fastai_sparse.errors import CheckpointError, EmptyDatasetError, NonFiniteLossError\n"
        "from fastai_sparse import CheckpointError as C2, NonFiniteLossError as N2, EmptyDatasetError as E2\n"
        "assert (C2, N2, E2) == (CheckpointError, NonFiniteLossError, EmptyDatasetError)"
    )
    assert run(code) == ""


def test_training_errors_keep_their_learner_import_path():
    from fastai_sparse import errors, learner

    for name in ("CheckpointError", "EmptyDatasetError", "NonFiniteLossError"):
        assert getattr(learner, name) is getattr(errors, name)
        assert issubclass(getattr(errors, name), errors.FastaiSparseError)
