"""Claims from verified real quotes equal what Azure Attestation issued for them."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from attestd.claims.dcap import dcap_claims, sgx_claims, tdx_claims
from attestd.collateral.source import BundleDirectory
from attestd.verify.dcap import DcapResult, DcapVerifier
from conftest import DCAP, maa_offline_sets

MAA_OFFLINE_SET = DCAP.parent / "maa-offline/sets/pysdk_b779_nondebug__2023-05"
MAA_CERTS_HASH_2023 = "a64d649198507d8b57e33f63ab266838f43f327bd4aacc78510b6976ed046e10"


def _verify(folder: Path) -> tuple[DcapResult, dict[str, object]]:
    meta = json.loads((folder / "meta.json").read_text())
    verifier = DcapVerifier(collateral=BundleDirectory(folder))
    at = datetime.fromtimestamp(meta["verification_time_unix"], UTC)
    return verifier.verify((folder / "quote.bin").read_bytes(), at=at), meta


@pytest.mark.parametrize("folder", maa_offline_sets(), ids=lambda p: p.name)
def test_maa_claims_from_quote(folder: Path) -> None:
    result, meta = _verify(folder)
    expected = meta["maa"]["derived_expected_claims"]  # type: ignore[index]
    claims = sgx_claims(result)
    for name, value in expected["from_quote"].items():
        assert claims[name] == value, name
    raw_hash = expected[
        "x-ms-sgx-collateral.quotehash for /attest/SgxEnclave (sha256 of raw quote)"
    ]
    assert claims["x-ms-sgx-collateral"]["quotehash"] == raw_hash  # type: ignore[index]
    oe_key = (
        "x-ms-sgx-collateral.quotehash for /attest/OpenEnclave (sha256 of OE report incl. "
        "16-byte header)"
    )
    if oe_key in expected:
        oe = (folder / "openenclave_report.bin").read_bytes()
        oe_claims = sgx_claims(result, evidence=oe)
        assert oe_claims["x-ms-sgx-collateral"]["quotehash"] == expected[oe_key]  # type: ignore[index]
    # The TCB status MAA does not issue, under our own prefix.
    assert claims["x-attestd-tcb-status"] == result.tcb_status
    assert claims["x-attestd-advisory-ids"] == list(result.advisory_ids)


def test_collateral_cert_hashes_reproduce_maa_tokens() -> None:
    # MAA's recorded tokens carry tcbinfocertshash = qeidcertshash = a64d...; the 2023-05 sets
    # have the same TCB Signing chain, so they must reproduce it exactly.
    checked = 0
    for folder in maa_offline_sets():
        if folder.name.endswith("2023-05"):
            result, _ = _verify(folder)
            coll = sgx_claims(result)["x-ms-sgx-collateral"]
            assert coll["tcbinfocertshash"] == MAA_CERTS_HASH_2023  # type: ignore[index]
            assert coll["qeidcertshash"] == MAA_CERTS_HASH_2023  # type: ignore[index]
            checked += 1
    assert checked == 10


def test_recorded_tokens_agree_on_every_quote_claim() -> None:
    tokens = json.loads(
        (DCAP.parent / "maa-offline/expected/pysdk_b779_nondebug.recorded_tokens.json").read_text()
    )
    folder = DCAP.parent / "maa-offline/sets/pysdk_b779_nondebug__2023-05"
    result, _ = _verify(folder)
    claims = sgx_claims(result)
    names = [
        "x-ms-sgx-mrenclave",
        "x-ms-sgx-mrsigner",
        "x-ms-sgx-product-id",
        "x-ms-sgx-svn",
        "x-ms-sgx-is-debuggable",
        "x-ms-sgx-report-data",
    ]
    seen = 0
    for path in ("/attest/SgxEnclave", "/attest/OpenEnclave"):
        for token in tokens[path]:
            body = token["claims"]
            for name in names:
                assert claims[name] == body[name], name
            seen += 1
    assert seen >= 30


def test_tdx_claims() -> None:
    folder = DCAP / "phala-dcap-qvl" / "tdx_v4"
    result, _ = _verify(folder)
    claims = tdx_claims(result)
    td = result.quote.td_report
    assert claims["x-ms-attestation-type"] == "tdxvm"
    assert claims["attester_tcb_status"] == "UpToDate"
    assert claims["tdx_mrtd"] == td.mrtd.hex() and len(td.mrtd) == 48
    assert claims["tdx_rtmr0"] == td.rtmr[0].hex()
    assert claims["tdx_report_data"] == td.report_data.hex()
    assert claims["tdx_td_attributes_debug"] is False
    assert claims["tdx_td_attributes_septve_disable"] is True  # td_attributes 0000001000000000
    assert claims["dbgstat"] == "disabled"
    assert dcap_claims(result) == claims
    hashed = hashlib.sha256(result.quote.raw).hexdigest()
    assert hashed == json.loads((folder / "meta.json").read_text())["quote_sha256"]


def test_tdx15_claims_carry_the_second_svn() -> None:
    folder = DCAP / "go-tdx-guest" / "tdx_v5_sample_partial"
    meta = json.loads((folder / "meta.json").read_text())
    verifier = DcapVerifier(collateral=BundleDirectory(folder), allow_expired_collateral=True)
    at = datetime.fromtimestamp(meta["verification_time_unix"], UTC)
    result = verifier.verify((folder / "quote.bin").read_bytes(), at=at)
    claims = tdx_claims(result)
    assert len(str(claims["tdx_mrservicetd"])) == 96
    assert claims["x-attestd-collateral-expired"] is True
    assert "qe_identity" in claims["x-attestd-expired-collateral"]  # type: ignore[operator]


def test_kss_claims_only_for_kss_enclaves() -> None:
    from dataclasses import replace

    result, _ = _verify(MAA_OFFLINE_SET)
    assert "x-ms-sgx-config-id" not in sgx_claims(result)  # as in MAA's recorded tokens
    report = replace(result.quote.enclave_report, config_svn=3, isv_family_id=b"\x01" * 16)
    kss = replace(result, quote=replace(result.quote, body=report))
    claims = sgx_claims(kss)
    assert claims["x-ms-sgx-config-svn"] == 3
    assert claims["x-ms-sgx-isv-family-id"] == "01" * 16
    assert claims["x-ms-sgx-config-id"] == "00" * 64
