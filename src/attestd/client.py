"""Python SDK for the attestd (and MAA) REST API, over httpx, sync and async.

>>> with AttestdClient("https://attest.example") as c:                      # doctest: +SKIP
...     token = c.attest_sgx(quote, runtime_data=b"...")

Errors from the service come back as :class:`ServiceError` with MAA's CloudError code and
message; transport failures as :class:`ServiceError` with code ``TransportError``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from attestd.errors import AttestdError

__all__ = ["API_VERSION", "AsyncAttestdClient", "AttestdClient", "ServiceError"]

API_VERSION = "2022-08-01"


class ServiceError(AttestdError):
    code = "ServiceError"

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def attest_body(
    field: str,
    evidence: bytes,
    *,
    runtime_data: bytes | None = None,
    runtime_json: bytes | None = None,
    draft_policy: str | None = None,
    nonce: str | None = None,
) -> dict[str, Any]:
    """The JSON body of ``POST /attest/{type}`` (maa-compat.md §1.3)."""
    body: dict[str, Any] = {field: _b64u(evidence)}
    if runtime_data is not None and runtime_json is not None:
        raise ValueError("give runtime_data (Binary) or runtime_json (JSON), not both")
    if runtime_data is not None:
        body["runtimeData"] = {"data": _b64u(runtime_data), "dataType": "Binary"}
    if runtime_json is not None:
        body["runtimeData"] = {"data": _b64u(runtime_json), "dataType": "JSON"}
    if draft_policy is not None:
        body["draftPolicyForAttestation"] = draft_policy
    if nonce is not None:
        body["nonce"] = nonce
    return body


_KINDS = {
    "sgx": ("SgxEnclave", "quote"),
    "openenclave": ("OpenEnclave", "report"),
    "tdx": ("TdxVm", "quote"),
}


def _result(response: httpx.Response) -> Any:
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code >= 400:
        err = data.get("error", {}) if isinstance(data, dict) else {}
        raise ServiceError(
            str(err.get("code", f"HTTP{response.status_code}")),
            str(err.get("message", response.text[:200])),
            response.status_code,
        )
    return data


class AttestdClient:
    """Synchronous client. ``admin_key``: the bearer token for management calls."""

    def __init__(
        self,
        endpoint: str,
        *,
        admin_key: str | None = None,
        client: httpx.Client | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        headers = {"Authorization": f"Bearer {admin_key}"} if admin_key else {}
        self._client = client or httpx.Client(timeout=timeout, headers=headers)
        self._headers = headers

    def __enter__(self) -> AttestdClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        headers = {**self._headers, **kw.pop("headers", {})}
        try:
            r = self._client.request(
                method,
                f"{self.endpoint}{path}",
                params={"api-version": API_VERSION},
                headers=headers,
                **kw,
            )
        except httpx.HTTPError as exc:
            raise ServiceError("TransportError", str(exc)) from exc
        return _result(r)

    def attest(self, kind: str, evidence: bytes, **options: Any) -> str:
        """``kind``: sgx, openenclave or tdx. Returns the attestation token."""
        name, field = _KINDS[kind]
        return str(
            self._call("POST", f"/attest/{name}", json=attest_body(field, evidence, **options))[
                "token"
            ]
        )

    def attest_sgx(self, quote: bytes, **options: Any) -> str:
        return self.attest("sgx", quote, **options)

    def certs(self) -> dict[str, Any]:
        return dict(self._call("GET", "/certs"))

    def get_policy(self, attestation_type: str) -> str:
        return str(self._call("GET", f"/policies/{attestation_type}")["token"])

    def set_policy(self, attestation_type: str, policy_jws: str) -> str:
        return str(
            self._call(
                "PUT",
                f"/policies/{attestation_type}",
                content=policy_jws.encode(),
                headers={"Content-Type": "text/plain"},
            )["token"]
        )

    def reset_policy(self, attestation_type: str, jws: str = "eyJhbGciOiJub25lIn0..") -> str:
        return str(
            self._call(
                "POST",
                f"/policies/{attestation_type}:reset",
                content=jws.encode(),
                headers={"Content-Type": "text/plain"},
            )["token"]
        )

    def get_signers(self) -> str:
        return str(self._call("GET", "/certificates")["token"])

    def add_signer(self, certificate_jws: str) -> str:
        return self._signer("add", certificate_jws)

    def remove_signer(self, certificate_jws: str) -> str:
        return self._signer("remove", certificate_jws)

    def _signer(self, op: str, certificate_jws: str) -> str:
        data = self._call(
            "POST",
            f"/certificates:{op}",
            content=json.dumps(certificate_jws).encode(),
            headers={"Content-Type": "application/json"},
        )
        return str(data["token"])


class AsyncAttestdClient:
    """Asynchronous client (``httpx.AsyncClient``); the same operations as :class:`AttestdClient`."""

    def __init__(
        self,
        endpoint: str,
        *,
        admin_key: str | None = None,
        client: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._headers = {"Authorization": f"Bearer {admin_key}"} if admin_key else {}
        self._client = client or httpx.AsyncClient(timeout=timeout)

    async def __aenter__(self) -> AsyncAttestdClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, **kw: Any) -> Any:
        headers = {**self._headers, **kw.pop("headers", {})}
        try:
            r = await self._client.request(
                method,
                f"{self.endpoint}{path}",
                params={"api-version": API_VERSION},
                headers=headers,
                **kw,
            )
        except httpx.HTTPError as exc:
            raise ServiceError("TransportError", str(exc)) from exc
        return _result(r)

    async def attest(self, kind: str, evidence: bytes, **options: Any) -> str:
        name, field = _KINDS[kind]
        data = await self._call(
            "POST", f"/attest/{name}", json=attest_body(field, evidence, **options)
        )
        return str(data["token"])

    async def certs(self) -> dict[str, Any]:
        return dict(await self._call("GET", "/certs"))

    async def get_policy(self, attestation_type: str) -> str:
        return str((await self._call("GET", f"/policies/{attestation_type}"))["token"])

    async def set_policy(self, attestation_type: str, policy_jws: str) -> str:
        data = await self._call(
            "PUT",
            f"/policies/{attestation_type}",
            content=policy_jws.encode(),
            headers={"Content-Type": "text/plain"},
        )
        return str(data["token"])
