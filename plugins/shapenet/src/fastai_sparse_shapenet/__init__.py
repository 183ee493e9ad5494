"""ShapeNet part segmentation for fastai-sparse: readers, category table, tasks, metrics."""

__version__ = "0.1.0"
