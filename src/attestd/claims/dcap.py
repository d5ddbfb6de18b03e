"""Claims from a verified DCAP quote, with Azure Attestation's names and encodings.

MAA's SGX and TDX claim sets (maa-compat.md §2.2): measurements and hashes are lower-case hex,
product IDs and SVNs are JSON integers, ``x-ms-sgx-report-data`` is all 64 bytes.
MAA puts no TCB status in SGX tokens; attestd adds it (and the advisory IDs) under the
``x-attestd-`` prefix so that no MAA name changes meaning.
"""

from __future__ import annotations

import hashlib
from typing import Any

from attestd.evidence.quote import EnclaveReport, TdReport
from attestd.verify.dcap import DcapResult

__all__ = ["ATTESTD_PREFIX", "collateral_hashes", "dcap_claims", "sgx_claims", "tdx_claims"]

ATTESTD_PREFIX = "x-attestd-"
TDX_EAT_PROFILE = "https://aka.ms/maa-eat-profile-tdxvm"

# TDATTRIBUTES bits (Intel TDX Module spec, "TDATTRIBUTES"): bit 0 DEBUG, 28 SEPT_VE_DISABLE,
# 30 PKS, 31 KL, 63 PERFMON.
_TD_ATTRIBUTE_BITS = {
    "tdx_td_attributes_debug": 0,
    "tdx_td_attributes_septve_disable": 28,
    "tdx_td_attributes_protection_keys": 30,
    "tdx_td_attributes_key_locker": 31,
    "tdx_td_attributes_perfmon": 63,
}


def _sha256_nul(data: bytes) -> str:
    return hashlib.sha256(bytes(data) + b"\x00").hexdigest()


def collateral_hashes(result: DcapResult, evidence: bytes) -> dict[str, str]:
    """MAA's ``x-ms-sgx-collateral``: SHA-256 of each piece of collateral as a NUL-terminated
    string, as QvE receives it. ``tcbinfocertshash``/``qeidcertshash`` reproduce MAA's recorded
    values; ``quotehash`` is the SHA-256 of the evidence as submitted (the OE report for
    Open Enclave evidence)."""
    c = result.collateral
    return {
        "qeidcertshash": _sha256_nul(c.qe_identity_issuer_chain),
        "qeidcrlhash": _sha256_nul(c.root_ca_crl),
        "qeidhash": _sha256_nul(c.qe_identity),
        "quotehash": hashlib.sha256(evidence).hexdigest(),
        "tcbinfocertshash": _sha256_nul(c.tcb_info_issuer_chain),
        "tcbinfocrlhash": _sha256_nul(c.root_ca_crl),
        "tcbinfohash": _sha256_nul(c.tcb_info),
    }


def _attestd_claims(result: DcapResult) -> dict[str, Any]:
    p = ATTESTD_PREFIX
    ev = result.evaluation
    out: dict[str, Any] = {
        f"{p}tcb-status": result.tcb_status,
        f"{p}advisory-ids": list(result.advisory_ids),
        f"{p}tcb-date": ev.tcb_date,
        f"{p}qe-tcb-status": ev.qe_status,
        f"{p}tcb-evaluation-data-number": ev.tcb_evaluation_data_number,
        f"{p}fmspc": result.pck.fmspc.hex(),
        f"{p}pck-ca": result.pck_ca,
        f"{p}collateral-expired": result.collateral_expired,
    }
    if result.collateral_expired:
        out[f"{p}expired-collateral"] = list(result.expired_items)
    return out


def sgx_claims(result: DcapResult, *, evidence: bytes | None = None) -> dict[str, Any]:
    """MAA's ``/attest/SgxEnclave`` and ``/attest/OpenEnclave`` claims (``x-ms-attestation-type``
    ``sgx``). ``evidence`` is what the client submitted (default: the raw quote)."""
    rep = result.quote.body
    if not isinstance(rep, EnclaveReport):
        raise TypeError("sgx_claims needs an SGX quote")
    hashes = collateral_hashes(result, result.quote.raw if evidence is None else evidence)
    claims: dict[str, Any] = {
        "x-ms-attestation-type": "sgx",
        "x-ms-sgx-collateral": hashes,
        "x-ms-sgx-is-debuggable": rep.debug,
        "x-ms-sgx-mrenclave": rep.mrenclave.hex(),
        "x-ms-sgx-mrsigner": rep.mrsigner.hex(),
        "x-ms-sgx-product-id": rep.isv_prod_id,
        "x-ms-sgx-report-data": rep.report_data.hex(),
        "x-ms-sgx-svn": rep.isv_svn,
        "x-ms-ver": "1.0",
    }
    # KSS claims (maa-compat §2.2): MAA issues them for enclaves using Key Separation and
    # Sharing; its tokens for enclaves without KSS (all four fields zero) carry none of them.
    if any(rep.config_id) or rep.config_svn or any(rep.isv_ext_prod_id) or any(rep.isv_family_id):
        claims["x-ms-sgx-config-id"] = rep.config_id.hex()
        claims["x-ms-sgx-config-svn"] = rep.config_svn
        claims["x-ms-sgx-isv-extended-product-id"] = rep.isv_ext_prod_id.hex()
        claims["x-ms-sgx-isv-family-id"] = rep.isv_family_id.hex()
    claims.update(_attestd_claims(result))
    return claims


def tdx_claims(result: DcapResult) -> dict[str, Any]:
    """MAA's ``/attest/TdxVm`` claims (``x-ms-attestation-type`` ``tdxvm``, maa-compat.md §2.2)."""
    td = result.quote.body
    if not isinstance(td, TdReport):
        raise TypeError("tdx_claims needs a TDX quote")
    attrs = int.from_bytes(td.td_attributes, "little")
    claims: dict[str, Any] = {
        "attester_tcb_status": result.tcb_status,
        "dbgstat": "enabled" if td.debug else "disabled",
        "eat_profile": TDX_EAT_PROFILE,
        "intuse": "generic",
        "tdx_mrconfigid": td.mrconfigid.hex(),
        "tdx_mrowner": td.mrowner.hex(),
        "tdx_mrownerconfig": td.mrownerconfig.hex(),
        "tdx_mrseam": td.mrseam.hex(),
        "tdx_mrsignerseam": td.mrsignerseam.hex(),
        "tdx_mrtd": td.mrtd.hex(),
        "tdx_report_data": td.report_data.hex(),
        "tdx_rtmr0": td.rtmr[0].hex(),
        "tdx_rtmr1": td.rtmr[1].hex(),
        "tdx_rtmr2": td.rtmr[2].hex(),
        "tdx_rtmr3": td.rtmr[3].hex(),
        "tdx_seam_attributes": td.seam_attributes.hex(),
        "tdx_seamsvn": (td.tee_tcb_svn[1] << 8) | td.tee_tcb_svn[0],
        "tdx_td_attributes": td.td_attributes.hex(),
        "tdx_tee_tcb_svn": td.tee_tcb_svn.hex(),
        "tdx_xfam": td.xfam.hex(),
        "x-ms-attestation-type": "tdxvm",
        "x-ms-ver": "1.0",
    }
    for name, bit in _TD_ATTRIBUTE_BITS.items():
        claims[name] = bool(attrs >> bit & 1)
    if td.tee_tcb_svn2 is not None and td.mrservicetd is not None:
        claims["tdx_tee_tcb_svn2"] = td.tee_tcb_svn2.hex()
        claims["tdx_mrservicetd"] = td.mrservicetd.hex()
    claims.update(_attestd_claims(result))
    return claims


def dcap_claims(result: DcapResult, *, evidence: bytes | None = None) -> dict[str, Any]:
    return tdx_claims(result) if result.tee == "tdx" else sgx_claims(result, evidence=evidence)
