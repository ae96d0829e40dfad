"""/docs works without internet: the page names no other host, and its scripts and styles are served by the app
(from the pinned swagger-ui-bundle package). The browser test (test_console_browser.py) renders it."""
from __future__ import annotations

import re

from middleware.api import docs_page

ASSET = re.compile(r'(?:src|href)="([^"]+)"')


def test_docs_page_names_no_other_host_and_its_assets_are_served(client):
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "openapi.json" in html
    assert not re.search(r"(?:https?:)?//", html), "the docs page names another host: it breaks offline"
    assets = ASSET.findall(html)
    assert {url.rsplit("/", 1)[1] for url in assets} == {"swagger-ui.css", "swagger-ui-bundle.js",
                                                         "swagger-ui-standalone-preset.js"}
    for url in assets:
        assert url.startswith(docs_page.ASSETS_URL)
        with client.get(url) as response:   # a file response: closed, or a ResourceWarning (an error here)
            assert response.status_code == 200 and len(response.data) > 10_000, url
            assert response.mimetype in ("text/javascript", "application/javascript", "text/css"), url
    # Swagger UI would otherwise load a badge image from validator.swagger.io
    assert '"validatorUrl": null' in html


def test_docs_assets_refuse_paths_outside_the_package(client):
    assert client.get(f"{docs_page.ASSETS_URL}..%2F__init__.py").status_code == 404
    assert client.get(f"{docs_page.ASSETS_URL}no-such-file.js").status_code == 404
