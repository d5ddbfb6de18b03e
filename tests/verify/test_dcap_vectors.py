"""Every real sample verifies at its recorded verification time with Intel QVL's result.

Expected values come from each sample's ``meta.json`` (Intel QVL DCAP 1.21 status; advisory IDs
of the matched level as recorded by dcap-qvl / the reference verifier / the TCB evaluation).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from attestd.collateral.source import BundleDirectory, BundleStore, DcapCollateral
from attestd.errors import (
    AttestdError,
    CollateralExpired,
    CollateralUnavailable,
    TcbNotSupported,
    TdxModuleMismatch,
)
from attestd.evidence import parse_openenclave_report
from attestd.pki.certs import TrustAnchors
from attestd.verify.dcap import DcapVerifier
from conftest import DCAP, dcap_samples, maa_offline_sets

# Intel QVL final status -> attestd status (a string) or the error attestd raises.
QVL_STATUS: dict[str, str | type[AttestdError]] = {
    "STATUS_OK": "UpToDate",
    "STATUS_TCB_SW_HARDENING_NEEDED": "SWHardeningNeeded",
    "STATUS_TCB_CONFIGURATION_NEEDED": "ConfigurationNeeded",
    "STATUS_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED": "ConfigurationAndSWHardeningNeeded",
    "STATUS_TCB_OUT_OF_DATE": "OutOfDate",
    "STATUS_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED": "OutOfDateConfigurationNeeded",
    "STATUS_TCB_NOT_SUPPORTED": TcbNotSupported,
    "STATUS_TDX_MODULE_MISMATCH": TdxModuleMismatch,
}


def _meta(folder: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((folder / "meta.json").read_text())
    return meta


def _at(meta: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(meta["verification_time_unix"], UTC)


def _qvl_status(meta: dict[str, Any]) -> str:
    results = meta["results_at_verification_time"]
    for name, value in results.items():
        if name.startswith("intel_qvl") and "replaced" not in name:
            return str(value["Quote"])
    raise AssertionError("no Intel QVL result recorded")


def _advisories(meta: dict[str, Any]) -> list[str] | None:
    level = meta.get("tcb_evaluation", {}).get("platform_tcb_level")
    if level is not None:
        return list(level.get("advisoryIDs", []))
    for name, value in meta["results_at_verification_time"].items():
        if not name.startswith("intel_qvl") and isinstance(value, dict) and "status" in value:
            return list(value.get("advisory_ids", []))
    return None


def _window_consistent(meta: dict[str, Any]) -> bool:
    return bool(meta.get("window_consistent", True))


@pytest.mark.parametrize("folder", dcap_samples() + maa_offline_sets(), ids=lambda p: p.name)
def test_sample_matches_intel_qvl(folder: Path) -> None:
    meta = _meta(folder)
    verifier = DcapVerifier(
        collateral=BundleDirectory(folder),
        allow_expired_collateral=not _window_consistent(meta),
    )
    expected = QVL_STATUS[_qvl_status(meta)]
    quote = (folder / "quote.bin").read_bytes()
    if isinstance(expected, type):
        with pytest.raises(expected):
            verifier.verify(quote, at=_at(meta))
        return
    result = verifier.verify(quote, at=_at(meta))
    assert result.tcb_status == expected
    advisories = _advisories(meta)
    assert advisories is not None
    assert list(result.advisory_ids) == advisories
    assert result.collateral_expired == (not _window_consistent(meta))


def test_sample_count() -> None:
    # Guard against the parametrization silently finding nothing.
    assert len(dcap_samples()) == 11
    assert len(maa_offline_sets()) == 20


def test_partial_sample_fails_closed_without_audit_mode() -> None:
    folder = DCAP / "go-tdx-guest" / "tdx_v5_sample_partial"
    meta = _meta(folder)
    verifier = DcapVerifier(collateral=BundleDirectory(folder))
    with pytest.raises(CollateralExpired) as err:
        verifier.verify((folder / "quote.bin").read_bytes(), at=_at(meta))
    assert err.value.code == "CollateralExpired"
    assert err.value.item == "root_ca_crl"


def test_partial_sample_audit_mode_lists_what_expired() -> None:
    folder = DCAP / "go-tdx-guest" / "tdx_v5_sample_partial"
    meta = _meta(folder)
    reference = meta["results_at_verification_time"]["independent Python reference verifier"]
    verifier = DcapVerifier(collateral=BundleDirectory(folder), allow_expired_collateral=True)
    result = verifier.verify((folder / "quote.bin").read_bytes(), at=_at(meta))
    assert result.tcb_status == reference["status"] == "UpToDate"
    assert result.collateral_expired
    # The reference verifier names the same five items (its own spelling).
    assert len(result.expired_items) == len(reference["expired"]) == 5
    assert set(result.expired_items) == {
        "root_ca_crl",
        "pck_crl",
        "tcb_info_issuer_chain:Intel SGX TCB Signing",
        "qe_identity_issuer_chain:Intel SGX TCB Signing",
        "qe_identity",
    }


def _qvl_sample(sub: str) -> tuple[bytes, DcapCollateral, TrustAnchors, bytes]:
    base = DCAP / "intel-qvl-sampledata" / sub

    def rd(name: str) -> bytes:
        return (base / name).read_bytes()

    collateral = DcapCollateral(
        pck_crl=rd("intermediateCaCrl.der"),
        pck_crl_issuer_chain=rd("pckSignChain.pem"),
        root_ca_crl=rd("rootCaCrl.der"),
        tcb_info=rd("tcbInfo.json"),
        tcb_info_issuer_chain=rd("tcbSignChain.pem"),
        qe_identity=rd("qeIdentity.json"),
        qe_identity_issuer_chain=rd("tcbSignChain.pem"),
    )
    anchors = TrustAnchors.from_pem(rd("trustedRootCaCert.pem"))
    return rd("quote.dat"), collateral, anchors, rd("pckCert.pem") + rd("pckSignChain.pem")


QVL_SAMPLE_TIME = datetime(2025, 1, 1, tzinfo=UTC)  # the time Intel's AttestationApp was run


def test_intel_synthetic_sgx_sample_with_its_own_root() -> None:
    quote, collateral, anchors, chain = _qvl_sample("")
    verifier = DcapVerifier(collateral=BundleStore(DCAP / "none"), trust_anchors=anchors)
    result = verifier.verify(quote, at=QVL_SAMPLE_TIME, collateral=collateral, pck_chain=chain)
    assert result.tcb_status == "UpToDate"  # Intel QVL: all STATUS_OK


def test_intel_synthetic_sample_is_untrusted_under_the_intel_root() -> None:
    quote, collateral, _, chain = _qvl_sample("")
    verifier = DcapVerifier(collateral=BundleStore(DCAP / "none"))
    with pytest.raises(AttestdError) as err:
        verifier.verify(quote, at=QVL_SAMPLE_TIME, collateral=collateral, pck_chain=chain)
    assert err.value.code == "UntrustedCertificateChain"


def test_intel_synthetic_tdx_sample_is_a_module_mismatch() -> None:
    # Intel QVL: STATUS_TDX_MODULE_MISMATCH (known issue qvl#18).
    quote, collateral, anchors, chain = _qvl_sample("tdx")
    verifier = DcapVerifier(collateral=BundleStore(DCAP / "none"), trust_anchors=anchors)
    with pytest.raises(TdxModuleMismatch):
        verifier.verify(quote, at=QVL_SAMPLE_TIME, collateral=collateral, pck_chain=chain)


def test_bundle_store_picks_the_bundle_by_platform() -> None:
    store = BundleStore(DCAP)
    assert ("sgx", bytes.fromhex("00a067110000"), "processor") in store.keys()
    assert ("tdx", bytes.fromhex("90c06f000000"), "platform") in store.keys()
    for name in ("phala-dcap-qvl/sgx_v3", "teepot/tdx_1"):
        folder = DCAP / name
        meta = _meta(folder)
        result = DcapVerifier(collateral=store).verify(
            (folder / "quote.bin").read_bytes(), at=_at(meta)
        )
        assert result.tcb_status == QVL_STATUS[_qvl_status(meta)]
        assert result.collateral.tcb_info == (folder / "tcb_info.json").read_bytes()


def test_bundle_store_has_nothing_for_an_unknown_platform() -> None:
    store = BundleStore(DCAP)
    with pytest.raises(CollateralUnavailable):
        store.dcap_collateral(tee="sgx", fmspc=bytes(6), ca="processor")


def test_open_enclave_report_carries_the_same_quote() -> None:
    for folder in maa_offline_sets():
        oe = folder / "openenclave_report.bin"
        if oe.exists():
            report = parse_openenclave_report(oe.read_bytes())
            assert report.quote.raw == (folder / "quote.bin").read_bytes()


def test_warm_caches_still_check_every_window() -> None:
    """A cached verification is not a pass: the same quote and collateral, verified again
    after the collateral expired, fails; the cache serves only what is time-independent."""
    folder = DCAP / "phala-dcap-qvl/sgx_v3"
    meta = _meta(folder)
    verifier = DcapVerifier(collateral=BundleDirectory(folder))
    quote = (folder / "quote.bin").read_bytes()
    verifier.verify(quote, at=_at(meta))
    verifier.verify(quote, at=_at(meta))  # warm
    end = datetime.fromisoformat(meta["common_window"][1].replace("Z", "+00:00"))
    assert verifier.verify(quote, at=end).earliest_expiration == end
    with pytest.raises(CollateralExpired) as err:
        verifier.verify(quote, at=end + timedelta(seconds=1))
    assert err.value.item == "qe_identity"  # the first item of the window to expire
    tampered = bytearray(quote)
    tampered[100] ^= 1
    with pytest.raises(AttestdError):
        verifier.verify(bytes(tampered), at=_at(meta))
