"""The browser client's files: plain HTML, CSS and JavaScript, no build step.

``assets()`` reads them from the installed package for ``core.web.Site``;
everything the page needs is here, so it works offline and loads nothing from
another origin.
"""

from __future__ import annotations

from importlib import resources

from ...core.web import Asset

__all__ = ["FILES", "assets"]

#: URL path -> (file name, content type).
FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}


def assets() -> dict[str, Asset]:
    """Every file the web port serves, read once (the shell calls this at start)."""
    here = resources.files(__name__)
    return {path: Asset(kind, (here / name).read_bytes()) for path, (name, kind) in FILES.items()}
