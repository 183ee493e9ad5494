"""Read the records of an offline W&B run (``run-<id>.wandb``) back, for the logger tests.

The file is a LevelDB-style log (32 KiB blocks of records with a 7-byte header: CRC32C,
length, type 1 = full, 2 = first, 3 = middle, 4 = last) after a 7-byte ``:W&B`` header, each
record a ``wandb.proto.wandb_internal_pb2.Record``. wandb 0.31 no longer ships a Python reader
(its writer is the Go ``wandb-core``), hence these few lines.
"""

from __future__ import annotations

import struct
from pathlib import Path

BLOCK = 32768


def read_records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B run file")
    pos, buf, raw = 7, b"", []
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            raw.append(chunk)
        elif kind == 2:
            buf = chunk
        elif kind == 3:
            buf += chunk
        elif kind == 4:
            raw.append(buf + chunk)
    records = []
    for r in raw:
        rec = pb.Record()
        rec.ParseFromString(r)
        records.append(rec)
    return records


def history(records: list) -> list[dict]:
    """The logged rows: ``{key: JSON text}`` with W&B's ``_step``."""
    rows = []
    for r in records:
        if r.WhichOneof("record_type") == "history":
            rows.append({i.key or "/".join(i.nested_key): i.value_json for i in r.history.item})
    return rows


def run_record(records: list):
    return next(r.run for r in records if r.WhichOneof("record_type") == "run")
