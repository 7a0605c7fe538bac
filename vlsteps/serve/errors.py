"""One error shape for every route, PhotoPrism's `{id, code, error}`, with the matching HTTP status and one sentence;
never a stack trace. Whatever a request sends, the server answers it and keeps serving."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..checkpoint import ModelNotFoundError
from .batching import Busy
from .inputs import BadInput

log = logging.getLogger("vlsteps.serve")


class ServiceError(Exception):
    def __init__(self, status: int, message: str, request_id: str | None = None):
        super().__init__(message)
        self.status, self.message, self.request_id = status, message, request_id


def utf8(text: str) -> str:
    """`text` as UTF-8 can carry it: a lone surrogate a client sent (a URL or id such as "\\ud800") becomes its
    escape, so echoing it back cannot fail the response."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_response(status: int, message: str, request_id: str | None = None, headers=None) -> JSONResponse:
    """The error as JSON, with what it quotes from the request written as UTF-8 can carry it."""
    body = {"code": status, "error": utf8(message)}
    if request_id:
        body = {"id": utf8(request_id), **body}
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "The request is not valid."
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path"))
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{where or 'request'}: {first.get('msg', 'invalid')}{more}"


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError):
        return error_response(exc.status, exc.message, exc.request_id)

    @app.exception_handler(BadInput)
    async def bad_input(request: Request, exc: BadInput):
        return error_response(exc.status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return error_response(422, _validation_message(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy):
        return error_response(429, str(exc), headers={"Retry-After": "1"})

    @app.exception_handler(ModelNotFoundError)
    async def no_model(request: Request, exc: ModelNotFoundError):
        return error_response(503, str(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, f"Internal error ({exc.__class__.__name__}); the server log has the details.")
