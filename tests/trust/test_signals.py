"""Ctrl-C and SIGTERM sent to a real ``fastai-sparse`` process while it writes a file.

Each test starts the command in its own Python process through a small launcher that holds the
process still at the worst moment: the first temporary file (``.NAME.PID-XXXX.tmp``) is fully
written and about to be renamed to its final name. The launcher does this by wrapping
``os.fsync`` (called on every temporary file before the rename); it prints one ``paused`` line
and sleeps. The test then sends the signal, as a user's Ctrl-C or a job scheduler would, and
checks what the user sees and what is left on disk:

* the exit code is 130 (SIGINT) or 143 (SIGTERM);
* stderr holds exactly one line, the interruption's, and no traceback;
* no temporary file is left, and the file being written has no final name (nothing
  half-written); the inputs are unchanged; a new run finishes the job.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .builders import rooms_weights, write_room

#: The launcher: pause in the first fsync of a temporary file, then run the CLI as a user would.
LAUNCHER = textwrap.dedent(
    """
    import os, sys, time

    _fsync = os.fsync
    paused = []

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        _fsync(fd)
        if name.endswith(".tmp") and not paused:
            paused.append(name)
            print("paused", name, flush=True)
            time.sleep(120)

    os.fsync = fsync
    from fastai_sparse.cli import run

    run()
    """
)

MESSAGES = {
    "SIGINT": (130, "Interrupted: files being written were discarded; finished ones are kept."),
    "SIGTERM": (143, "Terminated: files being written were discarded; finished ones are kept."),
}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name file descriptors"),
]


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("FASTAI_SPARSE_DEBUG", None)
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _interrupt(proc: subprocess.Popen, sig: str) -> tuple[str, str, Path]:
    """Wait for the pause, send ``sig``; (stdout after the pause line, stderr, temporary file)."""
    line = proc.stdout.readline()  # blocks until the launcher paused (or the process ended)
    if not line.startswith("paused "):
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"the command did not reach a write: {line}{out}\n{err}")
    tmp = Path(line.split(" ", 1)[1].strip())
    assert tmp.is_file() and tmp.name.endswith(".tmp")
    os.kill(proc.pid, getattr(signal, sig))
    out, err = proc.communicate(timeout=60)
    return out, err, tmp


def _check_message(proc: subprocess.Popen, err: str, sig: str) -> None:
    code, message = MESSAGES[sig]
    assert proc.returncode == code, err
    assert [ln for ln in err.splitlines() if ln.strip()] == [message], err


def _final_name(tmp: Path) -> Path:
    """``.NAME.PID-XXXX.tmp`` -> ``NAME``."""
    return tmp.with_name(tmp.name[1:].rsplit(".", 2)[0])


def _temporaries(folder: Path) -> list[Path]:
    return sorted(folder.rglob(".*.tmp"))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_predict_interrupted_while_writing(tmp_path, sig):
    weights = rooms_weights(tmp_path)["weights"]
    inputs = [write_room(tmp_path / "in" / f"room{i}.ply") for i in range(3)]
    before = {p: _digest(p) for p in inputs}
    out = tmp_path / "out"
    args = ["predict", "synthetic-rooms-seg", "--model", weights, *map(str, inputs), "-o", str(out)]
    proc = _start(args, tmp_path)
    _, err, tmp = _interrupt(proc, sig)
    _check_message(proc, err, sig)
    assert _final_name(tmp) == out / "room0.pred.ply"
    assert _temporaries(tmp_path) == []
    assert not (out / "room0.pred.ply").exists()  # the file being written has no final name
    assert {p: _digest(p) for p in inputs} == before

    again = subprocess.run(
        [sys.executable, "-m", "fastai_sparse.cli", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"room{i}.pred.ply" for i in range(3)]


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_prepare_interrupted_while_writing(tmp_path, sig):
    pytest.importorskip("fastai_sparse_scannet")
    from fastai_sparse_scannet.fixtures import make_fixture

    root = make_fixture(tmp_path / "root", vertices=800)
    sources = sorted(p for p in root.rglob("*") if p.is_file())
    before = {p: _digest(p) for p in sources}
    cache = tmp_path / "cache"
    args = ["prepare", "scannet-seg", "--root", str(root), "--out", str(cache), "--jobs", "1", "--quiet"]
    proc = _start(args, tmp_path)
    _, err, tmp = _interrupt(proc, sig)
    _check_message(proc, err, sig)
    assert tmp.parent.is_relative_to(cache)
    assert _temporaries(tmp_path) == []
    final = _final_name(tmp)
    assert not final.exists(), final  # the file being written has no final name
    assert {p: _digest(p) for p in sources} == before
    assert not (cache / ".prepare.lock").exists() or _lock_is_free(cache)

    again = subprocess.run(
        [sys.executable, "-m", "fastai_sparse.cli", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert final.is_file()
    assert _temporaries(tmp_path) == []


def _lock_is_free(folder: Path) -> bool:
    """The cache lock can be taken at once (the interrupted run released it)."""
    from fastai_sparse.cache import folder_lock

    t = time.time()
    with folder_lock(folder, wait=False):
        pass
    return time.time() - t < 5


def test_demo_interrupted_while_writing_its_report(tmp_path):
    """Ctrl-C while the demo writes its first report file: exit 130, one line, no temporary
    file, that file has no final name, and the same command run again is not refused."""
    out = tmp_path / "report"
    args = ["demo", "--quick", "--quiet", "--out", str(out)]
    proc = _start(args, tmp_path)
    _, err, tmp = _interrupt(proc, "SIGINT")
    _check_message(proc, err, "SIGINT")
    assert tmp.parent.is_relative_to(out)
    assert _temporaries(tmp_path) == []
    assert not _final_name(tmp).exists()

    again = subprocess.run(
        [sys.executable, "-m", "fastai_sparse.cli", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=900,
    )
    assert again.returncode == 0, again.stderr
    assert (out / "index.html").is_file() and _temporaries(tmp_path) == []
