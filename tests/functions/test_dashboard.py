"""The dashboard's files as the functions app serves them: the page, its
modules, the chart library from the installed plotly package, the config
the page reads, the security headers, and nothing outside its folder."""

from __future__ import annotations

import re

import httpx
import pytest

from functions.dashboard import STATIC, plotly_bundle
from tests.functions.conftest import ALL_KEYS, JWT_SECRET, PUBLISHABLE_KEY, URL


async def test_page_and_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/dashboard/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"  # no inline script, no eval, no CDN
    assert directives["connect-src"] == f"'self' {URL}"  # the functions and Supabase Auth only
    assert directives["frame-ancestors"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="js/main.js">' in response.text
    assert "<script>" not in response.text


async def test_bare_path_redirects(client: httpx.AsyncClient) -> None:
    response = await client.get("/dashboard")
    assert response.status_code == 308
    assert response.headers["location"] == "/dashboard/"


async def test_config_names_auth_and_the_publishable_key_only(client: httpx.AsyncClient) -> None:
    response = await client.get("/dashboard/config.json")
    assert response.json() == {"supabase_url": URL, "publishable_key": PUBLISHABLE_KEY}


async def test_every_shipped_file_is_served_without_secrets(client: httpx.AsyncClient) -> None:
    files = sorted(p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file())
    assert "index.html" in files and "js/api.js" in files
    for name in files:
        response = await client.get(f"/dashboard/{name}")
        assert response.status_code == 200, name
        assert not any(key in response.text for key in (*ALL_KEYS, JWT_SECRET)), name
        if name.endswith(".js"):
            assert response.headers["content-type"].startswith("text/javascript")
            # Our modules import only each other: nothing from another origin.
            for target in re.findall(r'from "([^"]+)"', response.text):
                assert target.startswith("./"), (name, target)


async def test_chart_library_comes_from_the_installed_plotly(client: httpx.AsyncClient) -> None:
    response = await client.get("/dashboard/vendor/plotly.min.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert len(response.content) == plotly_bundle().stat().st_size > 1_000_000


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/nope.js",
        "/dashboard/%2e%2e/app.py",
        "/dashboard/js/%2e%2e/%2e%2e/dashboard.py",
        # names no file can have: NUL, undecodable bytes, control characters
        "/dashboard/index.html%00.js",
        "/dashboard/%00",
        "/dashboard/%ff%fe.js",
        "/dashboard/%c0%ae%c0%ae/app.py",
        "/dashboard/js/%0a.js",
    ],
)
async def test_nothing_outside_the_folder(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert "import" not in response.text
