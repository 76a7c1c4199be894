"""The console's web adapter: FastAPI on 127.0.0.1, server-rendered pages in Simplified Chinese,
every asset bundled. It only translates HTTP to the workflow core and the device's parts
(accounts, drafts, slice search, reader, camera, sealer) handed in as :class:`ConsoleServices`.

One router per family of pages, each in its own module: ``routes_session`` (login, logout),
``routes_search`` (home: search and the lists of drafts), ``routes_drafts`` (the form, saving,
submitting), ``routes_capture`` (identity card, photo), ``routes_review`` (复核 by a second
clerk), ``routes_sealing`` (signature, sheet, seal), ``routes_tasks`` (the tasks from the centre:
returned and refused records, comparison tasks), ``routes_confirmation`` (年度认证: the visit
list, card, live face check, confirm and seal). What they share is in ``deps``.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from edge.console.deps import HERE, ConsoleServices, Pages
from edge.console.routes_capture import capture_routes
from edge.console.routes_confirmation import confirmation_routes
from edge.console.routes_drafts import draft_routes
from edge.console.routes_review import review_routes
from edge.console.routes_sealing import sealing_routes
from edge.console.routes_search import search_routes
from edge.console.routes_session import session_routes
from edge.console.routes_tasks import task_routes

__all__ = ["ConsoleServices", "create_console_app"]


def create_console_app(services: ConsoleServices) -> FastAPI:
    app = FastAPI(title="muster 采集终端", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    pages = Pages(services)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code in (301, 302, 303) and exc.headers:
            return RedirectResponse(exc.headers["Location"], status_code=303)
        return pages.render(
            request, "message.html", pages.current(request), exc.status_code, error=str(exc.detail)
        )

    for routes in (
        session_routes,
        search_routes,
        draft_routes,
        capture_routes,
        review_routes,
        sealing_routes,
        task_routes,
        confirmation_routes,
    ):
        app.include_router(routes(pages))
    return app
