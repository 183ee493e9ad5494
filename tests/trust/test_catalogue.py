"""The catalogue of bad inputs: one row per way a careless or hostile user can get it wrong.

Every row runs ``fastai-sparse ARGS`` in this process and checks:

* the exit code (1: an error raised on purpose, 2: a usage error found by click, 130: Ctrl-C,
  0: the command works and only warns);
* ``fragment`` appears in the output (stderr and stdout), and an error is reported on an
  ``Error: ...`` line, never with a traceback;
* no temporary file (``.*.tmp``) is left anywhere in the test folder;
* ``keeps``: these files are byte for byte what they were before the command (data loss);
* ``absent``: these paths do not exist afterwards (nothing half-written, no side effect);
* ``present``: these files exist afterwards (outputs that must not clobber each other).

To add a row, append a :class:`Row` to :data:`ROWS` (any module may extend it, but keep this
one table the place to look):

    Row("predict-empty-input", "predict synthetic-rooms-seg --model {weights} {empty_ply}",
        "is empty", 2, build=(rooms_weights, empty_files))

``args`` is split like a shell line, then each word is formatted with the names the
``build`` functions return (plus ``{tmp}``, the test folder). A builder is a small named
function ``tmp -> {name: path}`` (see ``builders.py``); builders run in order, so one may use
the files of an earlier one. ``patch(monkeypatch, names)`` can replace a function before the
command runs (used to interrupt a write half-way), ``env`` sets environment variables for the
command, ``needs`` names a module to import or skip the row.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from fastai_sparse import cli as cli_mod

from .builders import (
    a_file,
    bad_weights,
    config_file,
    config_not_json,
    empty_files,
    evil_pickle,
    evil_torch_file,
    existing_output,
    fifo,
    folder_named_ply,
    header_only_ply,
    input_hardlink,
    input_symlink,
    kitti_scans,
    mixed_model_folder,
    not_a_ply,
    parts_weights,
    pred_named_input,
    room,
    rooms_in_two_folders,
    rooms_legacy_weights,
    rooms_model_folder,
    rooms_weights,
    s3dis_room,
    shape_file,
    shapes_weights,
    truncated_ply,
    unknown_extension,
    unreadable,
    user_folder,
    versioned_rooms,
)


def finished_run(tmp: Path) -> dict:
    """``{run}``: a run folder holding a finished 2-epoch run (``{run_json}``, ``{run_model}``:
    its ``model/model.safetensors``)."""
    run = tmp / "run"
    (run / "model").mkdir(parents=True)
    (run / "run.json").write_text('{"task": "synthetic-rooms-seg", "epochs": 2, "finished_epochs": 2}')
    model = run / "model" / "model.safetensors"
    model.write_bytes(b"\x10\0\0\0\0\0\0\0{} two hours of training")
    return {"run": str(run), "run_json": str(run / "run.json"), "run_model": str(model)}


@dataclass(frozen=True)
class Row:
    id: str
    args: str
    fragment: str
    code: int = 1
    build: tuple[Callable[[Path], dict], ...] = ()
    keeps: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    present: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    patch: Callable | None = None
    needs: str | None = None


PREDICT = "predict synthetic-rooms-seg --model {weights}"
TRAIN_CFG = "train --out {tmp}/new --quiet --config"
W = (rooms_weights,)
R = (rooms_weights, room)


def _interrupt_ply_write(monkeypatch, names):
    """io.write_ply writes half a file, then the user presses Ctrl-C."""
    from fastai_sparse import io

    def half_then_interrupt(path, *args, **kwargs):
        Path(path).write_bytes(b"ply\nformat binary_little_endian 1.0\n" + b"\0" * 1000)
        raise KeyboardInterrupt

    monkeypatch.setattr(io, "write_ply", half_then_interrupt)


def _disk_full(monkeypatch, names):
    """The disk fills up while the output is written."""
    import errno

    from fastai_sparse import io

    def no_space(path, *args, **kwargs):
        Path(path).write_bytes(b"ply\n" + b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(io, "write_ply", no_space)


ROWS: list[Row] = [
    # -- names: tasks, commands, options -----------------------------------------------------
    Row("unknown-task", f"{PREDICT} {{room}}".replace("synthetic-rooms-seg", "no-such-task"),
        "unknown task 'no-such-task'", 1, R),
    Row("task-typo-suggests", f"{PREDICT} {{room}}".replace("synthetic-rooms-seg", "synthetic-room-seg"),
        "did you mean 'synthetic-rooms-seg'", 1, R),
    Row("train-unknown-task", "train synthetic-rooms-sg --out {tmp}/run", "unknown task 'synthetic-rooms-sg'"),
    Row("prepare-nothing-to-prepare", "prepare synthetic-rooms-seg --root {tmp}", "has nothing to prepare", 2),
    Row("unknown-command", "predcit", "No such command 'predcit'", 2),
    Row("unknown-option", "tasks --jsn", "No such option '--jsn'. Did you mean '--json'?", 2),
    Row("unknown-kind", "list widgets", "'widgets' is not one of", 2),
    Row("predict-without-inputs", "predict synthetic-rooms-seg --model {weights}", "Missing argument 'INPUTS...'", 2, W),
    Row("predict-without-model", "predict synthetic-rooms-seg {room}", "Missing option '--model'", 2, (room,)),
    Row("predict-unknown-format", f"{PREDICT} {{room}} --format xyz", "'xyz' is not a format of task", 2, R),
    # -- inputs that are not what they claim ---------------------------------------------------
    Row("input-missing", f"{PREDICT} {{tmp}}/nope.ply", "nope.ply: no such input file; check the path", 2, W),
    Row("input-missing-folder", f"{PREDICT} {{tmp}}/scans/nope.ply", "does not exist either", 2, W),
    Row("input-is-folder", f"{PREDICT} {{folder}}", "scans.ply: is a folder, not a file", 1, (rooms_weights, folder_named_ply)),
    Row("input-is-fifo", f"{PREDICT} {{fifo}}", "pipe.ply: is a FIFO (named pipe), not a regular file", 2, (rooms_weights, fifo)),
    Row("input-is-dev-zero", f"{PREDICT} /dev/zero", "/dev/zero: is a character device, not a regular file", 2, W),
    Row("input-is-dev-null", f"{PREDICT} /dev/null", "/dev/null: is a character device", 2, W),
    Row("input-empty", f"{PREDICT} {{empty_ply}}", "empty.ply: the input file is empty (0 bytes)", 2, (rooms_weights, empty_files)),
    Row("input-unreadable", f"{PREDICT} {{unreadable}}", "permission denied", 2, (rooms_weights, unreadable)),
    Row("input-csv-named-ply", f"{PREDICT} {{csv_ply}}", "does not start like a .ply file", 2, (rooms_weights, not_a_ply)),
    Row("input-binary-named-txt", f"{PREDICT} {{junk_txt}}", "is binary, but a .txt file is text", 2, (rooms_weights, not_a_ply)),
    Row("input-truncated-ply", f"{PREDICT} {{truncated}}", "truncated.ply: field 'vertex': the header declares 400 vertex rows", 1, (rooms_weights, truncated_ply)),
    Row("input-header-only-ply", f"{PREDICT} {{header_only}}", "header.ply: field 'vertex': the header declares 10 vertex rows", 1, (rooms_weights, header_only_ply)),
    Row("input-unknown-extension", f"{PREDICT} {{xyz}}", "cloud.xyz", 1, (rooms_weights, unknown_extension)),
    Row("input-under-a-file", f"{PREDICT} {{room}}/x.ply", "a part of the path is a file", 2, R),
    Row("input-broken-symlink", f"{PREDICT} {{tmp}}/dangling.ply", "no such input file", 2,
        (rooms_weights, lambda t: (t / "dangling.ply").symlink_to(t / "gone.ply") or {})),
    Row("input-symlink-to-fifo", f"{PREDICT} {{tmp}}/l.ply", "is a FIFO", 2,
        (rooms_weights, fifo, lambda t: (t / "l.ply").symlink_to(t / "pipe.ply") or {})),
    # -- models: folders, weights files, Hub ids ---------------------------------------------
    Row("model-missing", "predict synthetic-rooms-seg --model {tmp}/nope.pth {room}",
        "nope.pth: no such model folder or weights file (nor a Hugging Face Hub id owner/name)", 2, (room,)),
    Row("model-missing-no-suffix", "predict synthetic-rooms-seg {room} -o {tmp}/out.ply --model {tmp}/nope",
        "nope: no such model folder or weights file", 2, (room,), absent=("{tmp}/out.ply",)),
    Row("model-missing-relative", "predict synthetic-rooms-seg --model runs/x/model {room}",
        "runs/x/model: no such model folder or weights file", 2, (room,)),
    Row("model-folder-without-weights", "predict synthetic-rooms-seg --model {tmp} {room}",
        "a folder without model.safetensors", 1, (room,)),
    Row("model-run-folder-named", "predict synthetic-rooms-seg --model {tmp} {room}",
        "it looks like a run folder: its model is", 1, (room, rooms_model_folder), absent=("{tmp}/room.pred.ply",)),
    Row("model-folder-mixing-two-exports", "predict synthetic-rooms-seg {room} -o {tmp}/out.ply --model {model_dir}",
        "config.json and model.safetensors disagree on 'task'", 1, (room, mixed_model_folder), absent=("{tmp}/out.ply",)),
    Row("model-of-another-task", "predict synthetic-shapes-cls {room} -o {tmp}/out.json --model {model_dir}",
        "trained for task 'synthetic-rooms-seg', not 'synthetic-shapes-cls'", 1, (room, rooms_model_folder),
        absent=("{tmp}/out.json",)),
    Row("model-folder-works", "predict synthetic-rooms-seg --model {model_dir} {room}", "room.pred.ply", 0,
        (room, rooms_model_folder), keeps=("model_weights", "model_config"), present=("{tmp}/room.pred.ply",)),
    Row("model-legacy-pth-works", "predict synthetic-rooms-seg --model {legacy} {room}", "room.pred.ply", 0,
        (room, rooms_legacy_weights), keeps=("legacy",), present=("{tmp}/room.pred.ply",)),
    Row("model-hub-id-not-cached-offline", "predict synthetic-rooms-seg --model nobody-fs/no-such-model {room}",
        "nobody-fs/no-such-model: no such local file or folder", 1, (room,), env={"HF_HUB_OFFLINE": "1"},
        needs="huggingface_hub"),
    Row("output-is-the-model-folder-weights", "predict synthetic-rooms-seg --model {model_dir} {room} -o {model_weights} --overwrite",
        "would replace the input", 1, (room, rooms_model_folder), keeps=("model_weights",)),
    Row("weights-empty", "predict synthetic-rooms-seg --model {empty_pth} {room}", "the weights file is empty", 2, (room, empty_files)),
    Row("weights-is-a-ply", "predict synthetic-rooms-seg --model {room} {room}", "room.ply: is not a weights file (it starts with b'ply", 2, (room,)),
    Row("weights-fifo", "predict synthetic-rooms-seg --model {fifo} {room}", "is a FIFO", 2, (room, fifo)),
    Row("weights-fifo-named-safetensors", "predict synthetic-rooms-seg --model {tmp}/p.safetensors {room}", "is a FIFO", 2,
        (room, lambda t: os.mkfifo(t / "p.safetensors") or {})),
    Row("weights-truncated", "predict synthetic-rooms-seg --model {truncated_pth} {room}", "truncated.pth: not a readable weights file", 1, (room, bad_weights)),
    Row("weights-truncated-safetensors", "predict synthetic-rooms-seg --model {truncated_st} {room}",
        "truncated.safetensors: not a readable safetensors file", 1, (room, bad_weights), absent=("{tmp}/room.pred.ply",)),
    Row("weights-safetensors-of-something-else", "predict synthetic-rooms-seg --model {bare_st} {room}",
        "a safetensors file without fastai-sparse metadata", 1, (room, bad_weights), absent=("{tmp}/room.pred.ply",)),
    Row("weights-other-object", "predict synthetic-rooms-seg --model {dict_pth} {room}", "expected a fastai-sparse weights file", 1, (room, bad_weights)),
    Row("weights-random-bytes", "predict synthetic-rooms-seg --model {random_bin} {room}", "random.bin: is not a weights file", 2, (room, bad_weights)),
    Row("weights-crafted-export-pkl-never-runs", "predict synthetic-rooms-seg {room} -o {tmp}/out.ply --model {evil_pkl}",
        "refused: the file holds pickled Python objects", 1, (room, evil_pickle), absent=("{marker}", "{tmp}/out.ply")),
    Row("weights-crafted-torch-file-never-runs", "predict synthetic-rooms-seg {room} -o {tmp}/out.ply --model {evil_zip}",
        "loading it could run code", 1, (room, evil_torch_file), absent=("{marker}", "{tmp}/out.ply")),
    Row("weights-run-no-code", "predict synthetic-rooms-seg --model {evil_pth} {room}",
        "evil.pth: refused: the file holds pickled Python objects, not only tensors (it asks for", 1,
        (room, bad_weights), absent=("evil_marker",)),
    Row("weights-of-another-task", "predict synthetic-rooms-seg --model {shapes_weights} {room}",
        "trained for task 'synthetic-shapes-cls', not 'synthetic-rooms-seg'", 1, (room, shapes_weights)),
    # -- outputs never destroy inputs or each other --------------------------------------------
    Row("output-is-the-input", f"{PREDICT} {{room}} -o {{room}}", "room.ply: the output would replace the input", 1, R, keeps=("room",)),
    Row("output-is-the-input-even-with-overwrite", f"{PREDICT} {{room}} -o {{room}} --overwrite",
        "would replace the input", 1, R, keeps=("room",)),
    Row("output-is-the-weights", f"{PREDICT} {{room}} -o {{weights}} --overwrite", "would replace the input", 1, R, keeps=("weights",)),
    Row("output-symlink-to-input", f"{PREDICT} {{room}} -o {{link}} --overwrite", "would replace the input", 1,
        (*R, input_symlink), keeps=("room",)),
    Row("output-hardlink-of-input", f"{PREDICT} {{room}} -o {{hard}} --overwrite", "would replace the input", 1,
        (*R, input_hardlink), keeps=("room", "hard")),
    Row("input-named-pred-kept", f"{PREDICT} {{scan_pred}}", "scan.pred.pred.ply", 0,
        (rooms_weights, pred_named_input), keeps=("scan_pred",), present=("{tmp}/scan.pred.pred.ply",)),
    Row("default-output-is-another-input", f"{PREDICT} {{scan}} {{scan_pred}}", "scan.pred.ply: the output would replace the input", 1,
        (rooms_weights, pred_named_input), keeps=("scan", "scan_pred"), absent=("{tmp}/scan.pred.pred.ply",)),
    Row("versions-keep-their-stem", f"{PREDICT} {{v1}} {{v2}} {{v3}} -o {{tmp}}/preds", "room.v3.pred.ply", 0,
        (rooms_weights, versioned_rooms),
        present=("{tmp}/preds/room.v1.pred.ply", "{tmp}/preds/room.v2.pred.ply", "{tmp}/preds/room.v3.pred.ply")),
    Row("same-name-two-folders", f"{PREDICT} {{a}} {{b}} -o {{tmp}}/preds", "would both write this output", 1,
        (rooms_weights, rooms_in_two_folders), absent=("{tmp}/preds/room.pred.ply",)),
    Row("same-input-twice", f"{PREDICT} {{room}} {{room}}", "would both write this output", 1, R, absent=("{tmp}/room.pred.ply",)),
    Row("existing-output-refused", f"{PREDICT} {{room}} -o {{existing}}",
        "old.ply: the output already exists; pass --overwrite to replace it", 1, (*R, existing_output), keeps=("existing",)),
    Row("existing-default-output-refused", f"{PREDICT} {{room}}", "room.pred.ply: the output already exists", 1,
        (*R, lambda t: (t / "room.pred.ply").write_text("earlier\n") and {"earlier": str(t / "room.pred.ply")}),
        keeps=("earlier",)),
    Row("existing-output-overwrite", f"{PREDICT} {{room}} -o {{existing}} --overwrite", "old.ply", 0, (*R, existing_output)),
    Row("output-file-for-several-inputs", f"{PREDICT} {{v1}} {{v2}} -o {{existing}}", "is a file, but 2 inputs need a folder", 1,
        (rooms_weights, versioned_rooms, existing_output), keeps=("existing",)),
    Row("output-ply-name-for-several-inputs", f"{PREDICT} {{v1}} {{v2}} -o {{tmp}}/out.ply", "names a .ply file, but 2 inputs", 1,
        (rooms_weights, versioned_rooms), absent=("{tmp}/out.ply",)),
    Row("output-name-and-format-disagree", f"{PREDICT} {{room}} -o {{tmp}}/out.txt --format ply", "the name says .txt but the format is ply", 1,
        R, absent=("{tmp}/out.txt",)),
    Row("output-is-a-folder", f"{PREDICT} {{room}} -o {{tmp}}/preds",
        "room.pred.ply: is a folder, so no file can be written there", 1,
        (*R, lambda t: (t / "preds" / "room.pred.ply").mkdir(parents=True) or {})),
    Row("output-under-a-file", f"{PREDICT} {{room}} -o {{file}}/out.ply", "notes.txt: is a file, so the folder", 1, (*R, a_file)),
    Row("output-unwritable-folder", f"{PREDICT} {{room}} -o /sys/out.ply", "/sys: cannot write in this folder", 1, R),
    Row("per-sample-task-as-ply", "predict synthetic-shapes-cls --model {shapes_weights} {room} -o {tmp}/shape.ply",
        "predicts one value per sample: use --format json", 1, (room, shapes_weights), absent=("{tmp}/shape.ply",)),
    # -- interruptions and full disks ------------------------------------------------------------
    Row("ctrl-c-while-writing", f"{PREDICT} {{room}}", "Interrupted", 130, R, absent=("{tmp}/room.pred.ply",),
        patch=_interrupt_ply_write),
    Row("ctrl-c-while-overwriting-keeps-old", f"{PREDICT} {{room}} -o {{existing}} --overwrite", "Interrupted", 130,
        (*R, existing_output), keeps=("existing",), patch=_interrupt_ply_write),
    Row("disk-full-while-writing", f"{PREDICT} {{room}}", "room.pred.ply: no space left on device; free some space", 1, R,
        absent=("{tmp}/room.pred.ply",), patch=_disk_full),
    # -- numbers outside their meaning -----------------------------------------------------------
    Row("tta-zero", f"{PREDICT} {{room}} --tta 0", "Invalid value for '--tta'", 2, R),
    Row("tta-negative", f"{PREDICT} {{room}} --tta -1", "Invalid value for '--tta'", 2, R),
    Row("tta-not-a-number", f"{PREDICT} {{room}} --tta two", "'two' is not a valid integer", 2, R),
    Row("train-epochs-zero", "train synthetic-rooms-seg --epochs 0 --out {tmp}/run", "Invalid value for '--epochs'", 2, absent=("{tmp}/run",)),
    Row("train-epochs-zero-lr-zero", "train synthetic-rooms-seg --epochs 0 --lr 0 --out {tmp}/run", "Invalid value for", 2, absent=("{tmp}/run",)),
    Row("train-lr-zero", "train synthetic-rooms-seg --lr 0 --out {tmp}/run", "Invalid value for '--lr': '0' must be a finite number greater than 0", 2),
    Row("train-lr-negative", "train synthetic-rooms-seg --lr -1e-3 --out {tmp}/run", "Invalid value for '--lr'", 2),
    Row("train-lr-nan", "train synthetic-rooms-seg --lr nan --out {tmp}/run", "must be a finite number", 2),
    Row("train-lr-inf", "train synthetic-rooms-seg --lr inf --out {tmp}/run", "must be a finite number", 2),
    Row("train-bs-zero", "train synthetic-rooms-seg --bs 0 --out {tmp}/run", "Invalid value for '--bs'", 2),
    Row("train-workers-negative", "train synthetic-rooms-seg --workers -1 --out {tmp}/run", "Invalid value for '--workers'", 2),
    Row("train-seed-negative", "train synthetic-rooms-seg --seed -1 --out {tmp}/run", "Invalid value for '--seed'", 2),
    Row("train-root-missing", "train synthetic-rooms-seg --root {tmp}/data --out {tmp}/run", "data: no such dataset folder", 2),
    Row("train-root-is-a-file", "train synthetic-rooms-seg --root {file} --out {tmp}/run", "notes.txt: is a file, not a folder", 2, (a_file,)),
    Row("train-set-epochs-zero", "train synthetic-rooms-seg --set epochs=0 --out {tmp}/run",
        "epochs: must be at least 1, got 0", 1, absent=("{tmp}/run",)),
    Row("train-set-lr-zero", "train synthetic-rooms-seg --set lr=0 --out {tmp}/run",
        "lr: must be > 0, got 0", 1, absent=("{tmp}/run",)),
    Row("train-config-lr-zero", "train --config {cfg} --out {tmp}/run", "cfg.json: lr: must be > 0, got 0.0", 1,
        (lambda t: config_file(t, change=lambda c: c.update(lr=0.0)),), absent=("{tmp}/run",)),
    Row("train-config-is-a-fifo", "train --config {fifo} --out {tmp}/run", "pipe.ply: is a FIFO", 2, (fifo,), absent=("{tmp}/run",)),
    Row("train-config-unknown-key", f"{TRAIN_CFG} {{unknown_key}}", "model_kwargs.mm: unknown key; did you mean 'm'?", 1,
        (lambda t: config_file(t, "unknown_key.json", lambda c: c["model_kwargs"].update(mm=3)),), absent=("{tmp}/new",)),
    Row("train-config-wrong-type", f"{TRAIN_CFG} {{wrong_type}}", "model_kwargs.m: expected an integer, got \"sixteen\"", 1,
        (lambda t: config_file(t, "wrong_type.json", lambda c: c["model_kwargs"].update(m="sixteen")),), absent=("{tmp}/new",)),
    Row("train-config-names-code", f"{TRAIN_CFG} {{code}}", "'os:system' is outside fastai-sparse and its installed plugins", 1,
        (lambda t: config_file(t, "code.json", lambda c: c["train_transforms"].insert(0, {"type": "os:system", "command": "id"})),),
        absent=("{tmp}/new",)),
    Row("train-config-not-json", f"{TRAIN_CFG} {{broken}}", "not valid JSON (line 1", 1, (config_not_json,), absent=("{tmp}/new",)),
    Row("train-config-missing", f"{TRAIN_CFG} {{tmp}}/nope.json", "nope.json: no such config file", 2, absent=("{tmp}/new",)),
    Row("train-config-of-another-task", "train synthetic-shapes-cls --config {cfg} --out {tmp}/new",
        "the config is for task 'synthetic-rooms-seg', not 'synthetic-shapes-cls'", 1, (config_file,), absent=("{tmp}/new",)),
    Row("train-config-set-wrong-type", f"{TRAIN_CFG} {{cfg}} --set lr=abc", 'lr: expected a number, got "abc"', 1, (config_file,),
        absent=("{tmp}/new",)),
    Row("train-config-set-epochs-zero", f"{TRAIN_CFG} {{cfg}} --set epochs=0", "epochs: must be at least 1, got 0", 1, (config_file,),
        absent=("{tmp}/new",)),
    Row("train-set-without-value", f"{TRAIN_CFG} {{cfg}} --set lr", "--set 'lr': expected KEY=VALUE", 1, (config_file,),
        absent=("{tmp}/new",)),
    Row("train-set-index-out-of-range", f"{TRAIN_CFG} {{cfg}} --set train_transforms.9.sigma=1",
        "train_transforms.9: index out of range: the list has 6 entries", 1, (config_file,), absent=("{tmp}/new",)),
    Row("train-neither-task-nor-config", "train --out {tmp}/new", "name a TASK or pass --config FILE", 2, absent=("{tmp}/new",)),
    Row("config-unknown-model", "config synthetic-rooms-seg --set model=unet-m99", "model: unknown model 'unet-m99'", 1),
    Row("config-unknown-task", "config synthetic-roms-seg", "unknown task 'synthetic-roms-seg'", 1),
    Row("train-resume-nothing", "train synthetic-rooms-seg --resume --out {tmp}/run", "nothing to resume", 1),
    Row("demo-epochs-zero", "demo --epochs 0 --out {tmp}/report", "Invalid value for '--epochs'", 2, absent=("{tmp}/report",)),
    Row("demo-seed-negative", "demo --seed -5 --out {tmp}/report", "Invalid value for '--seed'", 2),
    Row("prepare-jobs-zero", "prepare scannet-seg --root {tmp} --jobs 0", "Invalid value for '--jobs'", 2,
        absent=("{tmp}/cache",), needs="fastai_sparse_scannet"),
    Row("prepare-root-missing", "prepare synthetic-rooms-seg --root {tmp}/nope", "nope: no such dataset folder", 2),
    Row("models-in-channels-zero", "models --in-channels 0", "Invalid value for '--in-channels'", 2),
    # -- run and report folders ------------------------------------------------------------------
    Row("train-out-finished-run", "train synthetic-rooms-seg --epochs 1 --out {run}",
        "holds a finished run of 'synthetic-rooms-seg' (2/2 epochs, its model/); pass --overwrite", 1,
        (finished_run,), keeps=("run_model", "run_json")),
    Row("train-out-unfinished-run", "train synthetic-rooms-seg --epochs 1 --out {run}",
        "pass --resume to continue it, --overwrite to start over", 1,
        (finished_run, lambda t: (t / "run" / "run.json").write_text(
            '{"task": "synthetic-rooms-seg", "epochs": 5, "finished_epochs": 2}') and {}),
        keeps=("run_model",)),
    Row("train-out-holds-a-model", "train synthetic-rooms-seg --epochs 1 --out {tmp}",
        "holds model but no run (run.json); pass --overwrite", 1,
        (rooms_model_folder,), keeps=("model_weights", "model_config")),
    Row("train-out-is-a-file", "train synthetic-rooms-seg --epochs 1 --out {file}", "notes.txt: is a file, not a folder", 1,
        (a_file,), keeps=("file",)),
    Row("train-resume-other-task", "train synthetic-shapes-cls --resume --out {run}", "holds a run of task 'synthetic-rooms-seg'", 1,
        (finished_run,), keeps=("run_model", "run_json")),
    Row("demo-out-user-folder", "demo --quick --out {user_dir}", "is not empty and not a demo report (it holds thesis.txt)", 1,
        (user_folder,), keeps=("user_thesis",)),
    Row("demo-out-is-a-file", "demo --quick --out {file}", "notes.txt: is a file, not a folder", 1, (a_file,), keeps=("file",)),
    Row("demo-out-lone-model", "demo --quick --out {tmp}", "is not empty and not a demo report", 1, (rooms_weights,),
        keeps=("weights",)),
    # -- plugins ---------------------------------------------------------------------------------
    Row("plugin-selection-typo-listed", "plugins", "'scanet' is not installed", 0,
        env={"FASTAI_SPARSE_PLUGINS": "scanet"}, needs="fastai_sparse_scannet"),
    Row("plugin-selection-typo-suggests", "plugins", "did you mean 'scannet'?", 0,
        env={"FASTAI_SPARSE_PLUGINS": "scanet"}, needs="fastai_sparse_scannet"),
    Row("plugin-selection-typo-then-task", "train scannet-seg --out {tmp}/run", "names 'scanet', but no installed plugin", 1,
        env={"FASTAI_SPARSE_PLUGINS": "scanet"}, needs="fastai_sparse_scannet"),
    Row("plugins-off-no-command", "classify modelnet40-cls --model {weights} {room}", "No such command 'classify'", 2, R,
        env={"FASTAI_SPARSE_PLUGINS": "none"}),
    # -- plugin commands ---------------------------------------------------------------------------
    Row("classify-missing-model", "classify mesh-folder-cls --model {tmp}/nope.pth {room}", "no such model folder or weights file", 2, (room,),
        needs="fastai_sparse_classification"),
    Row("classify-unknown-task", "classify mesh-folder-clz --model {weights} {room}", "unknown task 'mesh-folder-clz'", 1, R,
        needs="fastai_sparse_classification"),
    Row("classify-empty-off", "classify mesh-folder-cls --model {weights} {empty_off}", "empty.off: the input file is empty", 2,
        (rooms_weights, empty_files), needs="fastai_sparse_classification"),
    Row("classify-points-zero", "classify mesh-folder-cls --model {weights} {room} --points 0", "Invalid value for '--points'", 2, R,
        needs="fastai_sparse_classification"),
    Row("classify-top-zero", "classify mesh-folder-cls --model {weights} {room} -k 0", "Invalid value for '-k'", 2, R,
        needs="fastai_sparse_classification"),
    Row("classify-tta-zero", "classify mesh-folder-cls --model {weights} {room} --tta 0", "Invalid value for '--tta'", 2, R,
        needs="fastai_sparse_classification"),
    Row("classify-fifo", "classify mesh-folder-cls --model {weights} {fifo}", "is a FIFO", 2, (rooms_weights, fifo),
        needs="fastai_sparse_classification"),
    # -- tasks that read folders, tasks with their own output formats ----------------------------
    Row("folder-input-for-a-task-that-reads-folders", "predict s3dis-seg --model {s3dis_weights} {room_dir} -o {tmp}/office_1.labels.txt",
        "office_1.labels.txt", 0, (s3dis_room,), present=("{tmp}/office_1.labels.txt",), needs="fastai_sparse_s3dis"),
    Row("task-format-existing-output-kept", "predict semantickitti-seg --model {kitti_weights} {scan} -o {label}",
        "000000.label: the output already exists; pass --overwrite", 1, (kitti_scans,), keeps=("label", "scan"),
        needs="fastai_sparse_semantickitti"),
    Row("task-format-output-under-the-scan", "predict semantickitti-seg --model {kitti_weights} {scan} --format label -o {scan}",
        "000000.bin: is a file, so the folder", 1, (kitti_scans,), keeps=("scan",), needs="fastai_sparse_semantickitti"),
    Row("task-format-two-inputs-one-output", "predict semantickitti-seg --model {kitti_weights} {a_scan} {b_scan} --format label -o {tmp}/sub",
        "would both write this output", 1, (kitti_scans,), absent=("{tmp}/sub",), needs="fastai_sparse_semantickitti"),
    Row("task-format-layout-never-replaces-labels", "predict semantickitti-seg --model {kitti_weights} {scan}",
        "predictions/000000.label", 0, (kitti_scans,), keeps=("label", "scan"),
        present=("{tmp}/dataset/sequences/08/predictions/000000.label",), needs="fastai_sparse_semantickitti"),
    Row("shapenet-output-is-input", "shapenet predict --task shapenet-part-synthetic --model {parts_weights} {shape} -o {shape} --category airplane",
        "shape.txt: the output would replace the input", 1, (parts_weights, shape_file), keeps=("shape",), needs="fastai_sparse_shapenet"),
    Row("shapenet-existing-output", "shapenet predict --task shapenet-part-synthetic --model {parts_weights} {shape} -o {existing} --category airplane",
        "old.ply: the output already exists", 1, (parts_weights, shape_file, existing_output), keeps=("existing",),
        needs="fastai_sparse_shapenet"),
    Row("shapenet-unknown-category", "shapenet predict --task shapenet-part-synthetic --model {parts_weights} {shape} -o {tmp}/o.seg --category nosuch",
        "unknown ShapeNet part category 'nosuch'", 2, (parts_weights, shape_file), absent=("{tmp}/o.seg",), needs="fastai_sparse_shapenet"),
    Row("shapenet-no-category", "shapenet predict --task shapenet-part-synthetic --model {parts_weights} {shape} -o {tmp}/o.seg",
        "the shape's category is unknown: pass --category", 1, (parts_weights, shape_file), absent=("{tmp}/o.seg",),
        needs="fastai_sparse_shapenet"),
    Row("shapenet-tta-zero", "shapenet predict --model {parts_weights} {shape} -o {tmp}/o.seg --tta 0", "Invalid value for '--tta'", 2,
        (parts_weights, shape_file), needs="fastai_sparse_shapenet"),
    Row("shapenet-weights-of-another-task", "shapenet predict --task shapenet-part-synthetic --model {weights} {shape} -o {tmp}/o.seg --category airplane",
        "trained for task 'synthetic-rooms-seg'", 1, (rooms_weights, shape_file), absent=("{tmp}/o.seg",), needs="fastai_sparse_shapenet"),
]  # fmt: skip


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _temporaries(tmp: Path) -> list[Path]:
    return [p for p in tmp.rglob(".*.tmp")]


@pytest.fixture
def core_commands_only(monkeypatch):
    """The CLI group with core's commands only; plugin commands are added again for the row
    (so ``FASTAI_SPARSE_PLUGINS`` applies to them too)."""
    group = cli_mod.main
    core = {
        n: c for n, c in group.commands.items() if getattr(c.callback, "__module__", "") == cli_mod.__name__
    }
    monkeypatch.setattr(group, "commands", core)
    monkeypatch.setattr(group, "_plugins_added", False)


def test_rows_have_unique_ids():
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert len(ROWS) >= 50


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_catalogue(row: Row, tmp_path, monkeypatch, fresh_registry, core_commands_only):
    if row.needs:
        pytest.importorskip(row.needs)
    for key in ("FASTAI_SPARSE_PLUGINS", "FASTAI_SPARSE_DEBUG"):
        monkeypatch.delenv(key, raising=False)
    names: dict[str, str] = {"tmp": str(tmp_path)}
    for build in row.build:
        names.update(build(tmp_path) or {})
    kept = {name: _digest(Path(names[name])) for name in row.keeps}
    if row.patch is not None:
        row.patch(monkeypatch, names)
    args = [word.format(**names) for word in shlex.split(row.args)]
    for key, value in row.env.items():
        monkeypatch.setenv(key, value)
    if row.env:
        importlib.invalidate_caches()
    res = CliRunner().invoke(cli_mod.main, args, prog_name="fastai-sparse", catch_exceptions=False)

    shown = f"$ fastai-sparse {' '.join(args)}\n--- stdout\n{res.stdout}--- stderr\n{res.stderr}"
    assert res.exit_code == row.code, shown
    assert row.fragment.format(**names) in res.output, shown
    assert "Traceback" not in res.output, shown
    if row.code not in (0, 130):
        errors = [line for line in res.stderr.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1, shown
    assert not _temporaries(tmp_path), _temporaries(tmp_path)
    for name, digest in kept.items():
        assert _digest(Path(names[name])) == digest, f"{names[name]} was changed\n{shown}"
    for path in row.absent:
        p = Path(names[path] if path in names else path.format(**names))
        assert not p.exists(), f"{p} exists\n{shown}"
    for path in row.present:
        assert Path(path.format(**names)).is_file(), shown
