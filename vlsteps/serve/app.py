"""The FastAPI app: the three APIs, a health route, /api/v1/status, optional Bearer-token auth and a body cap."""
from __future__ import annotations

import hmac
import logging

from fastapi import FastAPI, Request

from .. import checkpoint, paths, registry
from ..device import describe, pick_device
from . import caption_upload, captioners, errors, legacy, photofield, photoprism
from .pool import ModelPool
from .settings import Settings

log = logging.getLogger("vlsteps.serve")
OPEN_PATHS = ("/health", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc")


class BodyLimit:
    """Refuses a request body past its limit (413) before it is parsed, whether it says its length or not: a
    multipart upload may hold `max_images` images, anything else (JSON) one image as a data URL."""

    def __init__(self, app, settings: Settings):
        self.app = app
        self.json_bytes = settings.max_image_bytes * 4 // 3 + 64 * 1024          # base64 of one image, and room
        self.multipart_bytes = settings.max_image_bytes * settings.max_images + 1024 * 1024

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        multipart = headers.get(b"content-type", b"").lower().startswith(b"multipart/")
        limit = self.multipart_bytes if multipart else self.json_bytes
        message = f"The request body is over the {limit / 1e6:.0f} MB limit."
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await errors.error_response(413, message)(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            event = await receive()
            seen += len(event.get("body", b""))
            if seen > limit:
                raise errors.ServiceError(413, message)
            return event

        await self.app(scope, limited, send)


def create_app(settings: Settings | None = None, pool: ModelPool | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    app = FastAPI(title="vlsteps serve", version="1",
                  description="The collection's vision-language models as a service: PhotoPrism's Vision API, its "
                              "legacy describe routes, and Photofield AI's embedding routes, batched across "
                              "requests. Outputs of stand-in models are gibberish by design: see /api/v1/status.")
    app.state.settings = settings
    app.state.pool = pool or ModelPool(settings)
    errors.install(app)

    @app.middleware("http")
    async def bearer_token(request: Request, call_next):
        if settings.token and request.url.path not in OPEN_PATHS:
            sent = request.headers.get("authorization", "")
            scheme, _, token = sent.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), settings.token.encode()):
                return errors.error_response(401, "Send the service's token: Authorization: Bearer <token>.",
                                             headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)

    @app.get("/health", tags=["service"], summary="Is the server up")
    async def health():
        return {"status": "ok"}

    @app.get("/api/v1/status", tags=["service"], summary="Models, stand-ins, batching and limits")
    async def status(request: Request):
        return service_status(request.app)

    for router in (photoprism.router, legacy.router, photofield.router, caption_upload.router):
        app.include_router(router)
    app.add_middleware(BodyLimit, settings=settings)
    return app


def service_status(app: FastAPI) -> dict:
    """What is served from where: for each model whether a real checkpoint is there or a stand-in would be used."""
    settings, pool = app.state.settings, app.state.pool
    keys = ["clip", *dict.fromkeys(m.key for m in captioners.MODELS.values())]
    served = {}
    for key in keys:
        real = bool(settings.clip_dir) if key == "clip" and settings.clip_dir else checkpoint.is_real(key)
        source = pool.sources.get(key)
        served[key] = {"repo_id": registry.get(key).repo_id, "real_checkpoint": real,
                       "standin": source["standin"] if source else (not real and paths.standins_allowed()),
                       "loaded": source is not None}
    standins = sorted(k for k, v in served.items() if v["standin"])
    return {"standins_in_use": bool(standins),
            "warning": (f"STAND-INS: {', '.join(standins)} are tiny random-weight copies; their outputs are "
                        "gibberish by design." if standins else None),
            "device": describe(pick_device()), "models": served, "loaded": pool.status()["loaded"],
            "caption_prompts": {name: spec.prompt_use for name, spec in captioners.MODELS.items()},
            "batching": pool.status()["batching"],
            "limits": {"max_batch": settings.max_batch, "max_wait_ms": settings.max_wait_ms,
                       "max_image_bytes": settings.max_image_bytes, "max_images": settings.max_images,
                       "max_texts": settings.max_texts, "max_text_chars": settings.max_text_chars,
                       "auth": bool(settings.token),
                       "private_addresses_allowed": list(map(str, settings.policy.allow))}}
