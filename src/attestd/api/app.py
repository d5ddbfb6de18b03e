"""HTTP only: MAA's data-plane REST API (maa-compat.md §1.2) over Starlette.

Paths and attestation types compare case-insensitively, as MAA's do. Every error is a CloudError
body with MAA's code (mapping in :mod:`attestd.api.problems`); nothing reaches the client as a
traceback. Management calls need ``Authorization: Bearer <api key>`` (AAD-style instances
authenticate administrators; isolated instances also require signed policy documents).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from attestd import __version__
from attestd.api.auth import Authenticator
from attestd.api.problems import cloud_error, status_and_code
from attestd.errors import AttestdError
from attestd.service import AttestationService, InvalidRequest

__all__ = ["create_app"]

log = logging.getLogger("attestd.api")
SUPPORTED_API_VERSIONS = ("2020-10-01", "2022-08-01", "2022-09-01", "2025-06-01")
Handler = Callable[[Request], Awaitable[Response]]


def _json(body: Any, status: int = 200, request_id: str = "") -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json; charset=utf-8",
        headers={
            "x-ms-maa-service-version": f"attestd/{__version__}",
            "x-ms-request-id": request_id,
        },
    )


class _LowerPaths:
    """Route on the lower-cased path: MAA's paths and types are case-insensitive."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            lower = path.lower()
            if lower != path:
                scope = dict(scope)
                scope["path"] = lower
        await self.app(scope, receive, send)


def create_app(service: AttestationService) -> ASGIApp:
    settings = service.settings
    limit = settings.max_body_bytes

    async def body_of(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _TooLarge()
        data = b""
        async for chunk in request.stream():
            data += chunk
            if len(data) > limit:
                raise _TooLarge()
        return data

    def check_version(request: Request) -> None:
        version = request.query_params.get("api-version")
        if version is not None and version < "2020-10-01":
            raise InvalidRequest(
                f"api-version {version} is not supported (use one of "
                f"{', '.join(SUPPORTED_API_VERSIONS)})"
            )

    authenticator = Authenticator(service)

    def admin(request: Request) -> str:
        return authenticator.authenticate(request.headers.get("authorization"))

    def endpoint(fn: Callable[[Request], Awaitable[Any]]) -> Handler:
        async def handle(request: Request) -> Response:
            rid = f"00-{secrets.token_hex(16)}-0000000000000000-00"
            try:
                check_version(request)
                result = await fn(request)
            except _TooLarge:
                msg = f"request body larger than {limit} bytes"
                return _json(cloud_error("RequestTooLarge", msg), 413, rid)
            except AttestdError as exc:
                status, code = status_and_code(exc)
                if status >= 500:
                    log.error("request %s failed: %s", rid, exc.message)
                return _json(cloud_error(code, exc.message, exc.code), status, rid)
            except Exception:  # fail closed without leaking internals
                log.exception("request %s: unexpected error", rid)
                return _json(cloud_error("InternalError", "internal error"), 500, rid)
            return _json(result, 200, rid)

        return handle

    async def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run the (CPU-bound, GIL-holding) use case on the event loop: a thread-pool hop costs
        more than it saves. Scale with worker processes (``attestd serve --workers N``)."""
        return fn(*args, **kwargs)

    async def attest(request: Request) -> Any:
        if settings.attest_requires_auth:
            admin(request)
        raw = await body_of(request)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"the request body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise InvalidRequest("the request body must be a JSON object")
        token = await run(service.attest, request.path_params["type"], body)
        return {"token": token}

    async def certs(request: Request) -> Any:
        return service.certs()

    async def openid(request: Request) -> Any:
        return service.openid_configuration()

    async def get_policy(request: Request) -> Any:
        admin(request)
        return {"token": service.get_policy(request.path_params["type"])}

    async def put_policy(request: Request) -> Any:
        actor = admin(request)
        text = _text(await body_of(request))
        return {
            "token": await run(service.set_policy, request.path_params["type"], text, actor=actor)
        }

    async def reset_policy(request: Request) -> Any:
        actor = admin(request)
        text = _text(await body_of(request))
        kind = request.path_params["type"]
        return {"token": await run(service.reset_policy, kind, text, actor=actor)}

    async def get_certificates(request: Request) -> Any:
        admin(request)
        return {"token": service.get_signers()}

    def change(add: bool) -> Callable[[Request], Awaitable[Any]]:
        async def handler(request: Request) -> Any:
            actor = admin(request)
            raw = await body_of(request)
            try:
                value = json.loads(raw)
            except ValueError:
                value = _text(raw)  # tolerate the bare JWS
            if not isinstance(value, str):
                raise InvalidRequest("the body must be the certificate JWS as a JSON string")
            return {"token": await run(service.change_signer, value, add=add, actor=actor)}

        return handler

    async def openapi(request: Request) -> Any:
        from attestd.api.openapi import openapi_document

        return openapi_document(settings.instance_url)

    routes = [
        Route("/attest/{type}", endpoint(attest), methods=["POST"]),
        Route("/certs", endpoint(certs), methods=["GET"]),
        Route("/.well-known/openid-configuration", endpoint(openid), methods=["GET"]),
        Route("/policies/{type}:reset", endpoint(reset_policy), methods=["POST"]),
        Route("/policies/{type}", endpoint(get_policy), methods=["GET"]),
        Route("/policies/{type}", endpoint(put_policy), methods=["PUT"]),
        Route("/certificates", endpoint(get_certificates), methods=["GET"]),
        Route("/certificates:add", endpoint(change(True)), methods=["POST"]),
        Route("/certificates:remove", endpoint(change(False)), methods=["POST"]),
        Route("/openapi.json", endpoint(openapi), methods=["GET"]),
    ]
    app = Starlette(routes=routes)

    async def not_found(request: Request, exc: Exception) -> Response:
        return _json(
            cloud_error("NotFound", f"no operation {request.method} {request.url.path}"), 404
        )

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return _json(
            cloud_error(
                "MethodNotAllowed", f"{request.method} is not allowed on {request.url.path}"
            ),
            405,
        )

    app.add_exception_handler(404, not_found)
    app.add_exception_handler(405, not_allowed)
    return _LowerPaths(app)


class _TooLarge(Exception):
    pass


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest("the body must be UTF-8 text") from exc
