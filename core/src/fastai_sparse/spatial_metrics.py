"""Moved to :mod:`fastai_sparse.spatial.metrics`; this module keeps the old import path working."""

from .spatial.metrics import *  # noqa: F403
from .spatial.metrics import __all__  # noqa: F401
