"""fastai, imported without the deprecation warning its own import raises.

fastai 2.8's ``fastai/layers.py`` decorates two functions with ``torch.jit.script`` when it is
imported, and torch 2.10+ warns on every such call that ``torch.jit.script`` is deprecated: a
FutureWarning on every run of every program that imports fastai, about a call that is neither
ours nor the user's. Our modules that import fastai at module level import this one first
(``from . import _fastai``), which imports ``fastai.layers`` with exactly that warning ignored,
during that import only. The user's own calls to ``torch.jit.script`` still warn.
"""

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    import fastai.layers  # noqa: F401
