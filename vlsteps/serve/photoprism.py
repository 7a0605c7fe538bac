"""PhotoPrism's Vision API: `POST /api/v1/vision/caption` and `/labels` (optionally `/{model}`), in its "vision"
request and response format (photoprism/photoprism, internal/ai/vision/api_request.go and api_response.go).

PhotoPrism sends `images` as data URLs or https URLs (or one `url`): one thumbnail for a caption, and for labels one
for a square photo or three (centre tile, left and right crops) for any other (internal/photoprism/mediafile_vision.go).
It reads `result.caption` or `result.labels`; on a status >= 300 it only logs the body, so an error costs that photo
its caption or labels.
"""
from __future__ import annotations

import asyncio
import math
import uuid
from typing import Any, Optional

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from . import captioners
from .errors import ServiceError
from .inputs import BadInput, image_from
from .labels import merge

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


def _images(body: VisionRequest, request_id: str, request: Request) -> list:
    """The request's images: `images`, or else `url`; at least one and at most `max_images`."""
    sources = [s for s in body.images if s] or ([body.url] if body.url else [])
    settings = request.app.state.settings
    if not sources:
        raise ServiceError(400, "No image: send one in `images` (a data URL or an http(s) URL) or in `url`.",
                           request_id)
    if len(sources) > settings.max_images:
        raise ServiceError(413, f"{len(sources)} images in one request; at most {settings.max_images}.", request_id)
    try:
        return [image_from(source, settings) for source in sources]
    except BadInput as e:
        raise ServiceError(e.status, str(e), request_id) from None


def _one_image(body: VisionRequest, request_id: str, request: Request):
    """A caption is of one image: PhotoPrism sends one thumbnail per caption (mediafile_vision.go, GenerateCaption)
    and its own server answers one caption per request (api_response.go, NewCaptionResponse). Several are refused,
    not captioned one of them silently: this service's caption models see one image at a time."""
    images = [s for s in body.images if s]
    if len(images) > 1:
        raise ServiceError(400, f"{len(images)} images sent; a caption describes one: send one request per image.",
                           request_id)
    return _images(body, request_id, request)[0]


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
    images = _images(body, request_id, request)
    pool = request.app.state.pool
    k = _label_count(body.options, request_id)
    labels = merge(await asyncio.gather(*(pool.labels(image, k=k) for image in images)))
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
             summary="Labels by CLIP zero-shot over the vocabulary; several images (views of one photo) merged")
async def labels(body: VisionRequest, request: Request):
    return await _labels(body, request, "")


@router.post("/labels/{model}", response_model=VisionResponse, response_model_exclude_none=True,
             summary="Labels with a named model (clip)")
async def labels_with(model: str, body: VisionRequest, request: Request):
    return await _labels(body, request, model)
