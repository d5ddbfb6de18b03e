"""HTTP only: MAA's data-plane REST API (maa-compat.md §1.2) over Starlette.

Paths and attestation types compare case-insensitively, as MAA's do. Every error is a CloudError
body with MAA's code (mapping in :mod:`attestd.api.problems`); nothing reaches the client as a
traceback. Management calls need ``Authorization: Bearer <api key>`` (AAD-style instances
authenticate administrators; isolated instances also require signed policy documents).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from attestd import __version__
from attestd._json import parse_json
from attestd.api.auth import Authenticator
from attestd.api.problems import cloud_error, status_and_code
from attestd.errors import AttestdError
from attestd.service import AttestationService, InvalidRequest

__all__ = ["create_app"]

log = logging.getLogger("attestd.api")
SUPPORTED_API_VERSIONS = ("2020-10-01", "2022-08-01", "2022-09-01", "2025-06-01")
Handler = Callable[[Request], Awaitable[Response]]
_SERVICE_VERSION = f"attestd/{__version__}".encode()


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
        check_version_value(request.query_params.get("api-version"))

    def check_version_value(version: str | None) -> None:
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
        if request.path_params["type"].lower() == "tpm":
            return service.attest_tpm(body)
        token = await run(service.attest, request.path_params["type"], body)
        return {"token": token}

    async def enroll(request: Request) -> Any:
        """``POST /enroll/Tpm``: attestd's TPM AK enrollment (MAA has no such endpoint)."""
        if settings.attest_requires_auth:
            admin(request)
        if request.path_params["type"].lower() != "tpm":
            raise InvalidRequest(
                f"enrollment of {request.path_params['type']!r} is not supported (only Tpm)"
            )
        try:
            body = orjson.loads(await body_of(request))
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"the request body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise InvalidRequest("the request body must be a JSON object")
        return await run(service.enroll_tpm, body)

    async def enroll_ca(request: Request) -> Any:
        return await run(service.aik_ca_certificate)

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
                value = parse_json(raw)
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
        Route("/enroll/ca", endpoint(enroll_ca), methods=["GET"]),
        Route("/enroll/{type}", endpoint(enroll), methods=["POST"]),
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

    def _rid() -> str:
        return f"00-{secrets.token_hex(16)}-0000000000000000-00"

    async def not_found(request: Request, exc: Exception) -> Response:
        msg = f"no operation {request.method} {request.url.path}"
        return _json(cloud_error("NotFound", msg), 404, _rid())

    async def not_allowed(request: Request, exc: Exception) -> Response:
        msg = f"{request.method} is not allowed on {request.url.path}"
        response = _json(cloud_error("MethodNotAllowed", msg), 405, _rid())
        allow = (getattr(exc, "headers", None) or {}).get("Allow")
        if allow:  # RFC 9110 §15.5.6: a 405 lists the allowed methods
            response.headers["Allow"] = allow
        return response

    app.add_exception_handler(404, not_found)
    app.add_exception_handler(405, not_allowed)

    async def fast_attest(scope: Scope, receive: Receive, send: Send, kind: str) -> None:
        """``POST /attest/{type}`` without the router: the hot path (same checks, same errors)."""
        rid = f"00-{secrets.token_hex(16)}-0000000000000000-00"
        status, payload = 200, b""
        try:
            raw = bytearray()
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                raw += message.get("body", b"")
                if len(raw) > limit:
                    raise _TooLarge()
                if not message.get("more_body", False):
                    break
            headers = dict(scope["headers"])
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            check_version_value((query.get("api-version") or [None])[0])
            if settings.attest_requires_auth:
                auth = headers.get(b"authorization")
                authenticator.authenticate(auth.decode("latin-1") if auth else None)
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise InvalidRequest(f"the request body is not JSON: {exc}") from exc
            if not isinstance(body, dict):
                raise InvalidRequest("the request body must be a JSON object")
            if kind == "tpm":
                payload = orjson.dumps(service.attest_tpm(body))
            else:
                payload = orjson.dumps({"token": service.attest(kind, body)})
        except _TooLarge:
            status = 413
            payload = orjson.dumps(
                cloud_error("RequestTooLarge", f"request body larger than {limit} bytes")
            )
        except AttestdError as exc:
            status, code = status_and_code(exc)
            if status >= 500:
                log.error("request %s failed: %s", rid, exc.message)
            payload = orjson.dumps(cloud_error(code, exc.message, exc.code))
        except Exception:
            log.exception("request %s: unexpected error", rid)
            status, payload = 500, orjson.dumps(cloud_error("InternalError", "internal error"))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json; charset=utf-8"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"x-ms-maa-service-version", _SERVICE_VERSION),
                    (b"x-ms-request-id", rid.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def front(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"].lower()
            if scope["method"] == "POST" and path.startswith("/attest/") and path.count("/") == 2:
                await fast_attest(scope, receive, send, path[len("/attest/") :])
                return
            if path != scope["path"]:
                scope = {**scope, "path": path}
        await app(scope, receive, send)

    return front


class _TooLarge(Exception):
    pass


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest("the body must be UTF-8 text") from exc
