"""The station's JSON API, for a hospital system to call (described at ``/openapi.json``).

Every call carries the access token when the station has one (``Authorization: Bearer``);
enrolment and removal are refused from another origin. Uploads are multipart form fields.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from pydantic import BaseModel, Field

from cryprint.scoring.open_set import DEFAULT_ENROLLED_PRIOR, WardRule
from cryprint.server.security import require_access, require_csrf, require_same_origin
from cryprint.server.station import Station, StationError, Upload
from cryprint.ward.gallery import check_baby_id
from cryprint.ward.identify import WardQuestion

router = APIRouter(
    prefix="/api",
    tags=["ward"],
    dependencies=[Depends(require_access), Depends(require_same_origin)],
)


# The default rule's levels, the form fields' defaults.
_RULE = WardRule()


class EnrolmentOut(BaseModel):
    baby_id: str
    added: int = Field(description="recordings enrolled by this call")
    skipped: list[str] = Field(description="uploads whose audio was already enrolled for the baby")
    n_enrolments: int = Field(description="the baby's enrolments in all")


class BabyOut(BaseModel):
    baby_id: str
    n_enrolments: int
    created: str = Field(description="first enrolment, ISO 8601 UTC")
    enrolments: list[dict[str, str]]


class WardOut(BaseModel):
    babies: list[BabyOut]
    audit: list[dict[str, Any]] = Field(description="enrolments and removals, newest first")


class RemovedOut(BaseModel):
    baby_id: str
    removed: int = Field(description="enrolments removed with the baby")


class ModelOut(BaseModel):
    source: str
    model_id: str
    embedded_with: str
    scoring: str


def _station(request: Request) -> Station:
    return request.app.state.station


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _upload(file: UploadFile) -> Upload:
    return Upload(file.filename or "recording", await file.read())


def _baby(baby_id: str) -> str:
    from cryprint.errors import ConfigError

    try:
        return check_baby_id(baby_id)
    except ConfigError as error:
        raise StationError(400, str(error)) from error


@router.get("/ward", response_model=WardOut, summary="the enrolled babies and the audit log")
def ward(request: Request) -> dict[str, Any]:
    return _station(request).ward()


@router.post(
    "/babies",
    response_model=EnrolmentOut,
    dependencies=[Depends(require_csrf)],
    summary="enrol one baby's recordings (one transaction)",
)
async def enrol_baby(
    request: Request, baby_id: Annotated[str, Form()], files: Annotated[list[UploadFile], File()]
) -> dict[str, Any]:
    uploads = [await _upload(file) for file in files]
    result = await _station(request).enrol(_baby(baby_id), uploads, _client(request))
    return result.__dict__


@router.delete(
    "/babies/{baby_id}",
    response_model=RemovedOut,
    dependencies=[Depends(require_csrf)],
    summary="remove a baby and its enrolments (discharge)",
)
def remove_baby(request: Request, baby_id: str) -> dict[str, Any]:
    baby = _baby(baby_id)
    return {"baby_id": baby, "removed": _station(request).remove(baby, _client(request))}


@router.post("/identify", summary="whose cry is this? probabilities over the ward")
async def identify_cry(
    request: Request,
    file: Annotated[UploadFile, File()],
    enrolled_prior: Annotated[float, Form()] = DEFAULT_ENROLLED_PRIOR,
    min_probability: Annotated[float, Form()] = _RULE.min_probability,
    review_level: Annotated[float, Form()] = _RULE.review_level,
    max_false_alarm: Annotated[float | None, Form()] = None,
    top: Annotated[int, Form()] = 5,
) -> dict[str, Any]:
    question = _question(enrolled_prior, min_probability, review_level, max_false_alarm, top)
    station = _station(request)
    result, _ = await station.identify(await _upload(file), question)
    return station.public(result.to_dict())


def _question(
    prior: float, minimum: float, review: float, alarm: float | None, top: int
) -> WardQuestion:
    from cryprint.errors import ConfigError

    try:
        rule = WardRule(minimum, review)
        return WardQuestion(max_false_alarm=alarm, enrolled_prior=prior, rule=rule, top=top)
    except ConfigError as error:
        raise StationError(400, str(error)) from error


@router.post("/verify", summary="are two cries the same baby? verify's verdict")
async def verify_cries(
    request: Request, a: Annotated[UploadFile, File()], b: Annotated[UploadFile, File()]
) -> dict[str, Any]:
    station = _station(request)
    verdict = await station.verify(await _upload(a), await _upload(b))
    return station.public(verdict.to_dict())


@router.get("/model", response_model=ModelOut, summary="the model the answers come from")
def model(request: Request) -> dict[str, Any]:
    embedder = _station(request).embedder
    return {
        "source": embedder.loaded.folder.name if embedder.loaded.folder else "model",
        "model_id": embedder.model_id,
        "embedded_with": embedder.embedding_description,
        "scoring": embedder.scoring,
    }
