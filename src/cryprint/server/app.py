"""The ward station's FastAPI application: routers, guards, headers and error answers.

``create_app(settings)`` loads the model once (:class:`~cryprint.server.station.Station`);
``cryprint serve`` runs it with uvicorn. The JSON API is described at ``/openapi.json`` (the
interactive docs pages are off: they load scripts from a CDN, and the station works offline).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from cryprint import __version__
from cryprint.server.api import router as api_router
from cryprint.server.pages import router as pages_router
from cryprint.server.security import SECURITY_HEADERS, BodyLimit, Guard
from cryprint.server.settings import StationSettings
from cryprint.server.station import Busy, Station, StationError

logger = logging.getLogger("cryprint.station")
HERE = Path(__file__).resolve().parent
RETRY_AFTER_SECONDS = 5


def create_app(settings: StationSettings, station: Station | None = None) -> FastAPI:
    """The station's application, its model loaded (or ``station`` given, for tests)."""
    station = station or Station(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        station.close()

    app = FastAPI(
        title="cryprint ward station",
        version=__version__,
        description="Enrol babies, identify a cry among them, verify two cries. Every request "
        "carries the access token when the station has one (Authorization: Bearer TOKEN).",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings, app.state.station = settings, station
    app.state.guard = Guard(settings.token)
    app.state.templates = Jinja2Templates(directory=HERE / "templates")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(pages_router)
    app.include_router(api_router)
    _add_handlers(app)

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes)
    return app


def _answer(request: Request, status: int, message: str, headers: dict | None = None) -> Response:
    """JSON for the API, a page for a person; never a traceback or a path."""
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": message}, status, headers=headers)
    templates: Jinja2Templates = request.app.state.templates
    context = {"status": status, "message": message}
    return templates.TemplateResponse(request, "error.html", context, status, headers=headers)


def _add_handlers(app: FastAPI) -> None:
    @app.exception_handler(StationError)
    async def refused(request: Request, error: StationError) -> Response:
        return _answer(request, error.status, error.message)

    @app.exception_handler(Busy)
    async def busy(request: Request, _: Busy) -> Response:
        headers = {"retry-after": str(RETRY_AFTER_SECONDS)}
        return _answer(request, 503, "the station is busy: try again in a few seconds", headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 303 and error.headers:
            return RedirectResponse(error.headers["location"], 303)
        return _answer(request, error.status_code, str(error.detail), error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        fields = ", ".join(str(item.get("loc", ["?"])[-1]) for item in error.errors()[:5])
        return _answer(request, 422, f"missing or invalid: {fields}")

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception) -> Response:
        logger.exception("internal error on %s %s", request.method, request.url.path)
        return _answer(request, 500, "internal error: the station logged it")
