"""The web console at /pcall/console: its bundled files and the headers they are served with.

Plain HTML, CSS and JavaScript shipped with the package (no build step, no CDN): the console works offline and
in the sandbox. The page talks to the API of its own origin with the API key and password the person signs in
with, kept in the tab's session storage.
"""

from __future__ import annotations

from importlib.resources import files

from callbridge.web import PAGE_HEADERS

ASSETS = {
    "console.js": "application/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
HEADERS = {**PAGE_HEADERS, "Cache-Control": "no-cache"}


def _read(name: str) -> str:
    return files("callbridge").joinpath("static", "console", name).read_text("utf-8")


def page() -> str:
    """The console's HTML page."""
    return _read("index.html")


def asset(name: str) -> tuple[str, str] | None:
    """(content, content type) of a console file, or None for any other name."""
    content_type = ASSETS.get(name)
    return None if content_type is None else (_read(name), content_type)
