import base64
import re

import numpy as np
import pytest

from fastai_sparse.viz import Report, plot_losses, points_figure, write_html

from .viz_helpers import external_refs


def test_report_contents_and_offline(tmp_path):
    r = np.random.default_rng(0)
    rep = Report("Demo <run>")
    rep.add_heading("Metrics").add_text("Trained 3 epochs.\n\nChance level 0.05 & more.")
    rep.add_table({"miou": 0.93456, "accuracy": np.float32(0.981), "epochs": 3}, caption="validation")
    rep.add_table({"wall": {"iou": 0.9, "acc": 0.95}, "floor": {"iou": 0.8}})
    rep.add_figure(plot_losses([3, 2, 1], [2.5, 1.5, 1.2]), caption="losses")
    rep.add_figure(points_figure(r.random((100, 3))), caption="cloud A")
    rep.add_figure(points_figure(r.random((100, 3))), caption="cloud B")
    png = tmp_path / "x.png"
    plot_losses([1, 0.5]).savefig(png)
    rep.add_image(png, caption="file")
    path = rep.save(tmp_path / "report")
    assert path == tmp_path / "report" / "index.html"
    html = path.read_text()
    assert external_refs(html) == []
    assert "<title>Demo &lt;run&gt;</title>" in html
    assert "<p>Chance level 0.05 &amp; more.</p>" in html
    assert "<td>miou</td><td>0.9346</td>" in html and "<td>epochs</td><td>3</td>" in html
    # per-class table: union of columns, empty cell for the missing one
    assert "<tr><td>floor</td><td>0.8</td><td></td></tr>" in html
    # plotly.js inlined exactly once for two interactive figures
    assert len(re.findall(r"plotly\.js v\d", html)) == 1
    assert html.count('class="plotly-graph-div"') == 2
    imgs = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([^"]+)"', html)
    assert len(imgs) == 2 and all(base64.b64decode(i).startswith(b"\x89PNG") for i in imgs)


def test_plotly_js_appears_once(tmp_path):
    r = np.random.default_rng(0)
    one = write_html(points_figure(r.random((10, 3))), tmp_path / "one.html").read_text()
    two = write_html([points_figure(r.random((10, 3))) for _ in range(2)], tmp_path / "two.html").read_text()
    # the second figure adds only its data, not a second copy of the ~4.5 MB library
    assert len(one) > 3_000_000 and len(two) - len(one) < 100_000


def test_write_html_sections(tmp_path):
    p = write_html(None, tmp_path / "s.html", title="t", sections=[("Summary", "hello"), {"a": 1.0}])
    html = p.read_text()
    assert "<h2>Summary</h2>" in html and "<p>hello</p>" in html and "<td>a</td><td>1</td>" in html


def test_report_rejects_bad_input(tmp_path):
    rep = Report()
    with pytest.raises(TypeError, match="dict or a list of dicts"):
        rep.add_table(3.0)
    bad = tmp_path / "x.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="not a PNG"):
        rep.add_image(bad)
    with pytest.raises(TypeError, match="plotly or matplotlib"):
        rep.add_figure(object())
