"""PhotoPrism's older describe service (photoprism/photoprism-vision, describe/app.py): `/api/v1/vision/describe`
(GET with query parameters, POST with JSON `{url, model, id}`) and one route per model, answering
`{id, model: {name, version}, result: {caption}}` with the names, versions and 400s that service answers with.

Kept for clients of that service, with its bugs fixed: the URL is fetched under the address policy with a deadline
and a byte cap (it had neither), the caption is always a string (ViT-GPT2's was a list), a URL that cannot be
fetched is the client's error (4xx), not a 500, and an unknown `model` is a 404 (it crashed).
"""
from __future__ import annotations

import uuid
from typing import Any, Optional

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from .errors import ServiceError, utf8
from .inputs import BadInput, image_from

router = APIRouter(prefix="/api/v1/vision/describe", tags=["PhotoPrism describe (legacy)"])

# route segment -> (caption model in captioners.MODELS, legacy name, legacy version)
ROUTES = {
    "kosmos-2/patch14-224": ("kosmos-2", "kosmos-2", "patch14-224"),
    "vit-gpt2-image-captioning": ("vit-gpt2", "vit-gpt2-image-captioning", "latest"),
    "blip-image-captioning-large": ("blip-caption", "blip-image-captioning-large", "latest"),
}
# what the `model` parameter may say: the route segment, the legacy name or this service's name
BY_NAME = {alias: value for segment, value in ROUTES.items() for alias in (segment, value[1], value[0])}
DEFAULT = "kosmos-2/patch14-224"


class DescribeRequest(BaseModel):
    """`url`: an http(s) URL or a data URL of the image; `model` (the route without a model name only): kosmos-2,
    vit-gpt2-image-captioning or blip-image-captioning-large; `id`: sent back (a random UUID when there is none)."""
    model_config = ConfigDict(extra="ignore")
    url: str
    model: str = ""
    id: Optional[str] = None


class DescribeModel(BaseModel):
    name: str
    version: str


class DescribeResult(BaseModel):
    caption: str


class DescribeResponse(BaseModel):
    id: str
    model: DescribeModel
    result: DescribeResult


async def _describe(request: Request, fields, segment: str = "") -> dict:
    """Upstream reads `url`, `model` and `id` from the query or the JSON object alike; no `url` is a 400."""
    url, model = fields.get("url"), fields.get("model")
    request_id = utf8(str(fields.get("id") or "").strip()) or str(uuid.uuid4())
    if not url or not isinstance(url, str):
        raise ServiceError(400, "URL is required: send `url`, an http(s) URL or a data URL of the image.", request_id)
    if not isinstance(model, (str, type(None))):
        raise ServiceError(400, "`model` must be a string, e.g. kosmos-2.", request_id)
    key = (segment or model or DEFAULT).strip().lower()
    if key not in BY_NAME:
        raise ServiceError(404, f"No describe model {model!r}; served: {', '.join(ROUTES)}.", request_id)
    served, name, version = BY_NAME[key]
    try:
        image = image_from(url, request.app.state.settings)
    except BadInput as e:
        raise ServiceError(e.status, str(e), request_id) from None
    text, _ = await request.app.state.pool.caption(served, image, None)
    return {"id": request_id, "model": {"name": name, "version": version}, "result": {"caption": text}}


async def _posted(request: Request) -> dict[str, Any]:
    """The JSON object a POST carries: anything but a JSON content type is a 400, as upstream's `request.is_json`."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not (kind == "application/json" or kind.startswith("application/") and kind.endswith("+json")):
        raise ServiceError(400, 'Request must be JSON: send Content-Type: application/json and {"url": "..."}.')
    try:
        body = await request.json()
    except ValueError:
        raise ServiceError(400, "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ServiceError(400, 'Send a JSON object: {"url": "https://example.com/photo.jpg"}.')
    return body


JSON_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": DescribeRequest.model_json_schema()}}}}
QUERY = {"parameters": [{"name": name, "in": "query", "required": name == "url", "schema": {"type": "string"}}
                        for name in ("url", "model", "id")]}


@router.get("", response_model=DescribeResponse, summary="Caption the image at `url` (default: Kosmos-2)",
            openapi_extra=QUERY)
async def describe_get(request: Request):
    return await _describe(request, request.query_params)


@router.post("", response_model=DescribeResponse, summary="Caption the image at `url` (JSON body)",
             openapi_extra=JSON_BODY)
async def describe_post(request: Request):
    return await _describe(request, await _posted(request))


def _routes(segment: str):
    async def get(request: Request):
        return await _describe(request, request.query_params, segment)

    async def post(request: Request):
        return await _describe(request, await _posted(request), segment)

    name = ROUTES[segment][1]
    router.add_api_route(f"/{segment}", get, methods=["GET"], response_model=DescribeResponse,
                         summary=f"Caption with {name}", operation_id=f"describe_{name}_get".replace("-", "_"),
                         openapi_extra={"parameters": [p for p in QUERY["parameters"] if p["name"] != "model"]})
    router.add_api_route(f"/{segment}", post, methods=["POST"], response_model=DescribeResponse,
                         summary=f"Caption with {name} (JSON body)", openapi_extra=JSON_BODY,
                         operation_id=f"describe_{name}_post".replace("-", "_"))


for _segment in ROUTES:
    _routes(_segment)
