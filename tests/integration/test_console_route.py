"""The console's page and files, served by the api function with a strict Content-Security-Policy."""

from __future__ import annotations

import re

from tests.conftest import ApiClient


def test_the_page_and_its_files_are_served_without_credentials_under_a_strict_policy(api: ApiClient) -> None:
    page = api.get("/pcall/console", auth=False)
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy
    html = page.body
    # no inline script or style: everything comes from the bundled files
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "<style" not in html
    assert " style=" not in html
    for name, kind in (("console.js", "javascript"), ("console.css", "text/css")):
        asset = api.get(f"/pcall/console/{name}", auth=False)
        assert asset.status == 200, name
        assert kind in asset.headers["Content-Type"]
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
        assert f"/pcall/console/{name}" in html


def test_other_files_are_a_404(api: ApiClient) -> None:
    for name in ("index.html", "..%2Fconsole.py", "missing.js"):
        assert api.get(f"/pcall/console/{name}", auth=False).status == 404
