"""PhotoPrism's older describe service: `/api/v1/vision/describe` (GET with query parameters, POST with JSON
`{url, model, id}`) and one route per model, answering `{id, model: {name, version}, result: {caption}}`.

Kept for clients of that service, with its bugs fixed: the URL is fetched under the address policy with a deadline
and a byte cap (it had neither), every route names its own model (its BLIP route said "vit-gpt2"), the caption is
always a string (ViT-GPT2's was a list) and a URL that cannot be fetched is the client's error (4xx), not a 500.
"""
from __future__ import annotations

import uuid
from typing import Optional

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from .errors import ServiceError
from .inputs import BadInput, image_from

router = APIRouter(prefix="/api/v1/vision/describe", tags=["PhotoPrism describe (legacy)"])

# route segment -> (caption model in captioners.MODELS, legacy name, legacy version)
ROUTES = {
    "kosmos-2/patch14-224": ("kosmos-2", "kosmos-2", "patch14-224"),
    "vit-gpt2-image-captioning": ("vit-gpt2", "vit-gpt2-image-captioning", "latest"),
    "blip-image-captioning-large": ("blip-caption", "blip-image-captioning", "large"),
}
# what the `model` parameter may say: the route segment, the legacy name or this service's name
BY_NAME = {alias: value for segment, value in ROUTES.items() for alias in (segment, value[1], value[0])}
DEFAULT = "kosmos-2/patch14-224"


class DescribeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    url: str = Field(..., max_length=100_000, description="http(s) URL or data URL of the image")
    model: str = Field("", max_length=200)
    id: Optional[str] = Field(None, max_length=200)


class DescribeModel(BaseModel):
    name: str
    version: str


class DescribeResult(BaseModel):
    caption: str


class DescribeResponse(BaseModel):
    id: str
    model: DescribeModel
    result: DescribeResult


async def _describe(request: Request, url: str, model: str, request_id: str | None) -> dict:
    request_id = (request_id or "").strip() or str(uuid.uuid4())
    key = (model or DEFAULT).strip().lower()
    if key not in BY_NAME:
        raise ServiceError(404, f"No describe model {model!r}; served: {', '.join(ROUTES)}.", request_id)
    served, name, version = BY_NAME[key]
    try:
        image = image_from(url, request.app.state.settings)
    except BadInput as e:
        raise ServiceError(e.status, str(e), request_id) from None
    text, _ = await request.app.state.pool.caption(served, image, None)
    return {"id": request_id, "model": {"name": name, "version": version}, "result": {"caption": text}}


@router.get("", response_model=DescribeResponse, summary="Caption the image at `url` (default: Kosmos-2)")
async def describe_get(request: Request, url: str = Query(..., max_length=100_000), model: str = "",
                       id: Optional[str] = None):
    return await _describe(request, url, model, id)


@router.post("", response_model=DescribeResponse, summary="Caption the image at `url` (JSON body)")
async def describe_post(body: DescribeRequest, request: Request):
    return await _describe(request, body.url, body.model, body.id)


def _routes(segment: str):
    async def get(request: Request, url: str = Query(..., max_length=100_000), id: Optional[str] = None):
        return await _describe(request, url, segment, id)

    async def post(body: DescribeRequest, request: Request):
        return await _describe(request, body.url, segment, body.id)

    name = ROUTES[segment][1]
    router.add_api_route(f"/{segment}", get, methods=["GET"], response_model=DescribeResponse,
                         summary=f"Caption with {name}", operation_id=f"describe_{name}_get".replace("-", "_"))
    router.add_api_route(f"/{segment}", post, methods=["POST"], response_model=DescribeResponse,
                         summary=f"Caption with {name} (JSON body)",
                         operation_id=f"describe_{name}_post".replace("-", "_"))


for _segment in ROUTES:
    _routes(_segment)
