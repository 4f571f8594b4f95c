"""/docs (Swagger UI) and /redoc, self-hosted: their scripts and styles come from an installed package.

FastAPI's own pages load Swagger UI and ReDoc from a CDN; a scanner's network may reach nothing but this
service. `fastapi-offline` ships the dist files (Swagger UI: Apache-2.0, ReDoc: MIT); only its `static`
folder is used, the app stays ours.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

# ReDoc's sidebar shows a logo from its vendor's CDN; this policy keeps the browser from fetching it (and
# anything else from another host): everything comes from this server, inline or as data:/blob: URLs.
SAME_ORIGIN_ONLY = {"Content-Security-Policy": "default-src 'self' 'unsafe-inline' data: blob:"}
ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS_PATH = "/docs-assets"


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", ""))


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = _root(request)
    page = get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
    )
    page.headers.update(SAME_ORIGIN_ONLY)
    return page


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    root = _root(request)
    page = get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
        with_google_fonts=False,
    )
    page.headers.update(SAME_ORIGIN_ONLY)
    return page
