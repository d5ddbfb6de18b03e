"""DCAP collateral from Intel PCS v4 or a PCCS, over HTTP, cached (dcap.md §1.H).

The :class:`PcsClient` is a :class:`~attestd.collateral.source.CollateralSource`. For one
platform it makes four GET requests (``{base}`` is ``base_url``, ``{tee}`` is ``sgx`` or ``tdx``):

- the PCK CRL: ``{base}/sgx/certification/v4/pckcrl?ca=<processor|platform>&encoding=der``,
  issuer chain in the header ``SGX-PCK-CRL-Issuer-Chain``;
- the TCB Info: ``{base}/{tee}/certification/v4/tcb?fmspc=<hex, lower case>[&update=…]``, issuer
  chain in ``TCB-Info-Issuer-Chain`` (older servers: ``SGX-TCB-Info-Issuer-Chain``);
- the QE Identity: ``{base}/{tee}/certification/v4/qe/identity[?update=…]``, issuer chain in
  ``SGX-Enclave-Identity-Issuer-Chain``;
- the Intel SGX Root CA CRL: ``root_ca_crl_url``, no chain.

Bodies are returned exactly as received (the TCB Info and QE Identity signatures cover the exact
bytes; nothing here re-serialises them); issuer-chain headers are URL-decoded into PEM. Nothing is
verified here beyond what caching needs: all checking happens in :mod:`attestd.verify`.

Against a PCCS, set ``base_url`` to the PCCS and ``root_ca_crl_url`` to
``{pccs}/sgx/certification/v4/rootcacrl`` (which answers hex-encoded DER; CRLs may be PEM, DER or
hex-DER everywhere).

Cache semantics
---------------
Every response is cached in memory, keyed by its full URL, and reused while the clock is before
its own ``nextUpdate``: the CRL's ``nextUpdate`` field for the two CRLs, ``tcbInfo.nextUpdate`` and
``enclaveIdentity.nextUpdate`` for the JSON documents. From ``nextUpdate`` on it is fetched again
(a response that is already past its ``nextUpdate`` when fetched is still returned, so that the
verifier can judge it, but it is fetched again at the next call).

With ``cache_dir``, every response (body and headers) is also written to disk, so that a restarted
or offline instance keeps serving what it fetched: when the memory cache has nothing current for a
URL, a disk entry still before its ``nextUpdate`` is used without asking the network (so a network
failure never matters while one exists); an entry past its ``nextUpdate`` is never used, not even
when the network fails. Disk entries are checked when read (URL, body digest, parse) and ignored if
they do not fit; a cache that cannot be written is logged and otherwise ignored.

Only successful, well-formed responses are cached. Errors: 404/410, 429, 5xx, any other non-200
status and network failures raise :class:`~attestd.errors.CollateralUnavailable`; a 200 response
without its issuer-chain header or with a body that does not parse raises
:class:`~attestd.errors.CollateralMalformed`. Nothing else escapes (no httpx error, no ValueError).

The client is safe to share between threads (concurrent misses for the same URL may each fetch it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Protocol, Self
from urllib.parse import unquote, urlencode

import httpx

from attestd import __version__
from attestd._json import parse_json
from attestd.collateral.source import CaType, DcapCollateral, Tee
from attestd.errors import (
    AttestdError,
    CollateralMalformed,
    CollateralUnavailable,
    ConfigurationError,
)
from attestd.pki.certs import load_crl

if TYPE_CHECKING:
    from attestd.store.base import CachedResponse

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_ROOT_CA_CRL_URL",
    "MAX_BODY_BYTES",
    "PcsClient",
    "PersistentCache",
]

DEFAULT_BASE_URL = "https://api.trustedservices.intel.com"
DEFAULT_ROOT_CA_CRL_URL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
MAX_BODY_BYTES = 32 * 1024 * 1024
"""A larger response body is refused (CollateralMalformed); real ones are well under 1 MiB."""

_log = logging.getLogger(__name__)

_Kind = Literal["pck_crl", "root_ca_crl", "tcb_info", "qe_identity"]

_CHAIN_HEADERS: dict[_Kind, tuple[str, ...]] = {
    "pck_crl": ("SGX-PCK-CRL-Issuer-Chain",),
    "root_ca_crl": (),
    "tcb_info": ("TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"),
    "qe_identity": ("SGX-Enclave-Identity-Issuer-Chain",),
}
_JSON_KEYS: dict[_Kind, str] = {"tcb_info": "tcbInfo", "qe_identity": "enclaveIdentity"}


def _utc_now() -> datetime:
    return datetime.now(UTC)


class PersistentCache(Protocol):
    """Where responses survive restarts (the service's store implements it)."""

    def get_cached(self, url: str) -> CachedResponse | None: ...

    def put_cached(self, response: CachedResponse) -> None: ...


@dataclass(frozen=True, slots=True)
class _Entry:
    """One cached response: the body as received, its decoded issuer chain (empty for the Root CA
    CRL), the response headers (lower-case names) and when it stops being current."""

    body: bytes
    chain: bytes
    headers: dict[str, str]
    next_update: datetime


class PcsClient:
    """DCAP collateral from Intel PCS v4 or a PCCS (see the module docstring).

    :param base_url: the PCS or PCCS, without path. Default ``https://api.trustedservices.intel.com``.
    :param root_ca_crl_url: where the Intel SGX Root CA CRL is. Default
        ``https://certificates.trustedservices.intel.com/IntelSGXRootCA.der``; for a PCCS,
        ``{pccs}/sgx/certification/v4/rootcacrl``.
    :param api_key: optional; sent as ``Ocp-Apim-Subscription-Key`` to ``base_url`` only (never to
        ``root_ca_crl_url``). Default None (the v4 collateral endpoints need none).
    :param update: optional ``"early"`` or ``"standard"``: the ``update`` query parameter of the
        TCB Info and QE Identity requests. Default None (not sent: PCS's default, standard).
    :param cache_dir: optional directory for the on-disk cache (created if missing). Default None
        (memory only).
    :param clock: returns the current time (aware, UTC) for cache validity. Default
        ``datetime.now(UTC)``.
    :param client: an ``httpx.Client`` to use; the caller keeps ownership (:meth:`close` leaves it
        open). Default: one created here with ``timeout`` and redirects followed, closed by
        :meth:`close`.
    :param timeout: seconds, for the client created here only. Default 10.
    """

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        root_ca_crl_url: str = DEFAULT_ROOT_CA_CRL_URL,
        api_key: str | None = None,
        update: Literal["early", "standard"] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        persistent_cache: PersistentCache | None = None,
        clock: Callable[[], datetime] = _utc_now,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
    ) -> None:
        if update not in (None, "early", "standard"):
            raise ConfigurationError(f"update must be 'early', 'standard' or None, not {update!r}")
        self.base_url = _check_url(base_url, "base_url").rstrip("/")
        self.root_ca_crl_url = _check_url(root_ca_crl_url, "root_ca_crl_url")
        self.api_key = api_key
        self.update = update
        self.clock = clock
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        if self.cache_dir is not None:
            try:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigurationError(
                    f"cache_dir {self.cache_dir}: cannot create it ({exc})"
                ) from exc
        self._owns_client = client is None
        self._client = client or httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
            headers={"User-Agent": f"attestd/{__version__}"},
        )
        self._memory: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self.persistent_cache = persistent_cache

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP client if it was created here."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def clear_cache(self) -> None:
        """Forget the memory cache (the disk cache, if any, stays)."""
        with self._lock:
            self._memory.clear()

    # -- CollateralSource ---------------------------------------------------------------------

    def dcap_collateral(self, *, tee: Tee, fmspc: bytes, ca: CaType) -> DcapCollateral:
        """The collateral for this TEE, FMSPC (6 bytes) and PCK CA type, from the cache while it
        is current, else from the network. Raises CollateralUnavailable or CollateralMalformed."""
        if tee not in ("sgx", "tdx"):
            raise CollateralUnavailable(f"no PCS collateral for TEE {tee!r} (sgx or tdx)")
        if ca not in ("processor", "platform"):
            raise CollateralUnavailable(f"no PCS collateral for PCK CA {ca!r} (processor/platform)")
        if len(fmspc) != 6:
            raise CollateralUnavailable(f"FMSPC {bytes(fmspc).hex()!r} is not 6 bytes")
        base = f"{self.base_url}/{tee}/certification/v4"
        upd: dict[str, str] = {"update": self.update} if self.update else {}
        pck_crl = self._get(
            f"{self.base_url}/sgx/certification/v4/pckcrl?"
            + urlencode({"ca": ca, "encoding": "der"}),
            "pck_crl",
        )
        root_crl = self._get(self.root_ca_crl_url, "root_ca_crl")
        tcb_info = self._get(
            f"{base}/tcb?" + urlencode({"fmspc": bytes(fmspc).hex(), **upd}), "tcb_info"
        )
        qe_identity = self._get(
            f"{base}/qe/identity" + (f"?{urlencode(upd)}" if upd else ""), "qe_identity"
        )
        return DcapCollateral(
            pck_crl=pck_crl.body,
            pck_crl_issuer_chain=pck_crl.chain,
            root_ca_crl=root_crl.body,
            tcb_info=tcb_info.body,
            tcb_info_issuer_chain=tcb_info.chain,
            qe_identity=qe_identity.body,
            qe_identity_issuer_chain=qe_identity.chain,
        )

    # -- cache --------------------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self.clock()
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now

    def _get(self, url: str, kind: _Kind) -> _Entry:
        now = self._now()
        with self._lock:
            hit = self._memory.get(url)
        if hit is not None and now < hit.next_update:
            return hit
        disk = self._disk_load(url, kind)
        if disk is not None and now < disk.next_update:
            with self._lock:
                self._memory[url] = disk
            return disk
        entry = self._fetch(url, kind)
        with self._lock:
            self._memory[url] = entry
        self._disk_store(url, entry)
        return entry

    def _disk_paths(self, url: str) -> tuple[Path, Path] | None:
        if self.cache_dir is None:
            return None
        name = hashlib.sha256(url.encode("utf-8")).hexdigest()
        return self.cache_dir / f"{name}.body", self.cache_dir / f"{name}.json"

    def _disk_load(self, url: str, kind: _Kind) -> _Entry | None:
        if self.persistent_cache is not None:
            got = self.persistent_cache.get_cached(url)
            if got is None:
                return None
            try:
                return _entry(url, kind, got.body, dict(got.headers))
            except CollateralMalformed as exc:
                _log.warning("ignoring the cached PCS response for %s: %s", url, exc)
                return None
        paths = self._disk_paths(url)
        if paths is None:
            return None
        body_path, meta_path = paths
        try:
            meta = json.loads(meta_path.read_bytes())
            body = body_path.read_bytes()
            if meta["url"] != url or meta["body_sha256"] != hashlib.sha256(body).hexdigest():
                return None
            headers = {str(k): str(v) for k, v in dict(meta["headers"]).items()}
            return _entry(url, kind, body, headers)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, CollateralMalformed) as exc:
            _log.warning("ignoring on-disk PCS cache entry for %s: %s", url, exc)
            return None

    def _disk_store(self, url: str, entry: _Entry) -> None:
        if self.persistent_cache is not None:
            from attestd.store.base import CachedResponse

            try:
                self.persistent_cache.put_cached(
                    CachedResponse(url, entry.body, entry.headers, self._now(), entry.next_update)
                )
            except AttestdError as exc:
                _log.warning("cannot store the PCS response for %s: %s", url, exc.message)
            return
        paths = self._disk_paths(url)
        if paths is None:
            return
        body_path, meta_path = paths
        meta = {
            "url": url,
            "body_sha256": hashlib.sha256(entry.body).hexdigest(),
            "next_update": entry.next_update.isoformat(),
            "stored_at": self._now().isoformat(),
            "headers": entry.headers,
        }
        try:
            _atomic_write(body_path, entry.body)
            _atomic_write(meta_path, json.dumps(meta, indent=1, sort_keys=True).encode("utf-8"))
        except OSError as exc:
            _log.warning("cannot write the on-disk PCS cache entry for %s: %s", url, exc)

    # -- network ------------------------------------------------------------------------------

    def _fetch(self, url: str, kind: _Kind) -> _Entry:
        headers: dict[str, str] = {}
        if self.api_key is not None and url.startswith(self.base_url + "/"):
            headers["Ocp-Apim-Subscription-Key"] = self.api_key
        try:
            with self._client.stream("GET", url, headers=headers) as resp:
                if resp.status_code != 200:
                    raise CollateralUnavailable(_status_message(url, resp))
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise CollateralMalformed(
                            f"GET {url}: response body larger than {MAX_BODY_BYTES} bytes"
                        )
                got = {k.lower(): v for k, v in resp.headers.items()}
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
            raise CollateralUnavailable(
                f"GET {url}: {type(exc).__name__}: {str(exc) or 'no detail'}"
            ) from exc
        return _entry(url, kind, bytes(body), got)


def _entry(url: str, kind: _Kind, body: bytes, headers: Mapping[str, str]) -> _Entry:
    """Check a response as far as caching needs (issuer chain present, nextUpdate readable)."""
    names = _CHAIN_HEADERS[kind]
    chain = b""
    if names:
        lower = {k.lower(): v for k, v in headers.items()}
        raw = next((lower[n.lower()] for n in names if lower.get(n.lower(), "").strip()), None)
        if raw is None:
            raise CollateralMalformed(
                f"GET {url}: no issuer chain (response header {' or '.join(names)} missing)"
            )
        chain = unquote(raw).encode("utf-8")
        if b"-----BEGIN CERTIFICATE-----" not in chain:
            raise CollateralMalformed(f"GET {url}: header {names[0]} is not a PEM chain")
    if kind in _JSON_KEYS:
        next_update = _json_next_update(body, _JSON_KEYS[kind], f"GET {url}")
    else:
        crl = load_crl(body, f"GET {url}", CollateralMalformed)
        if crl.next_update_utc is None:
            raise CollateralMalformed(f"GET {url}: the CRL has no nextUpdate")
        next_update = crl.next_update_utc
    return _Entry(body=body, chain=chain, headers=dict(headers), next_update=next_update)


def _json_next_update(body: bytes, key: str, what: str) -> datetime:
    try:
        doc = parse_json(body.rstrip(b"\x00"))
        value = doc[key]["nextUpdate"]
        if not isinstance(value, str):
            raise TypeError(f"nextUpdate is {type(value).__name__}, not a string")
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise CollateralMalformed(f"{what}: no readable {key}.nextUpdate ({exc!r})") from exc
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def _status_message(url: str, resp: httpx.Response) -> str:
    status = resp.status_code
    reason = resp.reason_phrase or ""
    msg = f"GET {url}: HTTP {status}{' ' + reason if reason else ''}"
    if status in (404, 410):
        msg += " (no such collateral)"
    elif status == 429:
        msg += " (rate limited)"
    elif status >= 500:
        msg += " (server error)"
    retry = resp.headers.get("Retry-After")
    if retry and (status == 429 or status >= 500):
        msg += f"; Retry-After: {retry}"
    for name in ("Error-Code", "Error-Message", "Request-ID"):
        value = resp.headers.get(name)
        if value:
            msg += f"; {name}: {value}"
    return msg


def _check_url(url: str, what: str) -> str:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ConfigurationError(f"{what} {url!r} is not a URL ({exc})") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigurationError(f"{what} {url!r} is not an http(s) URL")
    return url


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
