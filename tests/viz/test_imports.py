import subprocess
import sys


def test_viz_import_is_light():
    """Importing fastai_sparse.viz must not import fastai, plotly or pyplot (they load lazily)."""
    code = (
        "import sys, fastai_sparse; before = set(sys.modules); import fastai_sparse.viz; "
        "new = set(sys.modules) - before; "
        "print(sorted(m for m in new if m.split('.')[0] in ('fastai', 'plotly', 'torch') or m == 'matplotlib.pyplot'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
