"""Open the generated HTML in headless Chromium and check the 3D plots really rendered.

The browser tests are marked ``chromium`` and need the ``chromium`` binary (Debian/Ubuntu:
``apt-get install -y chromium``): skipped when it is absent, failed instead when they are
asked for with ``pytest -m chromium``; ``-m "not chromium"`` leaves them out. Everything is
loaded from ``file://`` with networking features off, so a page that needed a CDN would fail
to render here.
"""

import re
import subprocess
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from fastai_sparse.geometry import PointCloud
from fastai_sparse.viz import Report, class_colors, show_clouds

from .viz_helpers import chromium_path

CHROMIUM = chromium_path()
#: Tests marked ``chromium`` launch the browser: skipped when it is not installed, except
#: when chosen with ``-m chromium`` (then a missing browser fails them; see tests/viz/conftest.py).
browser = pytest.mark.chromium

FLAGS = [
    # software WebGL (SwiftShader) must be asked for explicitly: newer Chromium no longer falls
    # back to it silently, and without WebGL plotly draws no 3D scene
    "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--virtual-time-budget=5000",
]  # fmt: skip


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    assert CHROMIUM is not None, "a test that launches chromium must be marked @pytest.mark.chromium"
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def rendered_scenes(dom: str) -> list[tuple[str, int, int]]:
    """(scene id, canvas width, canvas height) of every plotly 3D scene that holds a WebGL
    canvas in the rendered DOM (scripts and styles stripped first, so the library's own
    source text cannot match)."""
    body = re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.S | re.I)
    return [
        (m.group(1), int(m.group(2)), int(m.group(3)))
        for m in re.finditer(
            r'<div id="(scene\d*)"[^>]*>(?:(?!</div>).)*?<canvas width="(\d+)" height="(\d+)"',
            body,
            flags=re.S,
        )
    ]


def _clouds(n_clouds=3, n=400):
    out = []
    for s in range(n_clouds):
        r = np.random.default_rng(s)
        xyz = (r.random((n, 3)) * [4, 3, 2]).astype(np.float32)
        out.append(PointCloud(xyz, {"labels": (xyz[:, 0] * 3 / 4).astype(np.int64)}, meta={"id": f"c{s}"}))
    return out


def test_rendered_scenes_parser():
    dom = (
        '<script>x = \'<div id="scene"><canvas width="9" height="9">\'</script>'
        '<div class="gl-container"><div id="scene2" style="x"><svg></svg><canvas width="10" height="20"></canvas>'
        "</div></div>"
    )
    assert rendered_scenes(dom) == [("scene2", 10, 20)]


@browser
def test_show_clouds_html_renders_in_chromium(tmp_path):
    page = tmp_path / "clouds.html"
    show_clouds(_clouds(), path=page, class_names=["a", "b", "c"])
    res = _chromium(tmp_path, "--dump-dom", page.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    scenes = rendered_scenes(res.stdout)
    assert [s[0] for s in scenes] == ["scene", "scene2", "scene3"], res.stdout[-2000:]
    assert all(w > 0 and h > 0 for _, w, h in scenes)
    # without WebGL (checked by hand with --disable-3d-apis) plotly leaves the canvases without
    # a size and adds a "no-webgl" notice: 0 scenes would be found above and this would fail
    assert 'class="no-webgl"' not in re.sub(r"<script\b.*?</script>", "", res.stdout, flags=re.S)


@browser
def test_report_screenshot_shows_the_points(tmp_path):
    rep = Report("viz test")
    rep.add_figure(show_clouds(_clouds(1, 3000), html=True, class_names=["a", "b", "c"], size=4))
    path = rep.save(tmp_path / "report")
    shot = tmp_path / "shot.png"
    res = _chromium(tmp_path, "--window-size=900,800", f"--screenshot={shot}", path.as_uri())
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    img = mpimg.imread(shot)[..., :3]
    assert img.std() > 0.05  # not a blank page
    # the points were drawn by WebGL: each class colour covers far more than its legend
    # marker (about 130 pixels); 3000 points of 3 classes cover thousands
    for c in class_colors(3):
        near = np.abs(img - c).max(-1) < 12 / 255
        assert near.sum() > 2000, f"class colour {c} covers only {near.sum()} pixels"
