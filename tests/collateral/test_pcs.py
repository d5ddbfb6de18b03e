"""PcsClient against a real local HTTP server replaying recorded Intel PCS responses.

The server (stdlib ``ThreadingHTTPServer`` on 127.0.0.1, port 0) serves the bodies and the exact
recorded headers of ``vectors/dcap/go-tdx-guest/raw_pcs_responses/responses.json`` by path and
query; anything else is a 404. Tests can override single paths (status, headers, body, delay,
truncation) and count the requests the server saw. Nothing here touches the internet.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from attestd.collateral import pcs
from attestd.collateral.pcs import PcsClient
from attestd.collateral.source import DcapCollateral
from attestd.errors import (
    CollateralMalformed,
    CollateralUnavailable,
    ConfigurationError,
    TcbNotSupported,
)
from attestd.verify.dcap import DcapVerifier

RAW = (
    Path(__file__).resolve().parents[1] / "vectors" / "dcap" / "go-tdx-guest" / "raw_pcs_responses"
)
RECORDED: dict[str, Any] = json.loads((RAW / "responses.json").read_text())["urls"]

SPR_FMSPC = bytes.fromhex("50806f000000")
V5_FMSPC = bytes.fromhex("90c06f000000")
SPR_TIME = datetime.fromtimestamp(1687939438, UTC)  # 2023-06-28T08:03:58Z
V5_TIME = datetime.fromtimestamp(1770043766, UTC)  # 2026-02-02T14:49:26Z

PCK_CRL = "/sgx/certification/v4/pckcrl?ca=platform&encoding=der"
ROOT_CRL = "/IntelSGXRootCA.der"
TCB_SPR = "/tdx/certification/v4/tcb?fmspc=50806f000000"
TCB_V5 = "/tdx/certification/v4/tcb?fmspc=90c06f000000"
QE_ID = "/tdx/certification/v4/qe/identity"

# nextUpdate of each recorded item (checked against the bodies in test_recorded_next_updates).
NEXT = {
    QE_ID: datetime(2023, 7, 8, 7, 24, 59, tzinfo=UTC),
    PCK_CRL: datetime(2023, 7, 8, 7, 27, 52, tzinfo=UTC),
    TCB_SPR: datetime(2023, 7, 18, 8, 42, 58, tzinfo=UTC),
    ROOT_CRL: datetime(2024, 4, 2, 10, 22, 51, tzinfo=UTC),
}


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _recorded(path: str) -> tuple[bytes, dict[str, str]]:
    for url, rec in RECORDED.items():
        if _path(url) == path:
            return (RAW / rec["body"]).read_bytes(), dict(rec["headers"])
    raise KeyError(path)


def _chain(path: str) -> bytes:
    _, headers = _recorded(path)
    (value,) = headers.values()
    return unquote(value).encode()


# -- the replaying server ------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    truncate: bool = False  # announce the full length, send half, close


class PcsReplay(ThreadingHTTPServer):
    """Replays the recorded PCS responses; counts requests per path+query."""

    daemon_threads = False  # server_close() joins the handler threads
    block_on_close = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes = {
            _path(url): Reply(200, dict(rec["headers"]), (RAW / rec["body"]).read_bytes())
            for url, rec in RECORDED.items()
        }
        self.overrides: dict[str, Reply] = {}
        self.hits: Counter[str] = Counter()
        self.request_headers: dict[str, list[dict[str, str]]] = {}
        self.lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def reply(self, path: str) -> Reply:
        got = self.overrides.get(path) or self.routes.get(path)
        return got or Reply(404, {}, b"")

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
            self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: nothing left open at shutdown
    server: PcsReplay

    def do_GET(self) -> None:
        srv = self.server
        with srv.lock:
            srv.hits[self.path] += 1
            srv.request_headers.setdefault(self.path, []).append(dict(self.headers.items()))
        r = srv.reply(self.path)
        if r.delay:
            time.sleep(r.delay)
        try:
            self.send_response(r.status)
            for name, value in r.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(r.body)))
            self.end_headers()
            self.wfile.write(r.body[: len(r.body) // 2] if r.truncate else r.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def servers() -> Iterator[Callable[[], PcsReplay]]:
    started: list[PcsReplay] = []

    def start() -> PcsReplay:
        s = PcsReplay()
        s.start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def server(servers: Callable[[], PcsReplay]) -> PcsReplay:
    return servers()


@pytest.fixture
def make_client(server: PcsReplay) -> Iterator[Callable[..., PcsClient]]:
    clients: list[PcsClient] = []

    def make(srv: PcsReplay | None = None, **kw: Any) -> PcsClient:
        s = srv or server
        kw.setdefault("clock", Clock(SPR_TIME))
        kw.setdefault("root_ca_crl_url", f"{s.url}{ROOT_CRL}")
        c = PcsClient(base_url=s.url, **kw)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def spr(client: PcsClient) -> DcapCollateral:
    return client.dcap_collateral(tee="tdx", fmspc=SPR_FMSPC, ca="platform")


# -- (a) what is fetched, byte for byte ----------------------------------------------------------


def test_recorded_next_updates() -> None:
    """The nextUpdate values the cache tests rely on are the ones in the recorded bodies."""
    tcb = json.loads(_recorded(TCB_SPR)[0])["tcbInfo"]["nextUpdate"]
    qe = json.loads(_recorded(QE_ID)[0])["enclaveIdentity"]["nextUpdate"]
    assert datetime.fromisoformat(tcb) == NEXT[TCB_SPR]
    assert datetime.fromisoformat(qe) == NEXT[QE_ID]
    assert x509.load_der_x509_crl(_recorded(PCK_CRL)[0]).next_update_utc == NEXT[PCK_CRL]
    assert x509.load_der_x509_crl(_recorded(ROOT_CRL)[0]).next_update_utc == NEXT[ROOT_CRL]


def test_fetches_tdx_platform_collateral_byte_exact(
    server: PcsReplay, make_client: Callable[..., PcsClient]
) -> None:
    coll = spr(make_client())
    assert coll.pck_crl == (RAW / "pckcrl").read_bytes()
    assert coll.root_ca_crl == (RAW / "rootcrl.der").read_bytes()
    assert coll.tcb_info == (RAW / "sample_tcbInfo_response").read_bytes()
    assert coll.qe_identity == (RAW / "sample_qeIdentity_response").read_bytes()
    assert coll.pck_crl_issuer_chain == _chain(PCK_CRL)
    assert coll.tcb_info_issuer_chain == _chain(TCB_SPR)
    assert coll.qe_identity_issuer_chain == _chain(QE_ID)
    # URL-decoded into real PEM: the PCK Platform CA (resp. TCB Signing) and the root.
    names = [
        c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        for c in x509.load_pem_x509_certificates(coll.pck_crl_issuer_chain)
    ]
    assert names == ["Intel SGX PCK Platform CA", "Intel SGX Root CA"]
    assert len(x509.load_pem_x509_certificates(coll.tcb_info_issuer_chain)) == 2
    # Exactly the four PCS v4 requests, each once.
    assert server.hits == Counter({PCK_CRL: 1, ROOT_CRL: 1, TCB_SPR: 1, QE_ID: 1})


def test_legacy_tcb_info_header_name_is_accepted(
    server: PcsReplay, make_client: Callable[..., PcsClient]
) -> None:
    body, headers = _recorded(TCB_SPR)
    server.overrides[TCB_SPR] = Reply(
        200, {"SGX-TCB-Info-Issuer-Chain": headers["TCB-Info-Issuer-Chain"]}, body
    )
    assert spr(make_client()).tcb_info_issuer_chain == _chain(TCB_SPR)


def test_update_parameter_and_api_key(
    servers: Callable[[], PcsReplay], make_client: Callable[..., PcsClient]
) -> None:
    pcs_srv, certs_srv = (
        servers(),
        servers(),
    )  # the Root CA CRL on another host must not see the key
    for path in (TCB_SPR, QE_ID):
        body, headers = _recorded(path)
        sep = "&" if "?" in path else "?"
        pcs_srv.overrides[f"{path}{sep}update=early"] = Reply(200, headers, body)
    client = make_client(
        pcs_srv, root_ca_crl_url=f"{certs_srv.url}{ROOT_CRL}", update="early", api_key="k3y"
    )
    coll = spr(client)
    assert coll.tcb_info == _recorded(TCB_SPR)[0]
    assert pcs_srv.hits == Counter(
        {PCK_CRL: 1, f"{TCB_SPR}&update=early": 1, f"{QE_ID}?update=early": 1}
    )
    assert certs_srv.hits == Counter({ROOT_CRL: 1})
    for seen in pcs_srv.request_headers.values():
        assert seen[0]["Ocp-Apim-Subscription-Key"] == "k3y"
    assert "Ocp-Apim-Subscription-Key" not in certs_srv.request_headers[ROOT_CRL][0]


def test_pccs_hex_root_ca_crl(server: PcsReplay, make_client: Callable[..., PcsClient]) -> None:
    """A PCCS answers /rootcacrl with hex-encoded DER: returned as received, cached by its
    nextUpdate, and accepted by the verifier."""
    hex_crl = (RAW / "rootcrl.der").read_bytes().hex().encode()
    server.overrides["/sgx/certification/v4/rootcacrl"] = Reply(200, {}, hex_crl)
    client = make_client(root_ca_crl_url=f"{server.url}/sgx/certification/v4/rootcacrl")
    assert spr(client).root_ca_crl == hex_crl
    spr(client)
    assert server.hits["/sgx/certification/v4/rootcacrl"] == 1
    quote = (RAW / "tdx_prod_quote_SPR_E4.dat").read_bytes()
    with pytest.raises(TcbNotSupported):
        DcapVerifier(collateral=client).verify(quote, at=SPR_TIME)


# -- (b) end to end through the verifier ---------------------------------------------------------


def test_verifier_spr_e4_tcb_not_supported(
    server: PcsReplay, make_client: Callable[..., PcsClient]
) -> None:
    verifier = DcapVerifier(collateral=make_client())
    quote = (RAW / "tdx_prod_quote_SPR_E4.dat").read_bytes()
    with pytest.raises(TcbNotSupported):  # Intel QVL: STATUS_TCB_NOT_SUPPORTED (meta.json)
        verifier.verify(quote, at=SPR_TIME)
    assert server.hits == Counter({PCK_CRL: 1, ROOT_CRL: 1, TCB_SPR: 1, QE_ID: 1})


def test_verifier_v5_sample_up_to_date_with_expired_collateral(
    server: PcsReplay, make_client: Callable[..., PcsClient]
) -> None:
    client = make_client(clock=Clock(V5_TIME))
    verifier = DcapVerifier(collateral=client, allow_expired_collateral=True)
    result = verifier.verify((RAW / "quote_v5_sample.dat").read_bytes(), at=V5_TIME)
    assert result.tcb_status == "UpToDate"
    assert result.expired_items
    assert result.collateral_expired
    # The 2026 TCB Info is current; the 2023 CRLs and QE Identity are not.
    assert "tcb_info" not in result.expired_items
    assert {"pck_crl", "root_ca_crl", "qe_identity"} <= set(result.expired_items)
    assert result.collateral.tcb_info == (RAW / "sample_tcbinfo_response_v5").read_bytes()
    assert server.hits[TCB_V5] == 1


# -- (c) caching ---------------------------------------------------------------------------------


def test_second_call_is_served_from_memory(
    server: PcsReplay, make_client: Callable[..., PcsClient]
) -> None:
    client = make_client()
    first = spr(client)
    assert sum(server.hits.values()) == 4
    assert spr(client) == first
    assert sum(server.hits.values()) == 4


def test_each_item_is_refetched_at_its_own_next_update(
    server: PcsReplay, make_client: Callable[..., PcsClient]
) -> None:
    clock = Clock(SPR_TIME)
    client = make_client(clock=clock)
    spr(client)
    base = Counter(server.hits)

    def fetched_since() -> Counter[str]:
        return server.hits - base

    clock.now = NEXT[QE_ID] - timedelta(seconds=1)
    spr(client)
    assert fetched_since() == Counter()
    clock.now = NEXT[QE_ID]  # nextUpdate itself: no longer current
    spr(client)
    assert fetched_since() == Counter({QE_ID: 1})
    clock.now = NEXT[TCB_SPR] - timedelta(seconds=1)
    spr(client)  # QE Identity (again) and the PCK CRL are past; the TCB Info is not
    assert fetched_since() == Counter({QE_ID: 2, PCK_CRL: 1})
    clock.now = NEXT[TCB_SPR] + timedelta(seconds=1)
    spr(client)
    assert fetched_since() == Counter({QE_ID: 3, PCK_CRL: 2, TCB_SPR: 1})
    assert fetched_since()[ROOT_CRL] == 0  # current until 2024-04-02


def test_cache_is_keyed_by_url(server: PcsReplay, make_client: Callable[..., PcsClient]) -> None:
    client = make_client()
    spr(client)
    client.dcap_collateral(tee="tdx", fmspc=V5_FMSPC, ca="platform")
    assert server.hits == Counter({PCK_CRL: 1, ROOT_CRL: 1, TCB_SPR: 1, TCB_V5: 1, QE_ID: 1})


def test_stale_when_fetched_is_returned_but_not_reused(
    server: PcsReplay, make_client: Callable[..., PcsClient]
) -> None:
    client = make_client(clock=Clock(datetime(2030, 1, 1, tzinfo=UTC)))
    assert spr(client).tcb_info == _recorded(TCB_SPR)[0]
    spr(client)
    assert server.hits == Counter({PCK_CRL: 2, ROOT_CRL: 2, TCB_SPR: 2, QE_ID: 2})


def test_failed_responses_are_not_cached(
    server: PcsReplay, make_client: Callable[..., PcsClient]
) -> None:
    client = make_client()
    server.overrides[TCB_SPR] = Reply(503)
    with pytest.raises(CollateralUnavailable):
        spr(client)
    del server.overrides[TCB_SPR]
    assert spr(client).tcb_info == _recorded(TCB_SPR)[0]
    assert server.hits[TCB_SPR] == 2


# -- (d) errors ----------------------------------------------------------------------------------


def test_unknown_fmspc_is_unavailable(
    server: PcsReplay, make_client: Callable[..., PcsClient]
) -> None:
    with pytest.raises(CollateralUnavailable) as err:
        make_client().dcap_collateral(tee="tdx", fmspc=bytes.fromhex("00906ed50000"), ca="platform")
    assert f"{server.url}/tdx/certification/v4/tcb?fmspc=00906ed50000" in err.value.message
    assert "404" in err.value.message
    assert server.hits["/tdx/certification/v4/tcb?fmspc=00906ed50000"] == 1


def test_unrecorded_ca_type_is_unavailable(make_client: Callable[..., PcsClient]) -> None:
    with pytest.raises(CollateralUnavailable, match=r"ca=processor.*404"):
        make_client().dcap_collateral(tee="tdx", fmspc=SPR_FMSPC, ca="processor")


@pytest.mark.parametrize(
    ("status", "headers", "expect"),
    [
        (410, {}, "HTTP 410"),
        (429, {"Retry-After": "30"}, "Retry-After: 30"),
        (500, {}, "HTTP 500"),
        (503, {"Retry-After": "120", "Request-ID": "abc123"}, "Request-ID: abc123"),
    ],
)
def test_server_errors_are_unavailable(
    server: PcsReplay,
    make_client: Callable[..., PcsClient],
    status: int,
    headers: dict[str, str],
    expect: str,
) -> None:
    server.overrides[QE_ID] = Reply(status, headers, b'{"error":"nope"}')
    with pytest.raises(CollateralUnavailable) as err:
        spr(make_client())
    assert f"{server.url}{QE_ID}" in err.value.message
    assert str(status) in err.value.message
    assert expect in err.value.message


def test_closed_port_is_unavailable(make_client: Callable[..., PcsClient]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = PcsClient(
        base_url=f"http://127.0.0.1:{port}", root_ca_crl_url=f"http://127.0.0.1:{port}{ROOT_CRL}"
    )
    with client, pytest.raises(CollateralUnavailable) as err:
        spr(client)
    assert isinstance(err.value.__cause__, httpx.ConnectError)


def test_timeout_is_unavailable(server: PcsReplay, make_client: Callable[..., PcsClient]) -> None:
    body, headers = _recorded(TCB_SPR)
    server.overrides[TCB_SPR] = Reply(200, headers, body, delay=0.5)
    with pytest.raises(CollateralUnavailable) as err:
        spr(make_client(timeout=0.1))
    assert isinstance(err.value.__cause__, httpx.TimeoutException)


def test_truncated_body_is_unavailable(
    server: PcsReplay, make_client: Callable[..., PcsClient]
) -> None:
    body, headers = _recorded(TCB_SPR)
    server.overrides[TCB_SPR] = Reply(200, headers, body, truncate=True)
    with pytest.raises(CollateralUnavailable) as err:
        spr(make_client())
    assert isinstance(err.value.__cause__, httpx.HTTPError)


@pytest.mark.parametrize("path", [PCK_CRL, TCB_SPR, QE_ID])
def test_missing_issuer_chain_header_is_malformed(
    server: PcsReplay, make_client: Callable[..., PcsClient], path: str
) -> None:
    body, _ = _recorded(path)
    server.overrides[path] = Reply(200, {"Request-ID": "x"}, body)
    with pytest.raises(CollateralMalformed, match="issuer chain"):
        spr(make_client())


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (TCB_SPR, b"<html>maintenance</html>"),
        (TCB_SPR, b'{"tcbInfo":{"nextUpdate":"soon"},"signature":""}'),
        (QE_ID, b'{"tcbInfo":{"nextUpdate":"2030-01-01T00:00:00Z"}}'),  # wrong document
        (QE_ID, b"\xff\xfe garbage"),
        (PCK_CRL, b"not a CRL"),
        (ROOT_CRL, b"\x30\x03\x02\x01\x00"),
    ],
)
def test_unparseable_body_is_malformed(
    server: PcsReplay, make_client: Callable[..., PcsClient], path: str, body: bytes
) -> None:
    server.overrides[path] = Reply(200, server.routes[path].headers, body)
    with pytest.raises(CollateralMalformed):
        spr(make_client())


def test_oversized_body_is_malformed(
    server: PcsReplay, make_client: Callable[..., PcsClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pcs, "MAX_BODY_BYTES", 1000)  # the TCB Info is 3 kB, the rest smaller
    with pytest.raises(CollateralMalformed, match="larger than 1000"):
        spr(make_client())


def test_bad_arguments(make_client: Callable[..., PcsClient]) -> None:
    with pytest.raises(ConfigurationError):
        PcsClient(update="late")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        PcsClient(base_url="ftp://example.invalid")
    with pytest.raises(ConfigurationError):
        PcsClient(root_ca_crl_url="not a url")
    with pytest.raises(CollateralUnavailable, match="6 bytes"):
        make_client().dcap_collateral(tee="tdx", fmspc=b"\x50\x80", ca="platform")


# -- (e) on-disk cache ---------------------------------------------------------------------------


def test_disk_cache_serves_a_new_instance_when_offline(
    server: PcsReplay, make_client: Callable[..., PcsClient], tmp_path: Path
) -> None:
    cache = tmp_path / "pcs-cache"
    first = spr(make_client(cache_dir=cache))
    assert len(list(cache.iterdir())) == 8  # body + headers for each of the four URLs
    server.stop()
    second = make_client(cache_dir=cache)
    assert spr(second) == first
    # Without the disk cache the same request fails: the server really is gone.
    with pytest.raises(CollateralUnavailable):
        spr(make_client())


def test_disk_cache_is_used_before_the_network(
    server: PcsReplay, make_client: Callable[..., PcsClient], tmp_path: Path
) -> None:
    spr(make_client(cache_dir=tmp_path))
    spr(make_client(cache_dir=tmp_path))
    assert sum(server.hits.values()) == 4


def test_disk_cache_never_serves_past_next_update(
    server: PcsReplay, make_client: Callable[..., PcsClient], tmp_path: Path
) -> None:
    spr(make_client(cache_dir=tmp_path))
    server.stop()
    with pytest.raises(CollateralUnavailable, match="qe/identity"):
        spr(make_client(cache_dir=tmp_path, clock=Clock(NEXT[QE_ID])))


def test_disk_cache_ignores_a_tampered_entry(
    server: PcsReplay, make_client: Callable[..., PcsClient], tmp_path: Path
) -> None:
    spr(make_client(cache_dir=tmp_path))
    for body in tmp_path.glob("*.body"):
        body.write_bytes(body.read_bytes() + b" ")
    coll = spr(make_client(cache_dir=tmp_path))
    assert coll.tcb_info == _recorded(TCB_SPR)[0]
    assert sum(server.hits.values()) == 8  # all refetched, and the entries rewritten
    spr(make_client(cache_dir=tmp_path))
    assert sum(server.hits.values()) == 8


# -- an injected httpx client ---------------------------------------------------------------------


def test_injected_client_is_used_and_left_open() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        rec = RECORDED.get(str(request.url))
        if rec is None:
            return httpx.Response(404)
        return httpx.Response(200, headers=rec["headers"], content=(RAW / rec["body"]).read_bytes())

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        client = PcsClient(client=http, clock=Clock(SPR_TIME))  # default Intel URLs, mocked
        coll = spr(client)
        client.close()
        assert not http.is_closed
    assert coll.tcb_info == _recorded(TCB_SPR)[0]
    assert sorted(seen) == sorted(
        [
            "https://api.trustedservices.intel.com" + PCK_CRL,
            "https://certificates.trustedservices.intel.com" + ROOT_CRL,
            "https://api.trustedservices.intel.com" + TCB_SPR,
            "https://api.trustedservices.intel.com" + QE_ID,
        ]
    )


def test_the_service_store_is_a_persistent_cache(
    server: PcsReplay, make_client: Callable[..., PcsClient], tmp_path: Path
) -> None:
    """The service keeps PCS responses in its SQLite store: a restarted instance serves them
    offline, byte-exact, until their nextUpdate."""
    from attestd.store.sqlite import SQLiteStore

    db = tmp_path / "attestd.sqlite3"
    with SQLiteStore(db) as store:
        first = spr(make_client(persistent_cache=store))
    server.stop()
    with SQLiteStore(db) as store:
        assert spr(make_client(persistent_cache=store)) == first
        cached = store.get_cached(server.url + "/tdx/certification/v4/qe/identity")
        assert cached is not None and cached.next_update is not None
        with pytest.raises(CollateralUnavailable, match="qe/identity"):
            spr(make_client(persistent_cache=store, clock=Clock(NEXT[QE_ID])))
