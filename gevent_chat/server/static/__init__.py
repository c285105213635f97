"""The browser client's files: plain HTML, CSS and JavaScript, no build step.

``assets()`` reads them from the installed package for ``core.web.Site``, and
writes the server's line limit into the page.  Everything the page needs is
here, so it works offline and loads nothing from another origin.
"""

from __future__ import annotations

from importlib import resources

from ...core.web import Asset

__all__ = ["FILES", "LIMIT_SLOT", "assets"]

#: URL path -> (file name, content type).
FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}


#: Where the page learns the server's line limit: ``<body data-max-line-bytes="">``.
LIMIT_SLOT = b'data-max-line-bytes=""'


def assets(max_line_bytes: int) -> dict[str, Asset]:
    """Every file the web port serves, read once (the shell calls this at start).

    The page is told ``--max-line-bytes`` in its ``<body>``, so that it can
    refuse a line the server would refuse before sending it.
    """
    here = resources.files(__name__)
    files = {path: Asset(kind, (here / name).read_bytes()) for path, (name, kind) in FILES.items()}
    page = files["/"]
    if page.body.count(LIMIT_SLOT) != 1:
        raise RuntimeError("index.html must hold one data-max-line-bytes slot")
    filled = page.body.replace(LIMIT_SLOT, f'data-max-line-bytes="{max_line_bytes}"'.encode())
    files["/"] = Asset(page.content_type, filled)
    return files
