"""The OpenAPI 3.0 document of the data-plane API (served at ``/openapi.json``)."""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

_TYPES = ["SgxEnclave", "OpenEnclave", "TdxVm", "Tpm"]
_ERROR = {
    "description": "CloudError",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CloudError"}}},
}
_TOKEN = {
    "description": "a signed JWT",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TokenResponse"}}},
}
_VERSION = {
    "name": "api-version",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": ["2020-10-01", "2022-08-01"]},
}
_TYPE = {
    "name": "type",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "enum": _TYPES},
}
_AUTH: list[dict[str, list[str]]] = [{"bearer": []}]


def _op(
    summary: str,
    *,
    params: list[dict[str, Any]],
    body: dict[str, Any] | None = None,
    auth: bool = False,
    ok: dict[str, Any] = _TOKEN,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": params,
        "responses": {"200": ok, "400": _ERROR, "401": _ERROR, "413": _ERROR, "503": _ERROR},
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": body}
    if auth:
        op["security"] = _AUTH
    return op


def openapi_document(server: str) -> dict[str, Any]:
    data = {
        "type": "object",
        "properties": {
            "data": {"type": "string"},
            "dataType": {"type": "string", "enum": ["Binary", "JSON"]},
        },
    }
    attest = {
        "type": "object",
        "properties": {
            "quote": {"type": "string", "description": "base64url SGX/TDX quote"},
            "report": {"type": "string", "description": "base64url Open Enclave report"},
            "runtimeData": data,
            "initTimeData": data,
            "draftPolicyForAttestation": {"type": "string"},
            "nonce": {"type": "string"},
        },
    }
    jws = {"text/plain": {"schema": {"type": "string"}}}
    cert_jws = {"application/json": {"schema": {"type": "string"}}}
    jwks = {"description": "JWKS", "content": {"application/json": {"schema": {"type": "object"}}}}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "attestd",
            "version": "2022-08-01",
            "description": "Microsoft Azure Attestation-compatible attestation service",
        },
        "servers": [{"url": server}],
        "paths": {
            "/attest/{type}": {
                "post": _op(
                    "Attest evidence",
                    params=[_TYPE, _VERSION],
                    body={"application/json": {"schema": attest}},
                )
            },
            "/certs": {"get": _op("Token signing keys", params=[], ok=jwks)},
            "/.well-known/openid-configuration": {
                "get": _op("OpenID metadata", params=[], ok=jwks)
            },
            "/policies/{type}": {
                "get": _op("Get the policy", params=[_TYPE, _VERSION], auth=True),
                "put": _op("Set the policy", params=[_TYPE, _VERSION], body=jws, auth=True),
            },
            "/policies/{type}:reset": {
                "post": _op("Reset the policy", params=[_TYPE, _VERSION], body=jws, auth=True)
            },
            "/certificates": {"get": _op("Policy signers", params=[_VERSION], auth=True)},
            "/certificates:add": {
                "post": _op("Add a signer", params=[_VERSION], body=cert_jws, auth=True)
            },
            "/certificates:remove": {
                "post": _op("Remove a signer", params=[_VERSION], body=cert_jws, auth=True)
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "TokenResponse": {
                    "type": "object",
                    "properties": {"token": {"type": "string"}},
                    "required": ["token"],
                },
                "CloudError": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "innererror": {"type": "object"},
                            },
                        }
                    },
                },
            },
        },
    }
