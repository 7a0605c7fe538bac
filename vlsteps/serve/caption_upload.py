"""The API of the Keras captioning trainer that notebooks/captioner.ipynb follows, `POST /caption` with one
multipart image file, answered by a captioner the learner trained in that notebook (or `make train-captioner`).
The upload is decoded in memory: its given file name is never used as a path (the original API wrote each upload
to `tmp/{filename}`)."""
from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, Request, UploadFile
from pydantic import BaseModel

from ..captioner import predict
from .errors import ServiceError
from .inputs import image_bytes

router = APIRouter(tags=["Trained captioner"])


class CaptionResponse(BaseModel):
    caption: str
    checkpoint: str


@router.post("/caption", response_model=CaptionResponse, summary="Caption an upload with your trained captioner")
async def caption(file: UploadFile, request: Request):
    settings = request.app.state.settings
    image = image_bytes(await file.read(settings.max_image_bytes + 1), settings)   # a bad upload is the client's
    try:
        trained = await asyncio.to_thread(predict.load, Path(settings.captioner_run))
    except FileNotFoundError as e:
        raise ServiceError(503, f"{e}. Train one with notebooks/captioner.ipynb or `make train-captioner`, or point "
                                "VLSTEPS_SERVE_CAPTIONER_RUN at a run folder.") from None
    text = await asyncio.to_thread(predict.caption_image, trained, image)
    return {"caption": text, "checkpoint": f"{trained.checkpoint.parent.name}/{trained.checkpoint.name}"}
