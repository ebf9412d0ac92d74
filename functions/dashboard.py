"""The admin dashboard: static files served at ``/dashboard/`` by the functions app.

Plain HTML, CSS and ES modules from ``functions/dashboard_static`` (no build
step); the chart library is plotly.js, served from the installed ``plotly``
package. ``/dashboard/config.json`` tells the page where Supabase Auth is and
the project's publishable key: the page signs a person in there and calls the
admin functions with that person's access token. No secret key ever leaves
the server, and a strict Content-Security-Policy keeps the page to its own
scripts and to these two origins.
"""

from __future__ import annotations

import mimetypes
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from shared.client import Runtime
from shared.config import ConfigError

STATIC = Path(__file__).parent / "dashboard_static"
PLOTLY = "vendor/plotly.min.js"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}


def plotly_bundle() -> Path:
    """plotly.js as the ``plotly`` wheel ships it (offline use), never a copy in this repository."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


def security_headers(auth_origin: str | None) -> dict[str, str]:
    """Only our own files run; the page may talk to this origin and to Supabase Auth.

    Inline styles are allowed because plotly.js positions its chart parts with them.
    """
    connect = "'self'" + (f" {auth_origin}" if auth_origin else "")
    policy = "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self'",
            f"connect-src {connect}",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


def routes(runtime: Runtime) -> list[BaseRoute]:
    def headers() -> dict[str, str]:
        try:
            url = runtime.settings.supabase_url
        except ConfigError:
            url = None
        return security_headers(_origin(url) if url else None)

    async def root(request: Request) -> Response:
        return RedirectResponse("/dashboard/", status_code=308)

    async def config(request: Request) -> Response:
        try:
            settings = runtime.settings
        except ConfigError as exc:
            return JSONResponse({"error": {"code": "misconfigured", "message": str(exc)}}, 503)
        public = settings.publishable_keys[:1] or ((settings.anon_key,) if settings.anon_key else ())
        body = {"supabase_url": settings.supabase_url, "publishable_key": public[0] if public else None}
        return JSONResponse(body, headers=headers())

    async def static(request: Request) -> Response:
        # From the URL itself: a host that mounts this app may leave its own path params.
        name = request.url.path.removeprefix("/dashboard/") or "index.html"
        if name == PLOTLY:
            return _file(plotly_bundle(), {**headers(), "Cache-Control": "public, max-age=86400"})
        path = _shipped_file(name)
        if path is None:
            return JSONResponse({"error": {"code": "not_found", "message": f"No file {name!r}."}}, 404)
        return _file(path, headers())

    return [
        Route("/dashboard", root),
        Route("/dashboard/config.json", config),
        Route("/dashboard/{rest:path}", static),
    ]


def _shipped_file(name: str) -> Path | None:
    """The file of the dashboard folder that ``name`` names, or None: outside
    the folder, missing, or a name no file can have (NUL, undecodable bytes)."""
    if not name.isprintable() or "\ufffd" in name:
        return None
    try:
        path = (STATIC / name).resolve()
        found = path.is_relative_to(STATIC.resolve()) and path.is_file()
    except (OSError, ValueError):  # UnicodeError is a ValueError
        return None
    return path if found else None


def _file(path: Path, headers: dict[str, str]) -> Response:
    media = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media, headers=headers)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
