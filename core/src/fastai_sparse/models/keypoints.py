"""Keypoints (with optional unit axes) by weighted offset voting.

Every site of the backbone's output votes for every keypoint: it predicts an offset from its
position (the mean of its input points, from ``x["point_xyz"]``) and a confidence logit; a
keypoint is the softmax-weighted mean of its votes over the sample's sites. With axes, each
site also predicts a direction per keypoint; the keypoint's axis is the normalised weighted
mean of the (normalised) directions.

Output (``per = "sample"``) float32 [B, K * 7] with axes, [B, K * 4] without: columns
``0:3K`` the keypoints (k-major: x0, y0, z0, x1, ...), then ``3K:6K`` the unit axes (with
axes), then ``K`` columns holding the weighted variance of the votes around each keypoint
(``sum_i w_i |v_i - kp|^2``), used by the loss so that the weighted mean squared error of
the individual votes is supervised (``E_w|v - gt|^2 = |kp - gt|^2 + variance``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..engine import SparseTensor
from ..errors import ShapeError
from .detection import point_rows, point_xyz, scatter_mean
from .vfe import scatter_max

__all__ = ["KeypointLoss", "VoteKeypointHead", "split_keypoint_output"]


def split_keypoint_output(pred: torch.Tensor, num_keypoints: int, axes: bool) -> dict[str, torch.Tensor]:
    """``{"points": [B, K, 3], "axes": [B, K, 3] (with axes), "variance": [B, K]}`` from a
    :class:`VoteKeypointHead` output [B, K * (7 if axes else 4)]."""
    k = int(num_keypoints)
    width = k * (7 if axes else 4)
    if pred.ndim != 2 or pred.shape[1] != width:
        raise ShapeError(
            f"keypoint output must be [B, {width}] for {k} keypoints{' with axes' if axes else ''}, "
            f"got {list(pred.shape)}"
        )
    b = pred.shape[0]
    out = {"points": pred[:, : 3 * k].reshape(b, k, 3)}
    if axes:
        out["axes"] = pred[:, 3 * k : 6 * k].reshape(b, k, 3)
    out["variance"] = pred[:, -k:]
    return out


class VoteKeypointHead(nn.Module):
    """Offset-voting keypoint head (see the module docstring).

    Args:
        in_channels: backbone output channels.
        num_outputs: ``K * 7`` with axes, ``K * 4`` without (``KeypointTarget.num_outputs``).
        axes: whether axes are predicted (must match the target type).
        hidden: width of the per-site MLP.

    ``forward(x: SparseTensor, batch: dict) -> float32 [B, num_outputs]``.
    """

    per = "sample"
    needs_batch = True

    def __init__(self, in_channels: int = 16, num_outputs: int = 4, axes: bool = False, hidden: int = 64):
        super().__init__()
        per_kp = 7 if axes else 4
        if num_outputs % per_kp or num_outputs < per_kp:
            raise ShapeError(
                f"VoteKeypointHead(axes={axes}): num_outputs must be a multiple of {per_kp}, got {num_outputs}"
            )
        self.in_channels, self.axes, self.num_keypoints = (
            in_channels,
            bool(axes),
            num_outputs // per_kp,
        )
        k = self.num_keypoints
        self.mlp = nn.Sequential(
            nn.Linear(in_channels, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, k * (7 if axes else 4)),
        )
        nn.init.normal_(self.mlp[-1].weight, std=1e-3)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: SparseTensor, batch: Mapping) -> torch.Tensor:
        if x.num_channels != self.in_channels:
            raise ShapeError(
                f"VoteKeypointHead: expected {self.in_channels} input channels, got {x.num_channels}"
            )
        k, m = self.num_keypoints, x.num_sites
        bs = int(batch["voxel_offsets"].shape[0]) - 1
        pos = scatter_mean(point_xyz(batch).to(x.feats.dtype), point_rows(x, batch), m)  # [M, 3]
        f = x.feats
        if self.training and f.shape[0] < 2:
            lin, bn, act, last = self.mlp
            h = last(act(F.batch_norm(lin(f), bn.running_mean, bn.running_var, bn.weight, bn.bias, False)))
        else:
            h = self.mlp(f)
        offsets = h[:, : 3 * k].reshape(m, k, 3)
        logits = h[:, 3 * k : 4 * k]
        b = x.coords[:, 0].long()
        # softmax over the sites of each sample, per keypoint
        z = logits - scatter_max(logits, b, bs)[b]
        e = torch.exp(z)
        w = e / h.new_zeros((bs, k)).index_add_(0, b, e)[b]  # [M, K]
        votes = pos[:, None] + offsets  # [M, K, 3]
        kp = h.new_zeros((bs, k, 3)).index_add_(0, b, w[..., None] * votes)
        var = h.new_zeros((bs, k)).index_add_(0, b, w * ((votes - kp[b]) ** 2).sum(-1))
        parts = [kp.reshape(bs, 3 * k)]
        if self.axes:
            d = F.normalize(h[:, 4 * k : 7 * k].reshape(m, k, 3), dim=-1, eps=1e-6)
            a = h.new_zeros((bs, k, 3)).index_add_(0, b, w[..., None] * d)
            parts.append(F.normalize(a, dim=-1, eps=1e-6).reshape(bs, 3 * k))
        parts.append(var)
        return torch.cat(parts, 1)


class KeypointLoss:
    """``loss(pred, y) -> scalar`` for :class:`VoteKeypointHead` outputs.

    pred [B, K * (7|4)]; y: ``KeypointTarget.collate`` dict (``points`` [B, K, 3], ``axes``
    [B, K, 3]). Loss: the mean over samples and keypoints of the weighted mean squared vote
    error ``|kp - gt|^2 + variance`` (divided by ``scale ** 2``, ``scale`` a typical object size)
    plus ``axis_weight`` times the mean of ``1 - cos(predicted axis, true axis)``.
    """

    def __init__(self, num_keypoints: int, axes: bool = False, axis_weight: float = 0.5, scale: float = 1.0):
        self.num_keypoints, self.axes = int(num_keypoints), bool(axes)
        self.axis_weight, self.scale = float(axis_weight), float(scale)

    def __repr__(self) -> str:
        return (
            f"KeypointLoss(num_keypoints={self.num_keypoints}, axes={self.axes}, "
            f"axis_weight={self.axis_weight}, scale={self.scale})"
        )

    def activation(self, x):
        """Outputs are not probabilities: fastai's get_preds returns them unchanged."""
        return x

    def decodes(self, x):
        return x

    def __call__(self, pred: torch.Tensor, y: Mapping) -> torch.Tensor:
        out = split_keypoint_output(pred, self.num_keypoints, self.axes)
        gt = y["points"].to(pred.dtype)
        if gt.shape != out["points"].shape:
            raise ShapeError(
                f"KeypointLoss: predicted keypoints {list(out['points'].shape)} but targets {list(gt.shape)}"
            )
        d2 = ((out["points"] - gt) ** 2).sum(-1)
        loss = ((d2 + out["variance"]) / self.scale**2).mean()
        if self.axes:
            cos = (out["axes"] * F.normalize(y["axes"].to(pred.dtype), dim=-1)).sum(-1)
            loss = loss + self.axis_weight * (1 - cos).mean()
        return loss
