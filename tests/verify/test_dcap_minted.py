"""DCAP verification against a test PKI minted in the session (tests/fakes/dcap_pki.py).

Each test changes one knob of an otherwise UpToDate SGX v3 / TDX v4 / TDX v5 quote and its
collateral, and asserts Intel QVL's outcome (dcap.md §1): the exact error class (and ``code``), or
the exact status and advisory IDs. Verification times are always pinned.

Negative cases run on one shared verifier that has already verified the baselines, so cached
chains and collateral cannot hide a failure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest

from attestd.errors import (
    AttestdError,
    CertificateExpired,
    CertificateRevoked,
    CollateralExpired,
    CollateralMalformed,
    CollateralRevoked,
    CollateralSignatureInvalid,
    CollateralUntrusted,
    InvalidQeReportSignature,
    InvalidQuoteSignature,
    QeIdentityMismatch,
    QeReportDataMismatch,
    TcbInfoMismatch,
    TcbNotSupported,
    TcbRevoked,
    TdxModuleMismatch,
    UntrustedCertificateChain,
)
from attestd.verify.dcap import DcapResult, DcapVerifier
from fakes.dcap_pki import (
    NOW,
    SGX_COMPONENTS,
    SGX_LEVELS,
    STRIPPED_BYTES,
    TDX_COMPONENTS,
    TDX_LEVELS,
    EnclaveLevel,
    FixedCollateral,
    Level,
    Minted,
    ModuleIdentity,
    anchors,
    mint,
    respaced,
    with_top_level,
)

TEES = ["sgx", "tdx"]
SECOND = timedelta(seconds=1)


@contextmanager
def raises_exactly(cls: type[AttestdError]) -> Iterator[pytest.ExceptionInfo[AttestdError]]:
    """Like ``pytest.raises``, but the error must be of exactly this class (not a subclass)."""
    with pytest.raises(AttestdError) as info:
        yield info
    assert type(info.value) is cls, f"{type(info.value).__name__}: {info.value}"
    assert info.value.code == cls.code


def verifier(m: Minted | None = None, *, allow_expired: bool = False) -> DcapVerifier:
    return DcapVerifier(
        collateral=FixedCollateral(m.collateral if m else None),
        trust_anchors=anchors(),
        allow_expired_collateral=allow_expired,
    )


def check(m: Minted, *, at: datetime = NOW, v: DcapVerifier | None = None) -> DcapResult:
    return (v or verifier(m)).verify(m.quote, at=at, collateral=m.collateral)


@pytest.fixture(scope="module")
def shared() -> DcapVerifier:
    """One verifier for the whole module, warmed with every baseline."""
    v = verifier()
    for kw in ({"tee": "sgx"}, {"tee": "tdx"}, {"tee": "tdx", "td15": True}):
        assert check(mint(**kw), v=v).tcb_status == "UpToDate"
    return v


def rejects(shared: DcapVerifier, cls: type[AttestdError], **knobs: Any) -> AttestdError:
    """The baseline of the same TEE passes on ``shared``, then the variant fails with ``cls``."""
    tee = knobs.get("tee", "sgx")
    assert check(mint(tee=tee, td15=knobs.get("td15", False)), v=shared).tcb_status == "UpToDate"
    m = mint(**knobs)
    with raises_exactly(cls) as info:
        check(m, v=shared)
    return info.value


def status(shared: DcapVerifier, **knobs: Any) -> tuple[str, tuple[str, ...]]:
    r = check(mint(**knobs), v=shared)
    return r.tcb_status, r.advisory_ids


# ---------------------------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------------------------


def test_baseline_sgx_v3_up_to_date() -> None:
    m = mint()
    r = check(m)
    assert (r.tcb_status, r.advisory_ids) == ("UpToDate", ())
    assert r.tee == "sgx" and r.pck_ca == "processor" and r.quote.header.version == 3
    assert r.pck.tcb_components == SGX_COMPONENTS and r.pck.pcesvn == 13
    assert r.pck.platform_instance_id is None
    assert not r.collateral_expired and r.expired_items == ()
    assert r.earliest_expiration == NOW + timedelta(days=25)  # the PCK CRL's nextUpdate
    assert r.evaluation.qe_status == "UpToDate" and r.evaluation.module_status is None


def test_baseline_tdx_v4_up_to_date() -> None:
    m = mint(tee="tdx", trailing_bytes=70)
    r = check(m)
    assert (r.tcb_status, r.advisory_ids) == ("UpToDate", ())
    assert r.tee == "tdx" and r.pck_ca == "platform" and r.quote.header.version == 4
    assert r.quote.trailing_bytes == 70
    assert r.pck.tcb_components == TDX_COMPONENTS and r.pck.platform_instance_id is not None
    assert r.evaluation.module_status == "UpToDate"


def test_baseline_tdx_v5_td15_up_to_date() -> None:
    r = check(mint(tee="tdx", td15=True))
    assert (r.tcb_status, r.advisory_ids) == ("UpToDate", ())
    assert r.quote.header.version == 5 and r.quote.body_type.name == "TD_REPORT15"


@pytest.mark.parametrize(
    "knobs",
    [
        {"ca": "platform"},
        {"version": 4},
        {"crl_encoding": "pem"},
        {"crl_encoding": "hex"},
        {"tee": "tdx", "ca": "processor"},
        {"tee": "tdx", "crl_encoding": "hex"},
    ],
    ids=repr,
)
def test_baseline_variants_verify(knobs: dict[str, Any]) -> None:
    assert check(mint(**knobs)).tcb_status == "UpToDate"


def test_minting_is_deterministic() -> None:
    assert mint() == mint()
    assert mint(tee="tdx", td15=True) == mint(tee="tdx", td15=True)


def test_minted_chain_is_not_trusted_by_the_default_intel_anchor() -> None:
    m = mint()
    with raises_exactly(UntrustedCertificateChain):
        DcapVerifier(collateral=FixedCollateral(m.collateral)).verify(m.quote, at=NOW)


# ---------------------------------------------------------------------------------------------
# PCK chain, CRLs and trust anchors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tee", TEES)
def test_revoked_pck_leaf(shared: DcapVerifier, tee: str) -> None:
    rejects(shared, CertificateRevoked, tee=tee, revoke_pck_leaf=True)


def test_revoked_pck_leaf_same_quote_after_passing(shared: DcapVerifier) -> None:
    """The very same quote passes with clean CRLs and fails once its leaf is revoked."""
    good, revoked = mint(), mint(revoke_pck_leaf=True)
    assert good.quote == revoked.quote
    assert check(good, v=shared).tcb_status == "UpToDate"
    with raises_exactly(CertificateRevoked):
        check(revoked, v=shared)


@pytest.mark.parametrize("tee", TEES)
def test_revoked_intermediate_ca_is_rejected(shared: DcapVerifier, tee: str) -> None:
    m = mint(tee=tee, revoke_pck_ca=True)
    with pytest.raises((CertificateRevoked, CollateralRevoked)):
        check(m, v=shared)


def test_revoked_intermediate_ca_is_a_certificate_error(shared: DcapVerifier) -> None:
    rejects(shared, CertificateRevoked, revoke_pck_ca=True)


def test_revoked_tcb_signing_certificate(shared: DcapVerifier) -> None:
    rejects(shared, CollateralRevoked, revoke_tcb_signing=True)


@pytest.mark.parametrize("tee", TEES)
def test_pck_chain_under_a_rogue_root_with_the_same_name(shared: DcapVerifier, tee: str) -> None:
    rejects(shared, UntrustedCertificateChain, tee=tee, pck_pki="rogue")


@pytest.mark.parametrize("tee", TEES)
def test_collateral_from_an_untrusted_root(shared: DcapVerifier, tee: str) -> None:
    rejects(shared, CollateralUntrusted, tee=tee, collateral_pki="rogue")


def test_tcb_info_and_qe_identity_signed_under_an_untrusted_root(shared: DcapVerifier) -> None:
    err = rejects(shared, CollateralUntrusted, tcb_signing_pki="rogue")
    assert "tcb_info_issuer_chain" in err.message


@pytest.mark.parametrize(
    ("tee", "crl_ca"), [("sgx", "platform"), ("tdx", "processor")], ids=["sgx", "tdx"]
)
def test_pck_crl_of_the_wrong_ca_type(shared: DcapVerifier, tee: str, crl_ca: str) -> None:
    rejects(shared, CollateralUntrusted, tee=tee, pck_crl_ca=crl_ca)


def _pck_crl_ending_in_nul() -> Minted:
    for n in range(1, 5000):
        m = mint(pck_crl_number=n, crl_exact_number=True)
        if m.collateral.pck_crl[-1] == 0:
            return m
    raise AssertionError("no CRL number gives a DER CRL ending in 0x00")


def test_der_crl_ending_in_a_nul_byte_verifies() -> None:
    m = _pck_crl_ending_in_nul()
    assert m.collateral.pck_crl[-1] in STRIPPED_BYTES
    assert check(m).tcb_status == "UpToDate"


# ---------------------------------------------------------------------------------------------
# TCB level table (step 25)
# ---------------------------------------------------------------------------------------------

STATUSES = [
    ("UpToDate", ()),
    ("SWHardeningNeeded", ("INTEL-SA-00615",)),
    ("ConfigurationNeeded", ("INTEL-SA-00289",)),
    ("ConfigurationAndSWHardeningNeeded", ("INTEL-SA-00289", "INTEL-SA-00615")),
    ("OutOfDate", ("INTEL-SA-00828", "INTEL-SA-00615")),
    ("OutOfDateConfigurationNeeded", ("INTEL-SA-00828", "INTEL-SA-00289")),
]


def _levels(tee: str) -> tuple[Level, ...]:
    return TDX_LEVELS if tee == "tdx" else SGX_LEVELS


@pytest.mark.parametrize("tee", TEES)
@pytest.mark.parametrize(("level_status", "ids"), STATUSES, ids=[s for s, _ in STATUSES])
def test_every_level_status_is_returned_with_its_advisories(
    shared: DcapVerifier, tee: str, level_status: str, ids: tuple[str, ...]
) -> None:
    levels = with_top_level(_levels(tee), level_status, ids)
    r = check(mint(tee=tee, tcb_levels=levels), v=shared)
    assert (r.tcb_status, r.advisory_ids) == (level_status, ids)
    assert r.evaluation.platform_status == level_status
    assert r.evaluation.tcb_date == levels[0].date


@pytest.mark.parametrize("tee", TEES)
def test_revoked_level(shared: DcapVerifier, tee: str) -> None:
    levels = with_top_level(_levels(tee), "Revoked", ("INTEL-SA-00999",))
    rejects(shared, TcbRevoked, tee=tee, tcb_levels=levels)


@pytest.mark.parametrize("tee", TEES)
def test_no_level_matches_the_pck_components(shared: DcapVerifier, tee: str) -> None:
    rejects(shared, TcbNotSupported, tee=tee, pck_components=(1,) * 16)


@pytest.mark.parametrize("tee", TEES)
def test_no_level_matches_the_pcesvn(shared: DcapVerifier, tee: str) -> None:
    rejects(shared, TcbNotSupported, tee=tee, pcesvn=4)


def test_one_component_below_every_level_is_not_supported(shared: DcapVerifier) -> None:
    """Every component is compared: one low SVN (index 1) fails all levels."""
    comps = (SGX_COMPONENTS[0], 9, *SGX_COMPONENTS[2:])
    rejects(shared, TcbNotSupported, pck_components=comps)


def test_level_selection_picks_the_first_level_met_components(shared: DcapVerifier) -> None:
    """Component 0 between the UpToDate level (11) and the next (10): the next one applies."""
    comps = (10, *SGX_COMPONENTS[1:])
    r = check(mint(pck_components=comps), v=shared)
    assert (r.tcb_status, r.advisory_ids) == ("OutOfDate", ("INTEL-SA-00828",))
    assert r.evaluation.tcb_date == SGX_LEVELS[1].date


def test_level_selection_picks_the_first_level_met_pcesvn(shared: DcapVerifier) -> None:
    """PCESVN 12 is below the two newest levels (13) and above the third (11)."""
    r = check(mint(pcesvn=12), v=shared)
    assert (r.tcb_status, r.advisory_ids) == ("OutOfDate", ("INTEL-SA-00828", "INTEL-SA-00615"))


def test_level_selection_does_not_depend_on_json_order(shared: DcapVerifier) -> None:
    """QVL sorts the levels (descending); listing them oldest first changes nothing."""
    assert status(shared, tcb_levels=tuple(reversed(SGX_LEVELS))) == ("UpToDate", ())
    comps = (10, *SGX_COMPONENTS[1:])
    assert status(shared, tcb_levels=tuple(reversed(SGX_LEVELS)), pck_components=comps) == (
        "OutOfDate",
        ("INTEL-SA-00828",),
    )


def test_tdx_level_needs_the_tee_tcb_svn_too(shared: DcapVerifier) -> None:
    """TEE TCB SVN[2] = 1 is below the newest level's 2: the next level (same SGX TCB) applies;
    its advisories are reported, and the SGX status is the first SGX match's."""
    svn = bytes([5, 1, 1]) + bytes(13)
    r = check(mint(tee="tdx", tee_tcb_svn=svn), v=shared)
    assert (r.tcb_status, r.advisory_ids) == ("OutOfDate", ("INTEL-SA-01036",))
    assert r.evaluation.sgx_status == "UpToDate"


def test_tdx_tee_tcb_svn_below_every_level(shared: DcapVerifier) -> None:
    rejects(shared, TcbNotSupported, tee="tdx", tee_tcb_svn=bytes([5, 1, 0]) + bytes(13))


def test_tdx_module_major_version_zero_compares_every_index(shared: DcapVerifier) -> None:
    """tee_tcb_svn[1] == 0: no module identity; indices 0 and 1 take part in level matching."""
    assert status(shared, tee="tdx", tee_tcb_svn=bytes([5, 0, 2]) + bytes(13)) == ("UpToDate", ())
    r = check(mint(tee="tdx", tee_tcb_svn=bytes([4, 0, 2]) + bytes(13)), v=shared)
    assert (r.tcb_status, r.advisory_ids) == ("OutOfDate", ("INTEL-SA-01036",))
    assert r.evaluation.module_status == "UpToDate"


# ---------------------------------------------------------------------------------------------
# QE identity (step 23, merge step 28)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tee", TEES)
@pytest.mark.parametrize(
    "knobs",
    [
        {"qe_mrsigner": bytes(32)},
        {"qe_isvprodid": 3},
        {"qe_attributes": bytes.fromhex("13000000000000000700000000000000")},  # bit 1 under mask
        {"qe_miscselect": 1},
        {"qe_identity_miscselect": bytes.fromhex("01000000")},
    ],
    ids=["mrsigner", "isvprodid", "attributes", "miscselect", "identity-miscselect"],
)
def test_qe_identity_mismatch(shared: DcapVerifier, tee: str, knobs: dict[str, Any]) -> None:
    rejects(shared, QeIdentityMismatch, tee=tee, **knobs)


@pytest.mark.parametrize(("tee", "ident"), [("sgx", "TD_QE"), ("tdx", "QE")])
def test_qe_identity_of_the_other_tee(shared: DcapVerifier, tee: str, ident: str) -> None:
    rejects(shared, QeIdentityMismatch, tee=tee, qe_identity_id=ident)


@pytest.mark.parametrize("tee", TEES)
def test_qe_attributes_outside_the_mask_are_ignored(shared: DcapVerifier, tee: str) -> None:
    """Byte 0 bit 2 (mask FB) and the XFRM half (mask 0) may differ."""
    attrs = bytes.fromhex("150000000000000000ff000000000000")
    assert status(shared, tee=tee, qe_attributes=attrs) == ("UpToDate", ())


def test_qe_miscselect_compared_under_its_mask(shared: DcapVerifier) -> None:
    assert status(
        shared,
        qe_miscselect=0x01000000,
        qe_identity_miscselect_mask=bytes.fromhex("FFFFFF00"),
    ) == ("UpToDate", ())
    # The report's u32 is little-endian: 0x01000000 is the identity byte string 00000001.
    rejects(
        shared,
        QeIdentityMismatch,
        qe_miscselect=0x01000000,
        qe_identity_miscselect_mask=bytes.fromhex("00FFFFFF"),
    )


QE_MERGE = [
    ("UpToDate", "OutOfDate"),
    ("SWHardeningNeeded", "OutOfDate"),
    ("ConfigurationNeeded", "OutOfDateConfigurationNeeded"),
    ("ConfigurationAndSWHardeningNeeded", "OutOfDateConfigurationNeeded"),
    ("OutOfDate", "OutOfDate"),
    ("OutOfDateConfigurationNeeded", "OutOfDateConfigurationNeeded"),
]


@pytest.mark.parametrize("tee", TEES)
@pytest.mark.parametrize(("level_status", "merged"), QE_MERGE, ids=[s for s, _ in QE_MERGE])
def test_qe_out_of_date_merges(
    shared: DcapVerifier, tee: str, level_status: str, merged: str
) -> None:
    """QE ISVSVN 7 meets the OutOfDate QE level; the platform level's advisories are reported."""
    ids = ("INTEL-SA-00001",)
    levels = with_top_level(_levels(tee), level_status, ids)
    r = check(mint(tee=tee, tcb_levels=levels, qe_isvsvn=7), v=shared)
    assert (r.tcb_status, r.advisory_ids) == (merged, ids)
    assert r.evaluation.qe_status == "OutOfDate"
    assert r.evaluation.qe_tcb_date == "2021-11-10T00:00:00Z"


@pytest.mark.parametrize("tee", TEES)
def test_qe_revoked(shared: DcapVerifier, tee: str) -> None:
    rejects(shared, TcbRevoked, tee=tee, qe_isvsvn=5)


@pytest.mark.parametrize("tee", TEES)
def test_qe_svn_below_every_level(shared: DcapVerifier, tee: str) -> None:
    rejects(shared, TcbNotSupported, tee=tee, qe_isvsvn=3)


def test_qe_levels_are_taken_in_json_order(shared: DcapVerifier) -> None:
    """dcap.md step 23: the first entry in JSON order with isvsvn <= the report's wins."""
    levels = (EnclaveLevel(4, "Revoked"), EnclaveLevel(8, "UpToDate"))
    rejects(shared, TcbRevoked, qe_levels=levels)


# ---------------------------------------------------------------------------------------------
# Signatures and the key binding (steps 21, 22, 24)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tee", TEES)
def test_qe_report_signature_wrong(shared: DcapVerifier, tee: str) -> None:
    rejects(shared, InvalidQeReportSignature, tee=tee, bad_qe_report_signature=True)


@pytest.mark.parametrize("tee", TEES)
def test_report_data_binding_broken(shared: DcapVerifier, tee: str) -> None:
    rejects(shared, QeReportDataMismatch, tee=tee, bad_report_data_binding=True)


@pytest.mark.parametrize("tee", TEES)
def test_quote_signature_wrong(shared: DcapVerifier, tee: str) -> None:
    rejects(shared, InvalidQuoteSignature, tee=tee, bad_quote_signature=True)


def test_quote_signature_wrong_td15(shared: DcapVerifier) -> None:
    rejects(shared, InvalidQuoteSignature, tee="tdx", td15=True, bad_quote_signature=True)


def test_tampered_body_fails_the_quote_signature(shared: DcapVerifier) -> None:
    m = mint()
    body_byte = 48 + 64  # mrenclave[0] of the SGX report
    bad = m.quote[:body_byte] + bytes([m.quote[body_byte] ^ 1]) + m.quote[body_byte + 1 :]
    assert check(m, v=shared).tcb_status == "UpToDate"
    with raises_exactly(InvalidQuoteSignature):
        shared.verify(bad, at=NOW, collateral=m.collateral)


# ---------------------------------------------------------------------------------------------
# TCB Info fits the platform (step 18)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tee", TEES)
@pytest.mark.parametrize(
    "knobs",
    [{"tcb_info_fmspc": bytes.fromhex("112233445566")}, {"tcb_info_pce_id": b"\x00\x01"}],
    ids=["fmspc", "pceId"],
)
def test_tcb_info_does_not_fit_the_pck(
    shared: DcapVerifier, tee: str, knobs: dict[str, Any]
) -> None:
    rejects(shared, TcbInfoMismatch, tee=tee, **knobs)


@pytest.mark.parametrize(("tee", "tcb_id"), [("sgx", "TDX"), ("tdx", "SGX")])
def test_tcb_info_id_of_the_other_tee(shared: DcapVerifier, tee: str, tcb_id: str) -> None:
    # Without TDX components two TDX levels would be duplicates (CollateralMalformed): keep one.
    levels = _levels(tee) if tee == "sgx" else (TDX_LEVELS[0], TDX_LEVELS[2])
    rejects(shared, TcbInfoMismatch, tee=tee, tcb_info_id=tcb_id, tcb_levels=levels)


def test_duplicate_tcb_levels_are_malformed(shared: DcapVerifier) -> None:
    rejects(shared, CollateralMalformed, tcb_levels=(SGX_LEVELS[0], *SGX_LEVELS))


def test_tcb_info_fmspc_hex_case_does_not_matter(shared: DcapVerifier) -> None:
    m = mint(fmspc=bytes.fromhex("00A0B0C0D0E0"))
    assert b'"fmspc":"00A0B0C0D0E0"' in m.collateral.tcb_info
    assert check(m, v=shared).tcb_status == "UpToDate"


# ---------------------------------------------------------------------------------------------
# Collateral signed over its exact bytes (steps 14, 16)
# ---------------------------------------------------------------------------------------------


def _replace_once(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) >= 1
    return data.replace(old, new, 1)


@pytest.mark.parametrize("tee", TEES)
def test_tampered_tcb_info(shared: DcapVerifier, tee: str) -> None:
    m = mint(tee=tee)
    assert check(m, v=shared).tcb_status == "UpToDate"
    # One value changed: the second level (OutOfDate) claims UpToDate.
    tcb = _replace_once(
        m.collateral.tcb_info, b'"tcbStatus":"OutOfDate"', b'"tcbStatus":"UpToDate"'
    )
    with raises_exactly(CollateralSignatureInvalid):
        check(m._replace(collateral=dataclasses.replace(m.collateral, tcb_info=tcb)), v=shared)


@pytest.mark.parametrize("tee", TEES)
def test_respaced_tcb_info(shared: DcapVerifier, tee: str) -> None:
    m = mint(tee=tee)
    assert check(m, v=shared).tcb_status == "UpToDate"
    coll = dataclasses.replace(m.collateral, tcb_info=respaced(m.collateral.tcb_info))
    with raises_exactly(CollateralSignatureInvalid):
        check(m._replace(collateral=coll), v=shared)


@pytest.mark.parametrize("tee", TEES)
def test_tampered_qe_identity(shared: DcapVerifier, tee: str) -> None:
    m = mint(tee=tee)
    assert check(m, v=shared).tcb_status == "UpToDate"
    qe = _replace_once(m.collateral.qe_identity, b'"isvsvn":8', b'"isvsvn":7')
    with raises_exactly(CollateralSignatureInvalid):
        check(m._replace(collateral=dataclasses.replace(m.collateral, qe_identity=qe)), v=shared)


@pytest.mark.parametrize("tee", TEES)
def test_respaced_qe_identity(shared: DcapVerifier, tee: str) -> None:
    m = mint(tee=tee)
    assert check(m, v=shared).tcb_status == "UpToDate"
    coll = dataclasses.replace(m.collateral, qe_identity=respaced(m.collateral.qe_identity))
    with raises_exactly(CollateralSignatureInvalid):
        check(m._replace(collateral=coll), v=shared)


def test_whitespace_outside_the_signed_object_is_harmless(shared: DcapVerifier) -> None:
    m = mint()
    tcb = m.collateral.tcb_info
    inner_end = tcb.index(b',"signature"')
    spaced = (
        b'{ "tcbInfo" :\n' + tcb[len(b'{"tcbInfo":') : inner_end] + b" ,\n" + tcb[inner_end + 1 :]
    )
    coll = dataclasses.replace(m.collateral, tcb_info=spaced + b"\n")
    assert check(m._replace(collateral=coll), v=shared).tcb_status == "UpToDate"


# ---------------------------------------------------------------------------------------------
# Expiry (steps 11, 15, 16; QvE's collateral_expiration_status)
# ---------------------------------------------------------------------------------------------

BOUNDARY = NOW + timedelta(days=1)

EXPIRY = [
    ("root_crl_next_update", CollateralExpired, "root_ca_crl"),
    ("pck_crl_next_update", CollateralExpired, "pck_crl"),
    ("tcb_info_next_update", CollateralExpired, "tcb_info"),
    ("qe_identity_next_update", CollateralExpired, "qe_identity"),
    ("tcb_signing_not_after", CollateralExpired, "tcb_info_issuer_chain:Intel SGX TCB Signing"),
    ("pck_not_after", CertificateExpired, "pck_chain:Intel SGX PCK Certificate"),
]


@pytest.mark.parametrize("tee", TEES)
@pytest.mark.parametrize(("knob", "error", "item"), EXPIRY, ids=[k for k, _, _ in EXPIRY])
def test_expiry_boundary(
    shared: DcapVerifier, tee: str, knob: str, error: type[AttestdError], item: str
) -> None:
    m = mint(tee=tee, **{knob: BOUNDARY})
    before = check(m, at=BOUNDARY - SECOND, v=shared)
    assert before.tcb_status == "UpToDate" and not before.collateral_expired
    assert before.earliest_expiration == BOUNDARY
    with raises_exactly(error) as info:
        check(m, at=BOUNDARY + SECOND, v=shared)
    assert not isinstance(info.value, CollateralExpired) or info.value.item == item
    # Audit mode: verified, flagged, and the item named.
    r = check(m, at=BOUNDARY + SECOND, v=verifier(allow_expired=True))
    assert r.tcb_status == "UpToDate"
    assert r.collateral_expired is True
    assert item in r.expired_items
    assert r.verification_time == BOUNDARY + SECOND


def test_expired_tcb_signing_cert_is_named_for_both_documents() -> None:
    m = mint(tcb_signing_not_after=BOUNDARY)
    r = check(m, at=BOUNDARY + SECOND, v=verifier(allow_expired=True))
    assert set(r.expired_items) == {
        "tcb_info_issuer_chain:Intel SGX TCB Signing",
        "qe_identity_issuer_chain:Intel SGX TCB Signing",
    }


def test_allow_expired_does_not_excuse_other_failures() -> None:
    m = mint(pck_crl_next_update=BOUNDARY, revoke_pck_leaf=True)
    with raises_exactly(CertificateRevoked):
        check(m, at=BOUNDARY + SECOND, v=verifier(allow_expired=True))


def test_crl_before_this_update(shared: DcapVerifier) -> None:
    m = mint(root_crl_this_update=NOW + timedelta(hours=1))
    with raises_exactly(CollateralExpired) as info:
        check(m, v=shared)
    assert isinstance(info.value, CollateralExpired) and info.value.item == "root_ca_crl"
    assert check(m, at=NOW + timedelta(hours=2), v=shared).tcb_status == "UpToDate"


def test_tcb_info_issue_date_is_not_checked(shared: DcapVerifier) -> None:
    m = mint(tcb_info_issue_date=NOW + timedelta(hours=1))
    assert check(m, v=shared).tcb_status == "UpToDate"


def test_pck_leaf_not_before_is_not_checked(shared: DcapVerifier) -> None:
    m = mint(pck_not_before=NOW + timedelta(hours=1))
    assert check(m, v=shared).tcb_status == "UpToDate"


# ---------------------------------------------------------------------------------------------
# TDX module identity (steps 20, 26)
# ---------------------------------------------------------------------------------------------


def test_tdx_module_identity_missing(shared: DcapVerifier) -> None:
    rejects(shared, TdxModuleMismatch, tee="tdx", tdx_module_identities=())


def test_tdx_module_identity_of_another_major_version(shared: DcapVerifier) -> None:
    rejects(shared, TdxModuleMismatch, tee="tdx", tee_tcb_svn=bytes([5, 2, 2]) + bytes(13))


def test_tdx_module_identity_id_compared_upper_case(shared: DcapVerifier) -> None:
    ident = (ModuleIdentity(id="tdx_01"),)
    assert status(shared, tee="tdx", tdx_module_identities=ident) == ("UpToDate", ())


def test_mrsignerseam_mismatch(shared: DcapVerifier) -> None:
    rejects(shared, TdxModuleMismatch, tee="tdx", mrsignerseam=b"\x01" * 48)


def test_mrsignerseam_matches_the_module_identity_not_tdx_module(shared: DcapVerifier) -> None:
    """With tee_tcb_svn[1] > 0 the TDX_01 identity supplies the expected MRSIGNERSEAM."""
    signer = b"\x5a" * 48
    ident = (ModuleIdentity(mrsigner=signer),)
    assert status(shared, tee="tdx", tdx_module_identities=ident, mrsignerseam=signer) == (
        "UpToDate",
        (),
    )
    rejects(shared, TdxModuleMismatch, tee="tdx", tdx_module_mrsigner=signer, mrsignerseam=signer)


def test_major_version_zero_uses_tdx_module(shared: DcapVerifier) -> None:
    """tee_tcb_svn[1] == 0: tdxModule supplies the expected MRSIGNERSEAM (identities unused)."""
    svn = bytes([5, 0, 2]) + bytes(13)
    signer = b"\x02" * 48
    assert status(
        shared, tee="tdx", tee_tcb_svn=svn, tdx_module_mrsigner=signer, mrsignerseam=signer
    ) == ("UpToDate", ())
    rejects(shared, TdxModuleMismatch, tee="tdx", tee_tcb_svn=svn, tdx_module_mrsigner=b"\x02" * 48)


def test_seam_attributes_non_zero(shared: DcapVerifier) -> None:
    rejects(shared, TdxModuleMismatch, tee="tdx", seam_attributes=b"\x01" + bytes(7))


def test_seam_attributes_non_zero_even_when_expected(shared: DcapVerifier) -> None:
    """QVL requires all-zero SEAMATTRIBUTES even when the identity lists the same value."""
    attrs = b"\x01" + bytes(7)
    ident = (ModuleIdentity(attributes=attrs),)
    rejects(
        shared, TdxModuleMismatch, tee="tdx", tdx_module_identities=ident, seam_attributes=attrs
    )


@pytest.mark.parametrize(("level_status", "merged"), QE_MERGE[:4], ids=[s for s, _ in QE_MERGE[:4]])
def test_tdx_module_out_of_date_converges(
    shared: DcapVerifier, level_status: str, merged: str
) -> None:
    """Module SVN 4 meets TDX_01's OutOfDate level (isvsvn 3); the platform level still matches
    (indices 0 and 1 are skipped) and its advisories are reported."""
    ids = ("INTEL-SA-00002",)
    levels = with_top_level(TDX_LEVELS, level_status, ids)
    r = check(
        mint(tee="tdx", tcb_levels=levels, tee_tcb_svn=bytes([4, 1, 2]) + bytes(13)), v=shared
    )
    assert (r.tcb_status, r.advisory_ids) == (merged, ids)
    assert r.evaluation.module_status == "OutOfDate"
    assert r.evaluation.platform_status == level_status


def test_tdx_module_revoked(shared: DcapVerifier) -> None:
    rejects(shared, TcbRevoked, tee="tdx", tee_tcb_svn=bytes([2, 1, 2]) + bytes(13))


def test_tdx_module_svn_below_every_level(shared: DcapVerifier) -> None:
    rejects(shared, TcbNotSupported, tee="tdx", tee_tcb_svn=bytes([0, 1, 2]) + bytes(13))


# ---------------------------------------------------------------------------------------------
# TD relaunch (step 27, TD report 1.5)
# ---------------------------------------------------------------------------------------------

OLD_MODULE = bytes([4, 1, 2]) + bytes(13)  # module OutOfDate (TDX_01 latest is 5)


def _td15(**knobs: Any) -> dict[str, Any]:
    return {"tee": "tdx", "td15": True, "tee_tcb_svn": OLD_MODULE, **knobs}


@pytest.mark.parametrize(
    "svn2",
    [bytes([5, 1, 2]) + bytes(13), bytes([5, 0, 2]) + bytes(13), bytes([6, 1, 3]) + bytes(13)],
    ids=["major-1", "major-0", "newer"],
)
def test_td_relaunch_advised(shared: DcapVerifier, svn2: bytes) -> None:
    r = check(mint(**_td15(tee_tcb_svn2=svn2)), v=shared)
    assert (r.tcb_status, r.advisory_ids) == ("TDRelaunchAdvised", ())
    assert r.evaluation.module_status == "OutOfDate"


@pytest.mark.parametrize(
    "level_status", ["ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded"]
)
def test_td_relaunch_advised_configuration_needed(shared: DcapVerifier, level_status: str) -> None:
    levels = with_top_level(TDX_LEVELS, level_status, ("INTEL-SA-00289",))
    knobs = _td15(tee_tcb_svn2=bytes([5, 1, 2]) + bytes(13), tcb_levels=levels)
    assert status(shared, **knobs) == ("TDRelaunchAdvisedConfigurationNeeded", ("INTEL-SA-00289",))


@pytest.mark.parametrize(
    "knobs",
    [
        {"tee_tcb_svn2": OLD_MODULE},  # the newest module is not loaded yet
        {"tee_tcb_svn2": bytes([5, 1, 1]) + bytes(13)},  # late microcode below the latest level
        {"tee_tcb_svn2": bytes([4, 0, 2]) + bytes(13)},  # major 0: below latest tdx[0] = 5
        {"tee_tcb_svn2": bytes([5, 1, 2]) + bytes(13), "qe_isvsvn": 7},  # QE not UpToDate
        {"tee_tcb_svn2": bytes([5, 1, 2]) + bytes(13), "td15": False, "version": 4},  # TD 1.0
    ],
    ids=["module-not-latest", "microcode-old", "major-0-old", "qe-out-of-date", "td10"],
)
def test_td_relaunch_not_advised(shared: DcapVerifier, knobs: dict[str, Any]) -> None:
    assert status(shared, **_td15(**knobs)) == ("OutOfDate", ())


def test_td_relaunch_not_advised_when_platform_is_out_of_date(shared: DcapVerifier) -> None:
    """The TDX level OutOfDate on its own (TEE TCB SVN[2] old), module UpToDate: no relaunch."""
    knobs = _td15(
        tee_tcb_svn=bytes([5, 1, 1]) + bytes(13), tee_tcb_svn2=bytes([5, 1, 2]) + bytes(13)
    )
    assert status(shared, **knobs) == ("OutOfDate", ("INTEL-SA-01036",))
