"""Visualisation: point clouds, sparse batches, predictions, kernels and training curves as
PNG (matplotlib, no pyplot state) and self-contained interactive HTML (plotly, opens offline).

No fastai import happens here; everything works from numpy arrays, torch tensors or plain
lists (e.g. a fastai ``Recorder``'s values).
"""

from .batch import feats_look_like_rgb, show_batch, split_batch, voxel_majority
from .boxes import BOX_EDGES, box_edges, draw_boxes, draw_keypoints, show_detection
from .colors import IGNORED_COLOR, class_colors, feature_colors, label_colors
from .points import cloud_colors, plot_points, points_figure, save_figure, show_clouds, subsample_indices
from .report import Report, write_html
from .results import confidence_heatmap, error_map, show_results
from .training import kernel_array, kernel_slices, plot_losses, plot_lr_find, plot_recorder

__all__ = [
    "BOX_EDGES",
    "IGNORED_COLOR",
    "Report",
    "box_edges",
    "class_colors",
    "cloud_colors",
    "confidence_heatmap",
    "draw_boxes",
    "draw_keypoints",
    "error_map",
    "feats_look_like_rgb",
    "feature_colors",
    "kernel_array",
    "kernel_slices",
    "label_colors",
    "plot_losses",
    "plot_lr_find",
    "plot_points",
    "plot_recorder",
    "points_figure",
    "save_figure",
    "show_batch",
    "show_clouds",
    "show_detection",
    "show_results",
    "split_batch",
    "subsample_indices",
    "voxel_majority",
    "write_html",
]
