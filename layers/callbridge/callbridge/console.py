"""The web console at /pcall/console: its bundled files and the headers they are served with.

Plain HTML, CSS and JavaScript shipped with the package (no build step, no CDN): the console works offline and
in the sandbox. The page talks to the API of its own origin with the API key and password the person signs in
with, kept in the tab's session storage.
"""

from __future__ import annotations

from importlib.resources import files

ASSETS = {
    "console.js": "application/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
# Only this origin's own files and API; no inline script or style, no frames, no form posts elsewhere.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


def _read(name: str) -> str:
    return files("callbridge").joinpath("static", "console", name).read_text("utf-8")


def page() -> str:
    """The console's HTML page."""
    return _read("index.html")


def asset(name: str) -> tuple[str, str] | None:
    """(content, content type) of a console file, or None for any other name."""
    content_type = ASSETS.get(name)
    return None if content_type is None else (_read(name), content_type)
