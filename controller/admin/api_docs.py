"""``/docs`` and ``/redoc`` without the internet: FastAPI's Swagger UI and ReDoc pages, with
their scripts, stylesheet and icon served from the files the ``fastapi-offline`` package ships
(Swagger UI 5, which reads OpenAPI 3.1; MIT, licences in the package) instead of a CDN the
admins' private network cannot reach. Only the named asset files are served: any other name is
a 404 before a path is built from it."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response

__all__ = ["ASSETS", "install_offline_docs"]

ASSET_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
_REPLACED = {"/docs", "/redoc", "/docs/oauth2-redirect"}


def install_offline_docs(app: FastAPI) -> None:
    """Replace the app's CDN-backed docs routes with ones that load only from this app."""
    app.router.routes[:] = [
        route for route in app.router.routes if getattr(route, "path", None) not in _REPLACED
    ]
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} · API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} · API",
            redoc_js_url="/docs/assets/redoc.standalone.js",
            redoc_favicon_url="/docs/assets/favicon.png",
            with_google_fonts=False,
        )

    @app.get("/docs/assets/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise HTTPException(404, f"没有这个文档资源：可取 {', '.join(sorted(ASSETS))}")
        return Response(
            (ASSET_DIR / name).read_bytes(),
            media_type=media_type,
            headers={"Cache-Control": "max-age=86400"},
        )
