"""Self-contained HTML: pages of interactive plotly figures and reports with text, metric
tables and embedded PNGs, all opening offline (plotly.js is inlined once per page, images are
base64 data URIs, no external script, stylesheet or font)."""

from __future__ import annotations

import base64
import html as _html
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["Report", "figure_png_bytes", "write_html"]

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;
     padding:0 1em;color:#222}
h1{font-size:1.6em} h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}
table.metrics{border-collapse:collapse;margin:.6em 0;font-size:.9em}
table.metrics th,table.metrics td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
table.metrics th:first-child,table.metrics td:first-child{text-align:left}
table.metrics thead th{background:#f3f3f3}
figure{margin:1em 0} figcaption{color:#555;font-size:.9em} img{max-width:100%}
"""


def _is_plotly(fig: Any) -> bool:
    return type(fig).__module__.startswith("plotly")


def _is_matplotlib(fig: Any) -> bool:
    return hasattr(fig, "savefig")


def figure_png_bytes(fig: Any, dpi: float | None = None) -> bytes:
    """PNG bytes of a matplotlib figure (exact figsize x dpi)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi if dpi is not None else fig.dpi)
    return buf.getvalue()


def _fmt(v: Any) -> str:
    if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
        v = v.item()
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"
    return _html.escape(str(v))


def _table_html(data: Any, caption: str | None = None) -> str:
    """A metric table: ``{name: value}`` (two columns), ``{row: {col: value}}`` (a row per key,
    e.g. a per-class table) or a list of ``{col: value}`` dicts."""
    if isinstance(data, Mapping) and data and all(isinstance(v, Mapping) for v in data.values()):
        rows = [(str(k), dict(v)) for k, v in data.items()]
    elif (
        isinstance(data, Sequence) and not isinstance(data, str) and all(isinstance(r, Mapping) for r in data)
    ):
        rows = [(None, dict(r)) for r in data]
    elif isinstance(data, Mapping):
        body = "".join(f"<tr><td>{_html.escape(str(k))}</td><td>{_fmt(v)}</td></tr>" for k, v in data.items())
        cap = f"<caption>{_html.escape(caption)}</caption>" if caption else ""
        return (
            f'<table class="metrics">{cap}<thead><tr><th>metric</th><th>value</th></tr></thead>{body}</table>'
        )
    else:
        raise TypeError(f"a table needs a dict or a list of dicts, got {type(data).__name__}")
    cols: list[str] = []
    for _, r in rows:
        cols += [str(c) for c in r if str(c) not in cols]
    head = ("<th></th>" if rows and rows[0][0] is not None else "") + "".join(
        f"<th>{_html.escape(c)}</th>" for c in cols
    )
    body = ""
    for key, r in rows:
        cells = {str(k): v for k, v in r.items()}
        first = f"<td>{_html.escape(key)}</td>" if key is not None else ""
        body += (
            "<tr>"
            + first
            + "".join(f"<td>{_fmt(cells[c]) if c in cells else ''}</td>" for c in cols)
            + "</tr>"
        )
    cap = f"<caption>{_html.escape(caption)}</caption>" if caption else ""
    return f'<table class="metrics">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class Report:
    """An HTML report built step by step, saved as one self-contained ``index.html``.

    >>> r = Report("Demo")
    >>> r.add_text("Trained 3 epochs.")
    >>> r.add_table({"miou": 0.93, "accuracy": 0.98}, caption="validation")
    >>> r.add_figure(matplotlib_figure, caption="losses")   # embedded PNG (base64)
    >>> r.add_figure(plotly_figure, caption="predictions")  # interactive 3D
    >>> r.save("report_dir")                                 # -> report_dir/index.html

    plotly.js is inlined once, before the first interactive figure; the page needs no network.
    """

    def __init__(self, title: str = "fastai-sparse report"):
        self.title = title
        self._parts: list[tuple[str, Any]] = []

    def __repr__(self) -> str:
        kinds = [k for k, _ in self._parts]
        return f"Report({self.title!r}, {len(kinds)} parts: {', '.join(kinds)})"

    def add_heading(self, text: str) -> Report:
        self._parts.append(("heading", text))
        return self

    def add_text(self, text: str, raw_html: bool = False) -> Report:
        """A paragraph (escaped, blank lines split paragraphs; ``raw_html=True`` inserts as is)."""
        self._parts.append(("html" if raw_html else "text", text))
        return self

    def add_table(self, data: Any, caption: str | None = None) -> Report:
        """A metric table, see :func:`_table_html` for the accepted shapes."""
        _table_html(data)  # fail now, not at save time
        self._parts.append(("table", (data, caption)))
        return self

    def add_image(self, png: str | Path | bytes, caption: str | None = None) -> Report:
        """A PNG file (path) or PNG bytes, embedded as base64."""
        data = png if isinstance(png, bytes) else Path(png).read_bytes()
        if not data.startswith(b"\x89PNG"):
            raise ValueError(f"{png if not isinstance(png, bytes) else 'bytes'}: not a PNG image")
        self._parts.append(("image", (data, caption)))
        return self

    def add_figure(self, fig: Any, caption: str | None = None) -> Report:
        """A plotly figure (interactive) or a matplotlib figure (embedded PNG)."""
        if _is_plotly(fig):
            self._parts.append(("plotly", (fig, caption)))
        elif _is_matplotlib(fig):
            self._parts.append(("image", (figure_png_bytes(fig), caption)))
        elif hasattr(fig, "figure") and _is_matplotlib(fig.figure):  # an Axes
            self._parts.append(("image", (figure_png_bytes(fig.figure), caption)))
        else:
            raise TypeError(f"expected a plotly or matplotlib figure, got {type(fig).__name__}")
        return self

    def add(self, item: Any, caption: str | None = None) -> Report:
        """Add a figure, a table (dict / list of dicts) or text, by type."""
        if isinstance(item, str):
            return self.add_text(item)
        if isinstance(item, (Mapping, list)):
            return self.add_table(item, caption)
        if isinstance(item, (bytes, Path)):
            return self.add_image(item, caption)
        return self.add_figure(item, caption)

    def to_html(self) -> str:
        out = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_html.escape(self.title)}</title><style>{_CSS}</style></head><body>",
            f"<h1>{_html.escape(self.title)}</h1>",
        ]
        plotly_js_done = False
        for kind, val in self._parts:
            if kind == "heading":
                out.append(f"<h2>{_html.escape(val)}</h2>")
            elif kind == "text":
                out += [f"<p>{_html.escape(p.strip())}</p>" for p in val.split("\n\n") if p.strip()]
            elif kind == "html":
                out.append(val)
            elif kind == "table":
                out.append(_table_html(*val))
            elif kind == "image":
                data, cap = val
                b64 = base64.b64encode(data).decode("ascii")
                alt = _html.escape(cap or "figure")
                out.append(f'<figure><img alt="{alt}" src="data:image/png;base64,{b64}">')
                out.append(f"<figcaption>{_html.escape(cap)}</figcaption></figure>" if cap else "</figure>")
            elif kind == "plotly":
                fig, cap = val
                div = fig.to_html(
                    full_html=False, include_plotlyjs=not plotly_js_done, include_mathjax=False,
                    default_height=f"{int(fig.layout.height or 600)}px", config={"displaylogo": False, "responsive": True},
                )  # fmt: skip
                plotly_js_done = True
                out.append(f"<figure>{div}")
                out.append(f"<figcaption>{_html.escape(cap)}</figcaption></figure>" if cap else "</figure>")
        out.append("</body></html>")
        return "\n".join(out)

    def save(self, directory: str | Path, filename: str = "index.html") -> Path:
        """Write ``directory/index.html`` (directory created); returns its path."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        path = d / filename
        from ..files import write_text

        write_text(path, self.to_html())  # atomic, with the user's permissions
        return path


def write_html(
    fig_or_figs: Any,
    path: str | Path,
    title: str = "fastai-sparse",
    sections: Sequence[Any] | None = None,
) -> Path:
    """Write figures to one self-contained HTML file that opens offline; returns the path.

    ``fig_or_figs``: a plotly or matplotlib figure or a list of them (None for none).
    ``sections``: more content after the figures, each a string (paragraph), a dict / list
    of dicts (table), a figure, or a ``(heading, content)`` pair.
    """
    rep = Report(title)
    figs = (
        []
        if fig_or_figs is None
        else (list(fig_or_figs) if isinstance(fig_or_figs, (list, tuple)) else [fig_or_figs])
    )
    for f in figs:
        rep.add_figure(f)
    for s in sections or ():
        if isinstance(s, tuple) and len(s) == 2 and isinstance(s[0], str):
            rep.add_heading(s[0])
            s = s[1]
        rep.add(s)
    from ..files import write_text

    return write_text(path, rep.to_html())  # atomic, with the user's permissions
