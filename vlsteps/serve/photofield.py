"""Photofield AI's routes (github.com/SmilyOrg/photofield-ai): `POST /text-embeddings` with `{"texts": [...]}` and
multipart `POST /image-embeddings`, answering each vector as base64 little-endian float16 and the inverse of its
L2 norm as a float16 written out as its uint16 bit pattern; `HEAD` on both for Photofield's feature discovery.
Plus `POST /search`: the nearest images in the collection's Chroma index (`vlsteps.index`) to a text or an image.
"""
from __future__ import annotations

import asyncio
import base64
from typing import Optional

import numpy as np
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from .. import index
from .errors import ServiceError
from .inputs import BadInput, Text, image_from, texts_within

router = APIRouter(tags=["Photofield AI"])


def encode(vector: np.ndarray) -> tuple[str, int]:
    """(the vector as base64 of little-endian float16, 1/‖vector‖ as a float16's uint16 bit pattern)."""
    vector = np.asarray(vector, dtype=np.float32)
    inverse_norm = np.divide(1, np.linalg.norm(vector), dtype=np.float16)    # as photofield-ai rounds it
    return (base64.b64encode(vector.astype("<f2").tobytes()).decode("ascii"),
            int(np.array(inverse_norm, dtype="<f2").view("<u2")))


def decode(embedding_f16_b64: str, inv_norm_uint16: int) -> tuple[np.ndarray, float]:
    """What a client does with `encode`'s output: the float32 vector and the inverse norm."""
    vector = np.frombuffer(base64.b64decode(embedding_f16_b64), dtype="<f2").astype(np.float32)
    return vector, float(np.array(inv_norm_uint16, dtype="<u2").view("<f2"))


class TextEmbeddingsRequest(BaseModel):
    texts: list[Text]


class TextEmbedding(BaseModel):
    text: str
    embedding_f16_b64: str
    embedding_inv_norm_f16_uint16: int


class TextEmbeddingsResponse(BaseModel):
    texts: list[TextEmbedding]


class ImageEmbedding(BaseModel):
    field: str
    filename: Optional[str]
    embedding_f16_b64: str
    embedding_inv_norm_f16_uint16: int


class ImageEmbeddingsResponse(BaseModel):
    images: list[ImageEmbedding]


@router.head("/text-embeddings", include_in_schema=False)
@router.head("/image-embeddings", include_in_schema=False)
async def available():
    return Response(status_code=200)


@router.post("/text-embeddings", response_model=TextEmbeddingsResponse, summary="CLIP text embeddings")
async def text_embeddings(body: TextEmbeddingsRequest, request: Request):
    texts = texts_within(body.texts, request.app.state.settings)
    vectors = await request.app.state.pool.text_vectors(texts)
    return {"texts": [dict(zip(("text", "embedding_f16_b64", "embedding_inv_norm_f16_uint16"), (t, *encode(v))))
                      for t, v in zip(texts, vectors)]}


@router.post("/image-embeddings", response_model=ImageEmbeddingsResponse, summary="CLIP image embeddings",
             openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                 "type": "object", "additionalProperties": {"type": "string", "format": "binary"},
                 "description": "any number of image files, each in a field of its own (image0, image1, ...)"}}}}})
async def image_embeddings(request: Request):
    settings = request.app.state.settings
    try:
        form = await request.form(max_files=settings.max_images, max_fields=settings.max_images,
                                  max_part_size=settings.max_image_bytes)
    except (HTTPException, AssertionError) as e:    # starlette's parser refuses with an HTTPException
        raise ServiceError(400, f"Send the images as multipart/form-data, at most {settings.max_images} files "
                                f"({getattr(e, 'detail', e)}).") from None
    try:
        files = list(form.multi_items())
        if not files:
            raise ServiceError(400, "No images: send one or more image files as multipart/form-data.")
        images = []
        for field, value in files:
            if not isinstance(value, UploadFile):
                raise ServiceError(422, f"Field {field!r} is not a file: send images as file parts.")
            images.append(await value.read())    # decoded off the event loop, with its batch (a bad one: 4xx)
    finally:
        await form.close()
    vectors = await request.app.state.pool.image_vectors(images)
    return {"images": [{"field": field, "filename": value.filename,
                        **dict(zip(("embedding_f16_b64", "embedding_inv_norm_f16_uint16"), encode(vector)))}
                       for (field, value), vector in zip(files, vectors)]}


class SearchRequest(BaseModel):
    text: Optional[Text] = Field(None, max_length=1000, description="what to look for, e.g. 'a photo of a cat'")
    image: Optional[str] = Field(None, max_length=30_000_000, description="an http(s) URL or data URL")
    k: int = Field(8, ge=1, le=100)


class SearchHit(BaseModel):
    id: str
    similarity: float
    metadata: dict


class SearchResponse(BaseModel):
    collection: str
    count: int
    hits: list[SearchHit]


@router.post("/search", response_model=SearchResponse,
             summary="The nearest images in the Chroma index to a text or an image")
async def search(body: SearchRequest, request: Request):
    if (body.text is None) == (body.image is None):
        raise ServiceError(400, 'Send either "text" or "image", not both and not neither.')
    pool = request.app.state.pool
    if body.text is not None:
        if not body.text.strip():
            raise ServiceError(400, "The text is empty: say what you are looking for, e.g. 'a photo of a cat'.")
        vector = (await pool.text_vectors([body.text.strip()]))[0]
    else:
        try:
            image = image_from(body.image, request.app.state.settings)
        except BadInput as e:
            raise ServiceError(e.status, str(e)) from None
        vector = (await pool.image_vectors([image]))[0]
    collection = await asyncio.to_thread(pool.collection)
    hits, count = await asyncio.to_thread(lambda: (index.search_by_vector(collection, vector, k=body.k),
                                                   collection.count()))
    return {"collection": collection.name, "count": count,
            "hits": [{"id": h.id, "similarity": round(h.similarity, 6), "metadata": h.metadata} for h in hits]}
