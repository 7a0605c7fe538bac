"""The FastAPI app: the three APIs, a health route, /api/v1/status, optional Bearer-token auth, and a cap and a
deadline on every request body."""
from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import time
from pathlib import Path

from fastapi import FastAPI, Request

from .. import checkpoint, paths, registry
from ..device import describe, pick_device
from ..standins import learned
from ..standins.wording import summary
from . import caption_upload, captioners, errors, legacy, photofield, photoprism, threads
from .pool import ModelPool
from .settings import Settings

log = logging.getLogger("vlsteps.serve")
OPEN_PATHS = ("/health", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc")


class BodyGuard:
    """Every request body within its byte limit and its deadline, whatever its framing (Content-Length or chunked):
    one announced past the limit gets 413 before it is read, one that grows past it while streaming gets 413 as soon
    as it does, and one not in full `body_timeout_s` after the request began gets 408. The rest of such a body is
    never read, so the answer closes the connection. A multipart upload may hold `max_images` images, anything else
    (JSON) one image as a data URL."""

    def __init__(self, app, settings: Settings):
        self.app = app
        self.json_bytes = settings.max_image_bytes * 4 // 3 + 64 * 1024          # base64 of one image, and room
        self.multipart_bytes = settings.max_image_bytes * settings.max_images + 1024 * 1024
        self.timeout = settings.body_timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        deadline = time.monotonic() + self.timeout
        headers = dict(scope["headers"])
        multipart = headers.get(b"content-type", b"").lower().startswith(b"multipart/")
        limit = self.multipart_bytes if multipart else self.json_bytes
        too_big = _Refused(413, f"The request body is over the {limit / 1e6:.3g} MB limit; send a smaller image.")
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await too_big.answer(scope, receive, send)
        seen, complete, refused, started = 0, False, None, False

        async def guarded_receive():
            nonlocal seen, complete, refused
            if refused:
                raise refused
            if complete:        # past the body: what is left to receive is the client going away
                return await receive()
            try:
                event = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                refused = _Refused(408, f"The request body did not arrive in full within {self.timeout:g} s; "
                                        "send it without pauses.")
                raise refused from None
            seen += len(event.get("body", b""))
            complete = event["type"] != "http.request" or not event.get("more_body", False)
            if seen > limit:
                refused = too_big
                raise refused
            return event

        async def guarded_send(event):
            nonlocal started
            if refused is None:      # once refused, the app's answer to the refusal is dropped for the refusal's own
                started = True
                await send(event)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception:
            if refused is None:
                raise
        if refused is not None and not started:
            await refused.answer(scope, receive, send)


class _Refused(Exception):
    """A body the service will not read to its end: answered with `status` and closes the connection."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message

    async def answer(self, scope, receive, send):
        await errors.error_response(self.status, self.message, headers={"Connection": "close"})(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    chosen = threads.choose(settings.threads, settings.runtime)
    settings = dataclasses.replace(settings, runtime=chosen["runtime"])
    if settings.runtime == "onnx":
        from ..onnx_clip import require
        require()                   # missing onnxruntime: said at start, not at the first request
    app = FastAPI(title="vlsteps serve", version="1",
                  description="The collection's vision-language models as a service: PhotoPrism's Vision API, its "
                              "legacy describe routes, and Photofield AI's embedding routes, batched across "
                              "requests. /api/v1/status says which models are stand-ins: tiny copies, trained on "
                              "scenes of coloured shapes or random, not the real checkpoints.")
    app.state.settings = settings
    app.state.threads = chosen
    app.state.pool = ModelPool(settings, chosen["prepare_threads"], chosen["clip_threads"])
    app.state.pool.load_adapted()
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
    app.add_middleware(BodyGuard, settings=settings)
    return app


def service_status(app: FastAPI) -> dict:
    """What is served from where: for each model whether a real checkpoint is there or a stand-in would be used."""
    settings, pool = app.state.settings, app.state.pool
    keys = ["clip", *dict.fromkeys(m.key for m in captioners.MODELS.values())]
    adapters = {captioners.MODELS[name].key: Path(path).name for name, path in settings.adapters.items()}
    served = {}
    for key in keys:
        real = bool(settings.clip_dir) if key == "clip" and settings.clip_dir else checkpoint.is_real(key)
        source = pool.sources.get(key)
        standin = source["standin"] if source else (not real and paths.standins_allowed())
        served[key] = {"repo_id": registry.get(key).repo_id, "real_checkpoint": real, "standin": standin,
                       # before it loads: whether its stand-in will be built with learned weights
                       "learned": standin and (source["learned"] if source else learned.record(key) is not None),
                       "loaded": source is not None, "runtime": settings.runtime if key == "clip" else "torch",
                       "adapter": adapters.get(key)}     # the LoRA adapter folder merged in, by name
    standins = {k: v["learned"] for k, v in sorted(served.items()) if v["standin"]}
    return {"standins_in_use": bool(standins),
            "warning": f"STAND-INS: {summary(standins)}" if standins else None,
            "device": describe(pick_device()), "models": served, "loaded": pool.status()["loaded"],
            "caption_prompts": {name: spec.prompt_use for name, spec in captioners.MODELS.items()},
            "batching": pool.status()["batching"], "threads": app.state.threads,
            "limits": {"max_batch": settings.max_batch, "max_wait_ms": settings.max_wait_ms,
                       "max_image_bytes": settings.max_image_bytes, "max_images": settings.max_images,
                       "body_timeout_s": settings.body_timeout_s,
                       "max_texts": settings.max_texts, "max_text_chars": settings.max_text_chars,
                       "auth": bool(settings.token),
                       "private_addresses_allowed": list(map(str, settings.policy.allow))}}
