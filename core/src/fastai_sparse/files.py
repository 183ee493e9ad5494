"""Safe file handling: input checks before work starts, output plans that never destroy an
input, atomic writes with the user's permissions.

Everything fastai-sparse writes for a user goes through :func:`atomic_path` (or
:func:`write_text` / :func:`write_bytes`):

* the data go to a temporary file in the destination folder, named
  ``.<name>.<pid>-<random>.tmp`` and created exclusively (``O_EXCL``), so no other run, not even
  a concurrent one on the same folder, ever touches it;
* the temporary file is created with mode ``0o666`` and the kernel applies the umask, so the
  result has the permissions any other program of the user would give it (``tempfile.mkstemp``
  creates ``0o600`` files, which a rename keeps: the reason this is not done with ``tempfile``);
* it is flushed to disk and renamed over the destination in one step; an exception, a
  ``KeyboardInterrupt`` or a full disk removes it, so a final name never holds half a file;
* with ``overwrite=False`` the rename is a hard link, which fails if the destination appeared
  meanwhile (another run wrote it), so even a race never replaces a file.

:func:`plan_outputs` maps inputs to output paths and refuses, before anything is written, an
output that is one of the inputs (by path, symbolic link or hard link), two inputs that would
write the same output, and an existing output unless ``overwrite=True``. Output names keep the
whole stem of their input: ``room.v1.ply`` -> ``room.v1.pred.ply``.

:func:`check_input_file` makes sure an input is a readable regular file, not empty, and starts
like the format its extension names (a PLY with ``ply``, weights and NPZ arrays with a zip or
pickle header, text formats mostly free of control bytes), so a FIFO, a device such as ``/dev/zero`` or a
folder is refused at once instead of hanging or filling the memory.

Nothing here needs more than the standard library: no library combines exclusive temporary
names, umask-respecting modes and no-replace renames, and the checks are a few ``stat`` calls.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from .errors import InputFileError, OutputConflictError, OutputExistsError

__all__ = [
    "MAGIC",
    "WEIGHTS_MAGIC",
    "atomic_path",
    "check_input_dir",
    "check_input_file",
    "check_outputs",
    "check_writable_folder",
    "output_name",
    "plan_outputs",
    "write_bytes",
    "write_text",
]

_ZIP = (b"PK\x03\x04", b"PK\x05\x06")
_PICKLE = (b"\x80",)
#: How a file written by ``torch.save`` starts: a zip archive, or a pickle (older format).
WEIGHTS_MAGIC = _ZIP + _PICKLE
#: Cheap format checks by extension: the first bytes a file of that kind starts with,
#: ``"text"`` for text formats (at most 10% control bytes in the first KiB), or
#: ``"safetensors"`` (an 8-byte header length, then the JSON header's ``{``).
MAGIC: dict[str, tuple[bytes, ...] | str] = {
    ".ply": (b"ply",),
    ".npz": _ZIP,
    ".pth": _ZIP + _PICKLE,
    ".pt": _ZIP + _PICKLE,
    ".safetensors": "safetensors",
    ".off": "text",
    ".obj": "text",
    ".txt": "text",
    ".pts": "text",
    ".seg": "text",
    ".csv": "text",
    ".json": "text",
}
_KIND_NAMES = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


# -- inputs --------------------------------------------------------------------------------
def _kind(mode: int) -> str:
    return _KIND_NAMES.get(stat.S_IFMT(mode), "not a regular file")


def check_input_file(
    path: str | os.PathLike,
    what: str = "input file",
    magic: dict[str, tuple[bytes, ...] | str] | None = None,
    allow_empty: bool = False,
    starts: tuple[bytes, ...] | None = None,
    allow_dir: bool = False,
) -> Path:
    """Return ``path`` as a Path if it is a readable, non-empty regular file in the format its
    extension names (see :data:`MAGIC`, or ``magic``); raise :class:`InputFileError` otherwise.
    ``starts``: the file must start with one of these, whatever its extension (e.g.
    :data:`WEIGHTS_MAGIC` for a weights file).

    Never blocks: a FIFO or a device is recognised by ``stat`` before it is opened.
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        hint = "check the path"
        if p.parent != p and not p.parent.exists():
            hint = f"check the path (the folder {str(p.parent)!r} does not exist either)"
        raise InputFileError(p, f"no such {what}", hint) from None
    except NotADirectoryError:
        raise InputFileError(p, f"no such {what} (a part of the path is a file)", "check the path") from None
    except PermissionError:
        raise InputFileError(
            p, f"cannot reach the {what} (permission denied)", "check the permissions of its folders"
        ) from None
    if stat.S_ISDIR(st.st_mode):
        if allow_dir:  # a reader that takes folders (e.g. a dataset's room folder)
            return check_input_dir(p, what)
        raise InputFileError(p, "is a folder, not a file", f"pass the {what} itself")
    if not stat.S_ISREG(st.st_mode):
        raise InputFileError(p, f"is {_kind(st.st_mode)}, not a regular file", "pass a regular file")
    try:
        with open(p, "rb") as f:
            head = f.read(1024)
    except PermissionError:
        raise InputFileError(
            p, f"cannot read the {what} (permission denied)", "check the file's permissions"
        ) from None
    except OSError as e:
        raise InputFileError(p, f"cannot read the {what} ({e.strerror or e})", "check the file") from None
    if not head and not allow_empty:
        raise InputFileError(p, f"the {what} is empty (0 bytes)", "pass a complete file")
    if head and starts is not None and not head.startswith(tuple(starts)):
        raise InputFileError(
            p,
            f"is not a {what} (it starts with {head[:8]!r})",
            f"check that you passed the {what} (a partial download?)",
        )
    expected = (magic if magic is not None else MAGIC).get(p.suffix.lower())
    if head and expected is not None:
        if expected == "text":
            binary = sum(b < 32 and b not in (9, 10, 12, 13) for b in head)
            if binary > len(head) // 10:  # a stray control byte is a damaged text file, not binary
                raise InputFileError(
                    p,
                    f"is binary, but a {p.suffix} file is text",
                    "check that the file is what its name says",
                )
        elif expected == "safetensors":
            if len(head) < 9 or head[8:9] != b"{":
                raise InputFileError(
                    p,
                    f"does not start like a .safetensors file (found {head[:10]!r})",
                    "check that the file is what its name says (a partial download?)",
                )
        elif not head.startswith(tuple(expected)):
            raise InputFileError(
                p,
                f"does not start like a {p.suffix} file (found {head[:8]!r})",
                "check that the file is what its name says (a partial download?)",
            )
    return p


def check_input_dir(path: str | os.PathLike, what: str = "folder") -> Path:
    """Return ``path`` if it is an existing, readable folder; raise :class:`InputFileError`."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(p, f"no such {what}", "check the path")
    if not p.is_dir():
        raise InputFileError(p, "is a file, not a folder", f"pass the {what}")
    if not os.access(p, os.R_OK | os.X_OK):
        raise InputFileError(p, f"cannot read the {what} (permission denied)", "check its permissions")
    return p


# -- output plans --------------------------------------------------------------------------
def output_name(src: str | os.PathLike, suffix: str) -> str:
    """``<src name without its last extension><suffix>``: the whole stem is kept, so
    ``room.v1.ply`` and ``room.v2.ply`` give ``room.v1.pred.ply`` and ``room.v2.pred.ply``."""
    return Path(src).stem + suffix


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def plan_outputs(
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike | None,
    suffix: str,
    overwrite: bool = False,
    protected: Iterable[str | os.PathLike] = (),
    option: str = "-o/--out",
) -> list[Path]:
    """One output path per input, checked (see :func:`check_outputs`) before anything is written.

    ``out`` None: next to each input, named :func:`output_name` (``suffix`` e.g. ``".pred.ply"``);
    ``out`` an existing folder, or several inputs: that folder (created when missing);
    otherwise ``out`` itself, for a single input. ``protected`` are more files no output may
    replace (e.g. the weights file). ``option`` names the option in messages.
    """
    srcs = [Path(p) for p in inputs]
    if out is None:
        dsts = [s.with_name(output_name(s, suffix)) for s in srcs]
    else:
        out = Path(out)
        several = len(srcs) > 1
        if out.is_dir():
            dsts = [out / output_name(s, suffix) for s in srcs]
        elif several and out.exists():
            raise OutputConflictError(
                out,
                f"is a file, but {len(srcs)} inputs need a folder for their outputs",
                f"pass a folder to {option}",
            )
        elif several and out.suffix and out.suffix.lower() == Path(suffix).suffix.lower():
            raise OutputConflictError(
                out,
                f"names a {out.suffix} file, but {len(srcs)} inputs need a folder for their outputs",
                f"pass a folder to {option}, or one input",
            )
        elif several:
            dsts = [out / output_name(s, suffix) for s in srcs]
        else:
            dsts = [out]
    check_outputs(dsts, [*srcs, *map(Path, protected)], overwrite=overwrite, sources=srcs, option=option)
    for folder in dict.fromkeys(d.parent for d in dsts):
        check_writable_folder(folder)
    return dsts


def check_writable_folder(folder: str | os.PathLike) -> Path:
    """Make sure files can be created in ``folder`` (or, when it does not exist yet, in its
    nearest existing ancestor, which must be a folder): an exclusive temporary file is created
    and removed, so the answer is right even for root and on read-only mounts."""
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise OutputConflictError(
            probe,
            f"is a file, so the folder {str(folder)!r} cannot be created",
            "choose another output path",
        )
    try:
        tmp, _ = _temp_path(probe / "probe")
    except OSError as e:
        raise type(e)(e.errno, f"cannot write in this folder ({e.strerror})", str(probe)) from None
    os.unlink(tmp)
    return folder


def check_outputs(
    outputs: Sequence[Path],
    inputs: Sequence[Path],
    overwrite: bool = False,
    sources: Sequence[Path] | None = None,
    option: str = "-o/--out",
) -> None:
    """Refuse outputs that would destroy an input or each other, or replace a file unasked.

    * an output that is an input (same path, a symbolic link to it or a hard link of it):
      :class:`OutputConflictError`, whatever ``overwrite`` says;
    * two outputs that are the same file (``sources[i]`` produced ``outputs[i]``): the same;
    * an existing folder where a file is to be written: the same;
    * an existing output: :class:`OutputExistsError` unless ``overwrite``.
    """
    sources = list(sources) if sources is not None else [None] * len(outputs)
    existing_inputs = [p for p in inputs if p.exists()]
    seen: dict[Path, Path | None] = {}
    for dst, src in zip(outputs, sources):
        for inp in existing_inputs:
            if _same_file(dst, inp):
                raise OutputConflictError(
                    dst,
                    f"the output would replace the input {str(inp)!r}",
                    f"choose another {option}" if option else "choose another output name",
                )
        key = dst.resolve()
        if key in seen:
            first = seen[key]
            raise OutputConflictError(
                dst,
                f"the inputs {str(first)!r} and {str(src)!r} would both write this output",
                "rename one of them or predict them in separate runs",
            )
        seen[key] = src
        if dst.is_dir():
            raise OutputConflictError(
                dst, "is a folder, so no file can be written there", "choose a file name"
            )
        if (dst.exists() or dst.is_symlink()) and not overwrite:
            raise OutputExistsError(
                dst, "the output already exists", "pass --overwrite to replace it, or choose another name"
            )


# -- atomic writes -------------------------------------------------------------------------
def _temp_path(path: Path) -> tuple[Path, int]:
    """Create ``.<name>.<pid>-<random>.tmp`` next to ``path`` exclusively; (path, its mode)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        except FileExistsError:  # pragma: no cover - 32 random bits clashing
            continue
        except OSError as e:  # name the file the user asked for, not the temporary one
            raise type(e)(e.errno, e.strerror, str(path)) from None
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
        return tmp, mode
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))  # pragma: no cover


def _fsync(path: Path) -> None:
    with suppress(OSError), open(path, "rb") as f:
        os.fsync(f.fileno())


def _publish(tmp: Path, path: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails if path exists, even if it appeared a moment ago
    except FileExistsError:
        raise OutputExistsError(
            path, "the output already exists", "pass --overwrite to replace it, or choose another name"
        ) from None
    except OSError:  # no hard links on this file system: check, then rename
        if path.exists() or path.is_symlink():
            raise OutputExistsError(
                path, "the output already exists", "pass --overwrite to replace it, or choose another name"
            ) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


@contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True, durable: bool = True) -> Iterator[Path]:
    """Yield a fresh temporary path next to ``path``; when the block ends without an exception,
    move it to ``path`` in one step (see the module docstring).

    The block writes the temporary path by name (``np.savetxt(tmp, ...)``, ``ply.write(tmp)``)
    or opens it; its permissions are those of a new file of the user (umask). With
    ``overwrite=False`` an existing ``path`` raises :class:`OutputExistsError` and stays as it
    was. ``durable`` flushes the data to disk before the rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, mode = _temp_path(path)
    try:
        try:
            yield tmp
        except OSError as e:  # name the file the user asked for, not the temporary one
            if e.errno is not None and e.filename is not None and Path(e.filename) == tmp:
                raise type(e)(e.errno, e.strerror, str(path)) from e
            raise
        if stat.S_IMODE(tmp.stat().st_mode) != mode:  # a writer that re-created the file
            os.chmod(tmp, mode)
        if durable:
            _fsync(tmp)
        _publish(tmp, path, overwrite)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(tmp)


def write_text(path: str | os.PathLike, text: str, overwrite: bool = True, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`); returns the path."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); returns the path."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)
