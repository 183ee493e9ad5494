"""Helpers for the visualisation tests (imported by name; fixtures live in conftest.py)."""

import re
import shutil
from pathlib import Path


def external_refs(html: str) -> list[str]:
    """Every script src, stylesheet link or CSS import in ``html`` that would need the network."""
    found = re.findall(r"<script\b[^>]*\bsrc\s*=\s*[\"']?([^\"'\s>]+)", html, flags=re.I)
    found += re.findall(r"<link\b[^>]*\bhref\s*=\s*[\"']?(https?:[^\"'\s>]+)", html, flags=re.I)
    found += re.findall(r"@import\s+url\(\s*[\"']?(https?:[^)\"']+)", html, flags=re.I)
    return found


CHROMIUM_PATHS = ("chromium", "chromium-browser", "/usr/bin/chromium")


def chromium_path() -> str | None:
    """The headless browser the ``chromium`` tests launch, or None."""
    found = (shutil.which(p) if "/" not in p else p for p in CHROMIUM_PATHS)
    return next((p for p in found if p and Path(p).exists()), None)
