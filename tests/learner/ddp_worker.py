"""Run by test_distributed.py under ``torchrun --nproc_per_node 2`` (gloo, CPU).

Trains one epoch data-parallel on hand-made clouds, then records the confusion matrix the
metrics summed across ranks during the last validation; afterwards, in each process alone,
recomputes the confusion matrix on the whole validation set with the same weights.
Writes ``<out>/rank<r>.json``.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

warnings.simplefilter("ignore")

import torch  # noqa: E402
from learner_helpers import make_cloud, pipelines, seg_target, tiny_model  # noqa: E402

from fastai_sparse.learner import sparse_dataloaders, sparse_learner  # noqa: E402
from fastai_sparse.metrics import ConfusionMatrix, accuracy, miou  # noqa: E402


def main(out: Path) -> None:
    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    tgt = seg_target()
    tr, va = pipelines(tgt)
    # 5 validation clouds of different sizes over 2 ranks: rank 1 gets one padding sample
    train = [make_cloud(i, 150 + 10 * i) for i in range(6)]
    valid = [make_cloud(100 + i, 120 + 17 * i) for i in range(5)]
    dls = sparse_dataloaders(train, valid, tr, va, tgt, bs=2, path=out, seed=1)
    torch.manual_seed(0)
    cm_metric = ConfusionMatrix(2, tgt.ignore_index)
    learn = sparse_learner(dls, tiny_model(), metrics=[miou(tgt), accuracy(tgt), cm_metric], path=out)
    with learn.no_bar(), learn.no_logging():
        with learn.distrib_ctx():
            world = torch.distributed.get_world_size()
            learn.fit_one_cycle(1, 1e-2)
            ddp_cm = cm_metric.total.tolist()
            ddp_values = [float(v) for v in learn.recorder.values[-1][2:4]]
        single = ConfusionMatrix(2, tgt.ignore_index)
        preds, targs = learn.get_preds()
        single.update(preds, targs)
        _, m, acc, _ = learn.validate()
    (out / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "world": world,
                "ddp_cm": ddp_cm,
                "ddp_values": ddp_values,
                "single_cm": single.total.tolist(),
                "single_values": [float(m), float(acc)],
                "n_points": sum(len(c) for c in valid),
            }
        )
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
