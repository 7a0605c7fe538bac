"""PhotoPrism's Vision API: `POST /api/v1/vision/caption` and `/labels` (optionally `/{model}`), in its "vision"
request and response format (photoprism/photoprism, internal/ai/vision/api_request.go and api_response.go).

PhotoPrism sends `images` as data URLs or https URLs (or one `url`), one image per request; it reads
`result.caption` or `result.labels`, and `code`/`error` when a request failed.
"""
from __future__ import annotations

import math
import uuid
from typing import Any, Optional

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from . import captioners
from .errors import ServiceError
from .inputs import BadInput, image_from

router = APIRouter(prefix="/api/v1/vision", tags=["PhotoPrism Vision API"])
LABELS_MODEL = "clip"
MAX_LABELS = 20


class VisionRequest(BaseModel):
    """PhotoPrism's ApiRequest; fields it sends that do not apply here (system, suffix, format, options, context,
    stream) are accepted and ignored."""
    model_config = ConfigDict(extra="ignore")
    id: str = Field("", max_length=200)
    model: str = Field("", max_length=200)
    version: str = Field("", max_length=200)
    system: str = ""
    prompt: str = Field("", max_length=2000)
    suffix: str = ""
    format: str = ""
    url: str = ""
    options: Optional[dict[str, Any]] = None
    context: Optional[list[int]] = None
    stream: bool = False
    images: list[str] = Field(default_factory=list)


class ModelInfo(BaseModel):
    type: str
    name: str
    version: str
    resolution: Optional[int] = None


class CaptionResult(BaseModel):
    text: str
    source: str
    confidence: float


class LabelResult(BaseModel):
    name: str
    source: str
    priority: int
    confidence: float
    topicality: float
    categories: list[str]


class VisionResult(BaseModel):
    caption: Optional[CaptionResult] = None
    labels: Optional[list[LabelResult]] = None


class VisionResponse(BaseModel):
    id: str
    code: int
    model: ModelInfo
    result: VisionResult


def _request_id(body: VisionRequest) -> str:
    return body.id.strip() or str(uuid.uuid4())


def _one_image(body: VisionRequest, request_id: str, request: Request):
    sources = [s for s in body.images if s] or ([body.url] if body.url else [])
    if len(sources) != 1:
        raise ServiceError(400, f"Send exactly one image (in `images` or `url`); got {len(sources)}.", request_id)
    try:
        return image_from(sources[0], request.app.state.settings)
    except BadInput as e:
        raise ServiceError(e.status, str(e), request_id) from None


def _caption_model(name: str, request_id: str) -> captioners.CaptionModel:
    name = (name or captioners.DEFAULT).strip().lower()
    if name not in captioners.MODELS:
        raise ServiceError(404, f"No caption model {name!r}; served: {', '.join(captioners.MODELS)}.", request_id)
    return captioners.MODELS[name]


async def _caption(body: VisionRequest, request: Request, model_name: str) -> dict:
    request_id = _request_id(body)
    spec = _caption_model(model_name or body.model, request_id)
    image = _one_image(body, request_id, request)
    pool = request.app.state.pool
    text, confidence = await pool.caption(spec.name, image, body.prompt.strip() or None)
    captioner = pool.captioner(spec.name)
    return {"id": request_id, "code": 200,
            "model": {"type": "caption", "name": spec.name, "version": spec.version,
                      "resolution": captioner.resolution},
            "result": {"caption": {"text": text, "source": "image", "confidence": confidence}}}


async def _labels(body: VisionRequest, request: Request, model_name: str) -> dict:
    request_id = _request_id(body)
    name = (model_name or body.model or LABELS_MODEL).strip().lower()
    if name != LABELS_MODEL:
        raise ServiceError(404, f"No labels model {name!r}; served: {LABELS_MODEL}.", request_id)
    image = _one_image(body, request_id, request)
    pool = request.app.state.pool
    labels = await pool.labels(image, k=_label_count(body.options, request_id))
    embedder = pool.embedder()
    return {"id": request_id, "code": 200,
            "model": {"type": "labels", "name": LABELS_MODEL, "version": embedder.collection_tag,
                      "resolution": captioners.resolution(embedder.processor.image_processor)},
            "result": {"labels": [{"name": label["name"], "source": "image", "priority": 0,
                                   "confidence": label["confidence"], "topicality": label["topicality"],
                                   "categories": []} for label in labels]}}


def _label_count(options: dict | None, request_id: str) -> int:
    """`options.num_predict` or `max_output_tokens` caps how many labels come back (default 5, at most 20). Both are
    integers to PhotoPrism and Ollama, which refuse Infinity, NaN and 1e400 (no int holds them): so does this."""
    value = (options or {}).get("num_predict") or (options or {}).get("max_output_tokens") or 5
    if isinstance(value, float) and not math.isfinite(value):
        raise ServiceError(422, f"options: {value} labels is not a number; send a whole number from 1 to {MAX_LABELS}.",
                           request_id)
    return max(1, min(MAX_LABELS, int(value))) if isinstance(value, (int, float)) else 5


@router.post("/caption", response_model=VisionResponse, response_model_exclude_none=True,
             summary="Caption one image (default model: kosmos-2)")
async def caption(body: VisionRequest, request: Request):
    return await _caption(body, request, "")


@router.post("/caption/{model}", response_model=VisionResponse, response_model_exclude_none=True,
             summary="Caption one image with a named model: " + ", ".join(captioners.MODELS))
async def caption_with(model: str, body: VisionRequest, request: Request):
    return await _caption(body, request, model)


@router.post("/labels", response_model=VisionResponse, response_model_exclude_none=True,
             summary="Labels for one image by CLIP zero-shot over the vocabulary")
async def labels(body: VisionRequest, request: Request):
    return await _labels(body, request, "")


@router.post("/labels/{model}", response_model=VisionResponse, response_model_exclude_none=True,
             summary="Labels with a named model (clip)")
async def labels_with(model: str, body: VisionRequest, request: Request):
    return await _labels(body, request, model)
