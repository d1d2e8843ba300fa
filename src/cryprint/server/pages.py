"""The station's pages: the ward, whose cry?, same baby?, the model card and the login.

Plain HTML forms (they work without JavaScript; the page's own script only records a cry in
the browser). Every form that changes the ward carries the CSRF token, and removing a baby
asks for a confirmation first.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cryprint.scoring.ranking import Identification
from cryprint.server.api import _baby, _client, _station, _upload
from cryprint.server.security import (
    CSRF_FIELD,
    SESSION_COOKIE,
    Guard,
    require_access,
    require_csrf,
    require_same_origin,
)

router = APIRouter(include_in_schema=False)
guarded = [Depends(require_access), Depends(require_same_origin)]
changing = [*guarded, Depends(require_csrf)]


def _page(request: Request, template: str, **context: Any) -> Response:
    guard: Guard = request.app.state.guard
    station = _station(request)
    context.update(
        csrf_field=CSRF_FIELD,
        csrf=guard.csrf,
        model=station.embedder.source.rstrip("/").split("/")[-1] or "model",
        scoring=station.embedder.scoring,
        message=request.query_params.get("done", ""),
        locked=guard.token is not None,
    )
    return request.app.state.templates.TemplateResponse(request, template, context)


@router.get("/", response_class=HTMLResponse, dependencies=guarded)
def ward_page(request: Request) -> Response:
    return _page(request, "ward.html", ward=_station(request).ward())


@router.post("/ward/enrol", dependencies=changing)
async def enrol_page(
    request: Request, baby_id: Annotated[str, Form()], files: Annotated[list[UploadFile], File()]
) -> Response:
    uploads = [await _upload(file) for file in files if file.filename]
    result = await _station(request).enrol(_baby(baby_id), uploads, _client(request))
    done = f"enrolled {result.added} recording(s) for {result.baby_id}"
    return RedirectResponse(f"/?done={quote(done)}", 303)


@router.get("/ward/remove", response_class=HTMLResponse, dependencies=guarded)
def confirm_removal(request: Request, baby: str) -> Response:
    return _page(request, "remove.html", baby=_baby(baby))


@router.post("/ward/remove", dependencies=changing)
def remove_page(request: Request, baby_id: Annotated[str, Form()]) -> Response:
    baby = _baby(baby_id)
    removed = _station(request).remove(baby, _client(request))
    done = f"removed {baby} and {removed} enrolment(s): discharged"
    return RedirectResponse(f"/?done={quote(done)}", 303)


@router.get("/identify", response_class=HTMLResponse, dependencies=guarded)
def identify_form(request: Request) -> Response:
    return _page(request, "identify.html", result=None)


@router.post("/identify", response_class=HTMLResponse, dependencies=changing)
async def identify_page(request: Request, file: Annotated[UploadFile, File()]) -> Response:
    station = _station(request)
    result, outline = await station.identify(await _upload(file))
    view = station.public(_answer_view(result))
    return _page(request, "identify.html", result=view, outline=_svg(outline))


# The lines of an answer shown under its table: where it came from.
_DETAILS = ("rule:", "prior:", "probabilities:", "scores:")


def _answer_view(result: Identification) -> dict[str, Any]:
    """What the page shows of an answer: the words, the bars, the rule and the sources."""
    lines = result.explain()
    candidates = [
        {
            "baby_id": c.baby_id,
            "probability": c.probability,
            "width": round(100 * (c.probability or 0.0), 1),
            "score": c.score,
            "n_enrolments": c.n_enrolments,
        }
        for c in result.candidates
    ]
    return {
        "words": result.answer.words(),
        "kind": result.answer.kind,
        "candidates": candidates,
        "p_none": result.p_none,
        "none_width": round(100 * (result.p_none or 0.0), 1),
        "details": [
            line for line in lines if line.startswith(("rule:", "prior:", "probab", "scores:"))
        ],
        "json": json.dumps(result.to_dict(), indent=2),
    }


def _svg(outline: list[tuple[float, float]]) -> str:
    """The polyline points of a waveform outline in a 300 x 60 box (numbers only)."""
    top = " ".join(f"{x},{30 - 28 * high:.1f}" for x, (_, high) in enumerate(outline))
    bottom = " ".join(
        f"{x},{30 - 28 * low:.1f}" for x, (low, _) in reversed(list(enumerate(outline)))
    )
    return f"{top} {bottom}"


@router.get("/verify", response_class=HTMLResponse, dependencies=guarded)
def verify_form(request: Request) -> Response:
    return _page(request, "verify.html", verdict=None)


@router.post("/verify", response_class=HTMLResponse, dependencies=changing)
async def verify_page(
    request: Request, a: Annotated[UploadFile, File()], b: Annotated[UploadFile, File()]
) -> Response:
    station = _station(request)
    verdict = await station.verify(await _upload(a), await _upload(b))
    return _page(request, "verify.html", verdict=station.public(verdict.explain()))


@router.get("/model", response_class=HTMLResponse, dependencies=guarded)
def model_page(request: Request) -> Response:
    station = _station(request)
    folder = station.embedder.loaded.folder
    card = folder / "README.md" if folder is not None else None
    text = card.read_text(encoding="utf-8", errors="replace") if card and card.is_file() else ""
    facts = {
        "model id": station.embedder.model_id[:16],
        "embedded with": station.embedder.embedding_description,
        "scores": station.embedder.scoring,
    }
    return _page(request, "model.html", facts=facts, card=text or "This model folder has no card.")


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    return _page(request, "login.html", failed=False)


@router.post("/login", response_class=HTMLResponse, dependencies=[Depends(require_same_origin)])
def login(request: Request, token: Annotated[str, Form()]) -> Response:
    guard: Guard = request.app.state.guard
    if not guard.login(token):
        return _page(request, "login.html", failed=True)
    response = RedirectResponse("/", 303)
    response.set_cookie(SESSION_COOKIE, guard.session or "", httponly=True, samesite="strict")
    return response
