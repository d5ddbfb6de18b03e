"""Hypothesis: truncated and mutated real inputs never make a parser (or the verifier) raise
anything but attestd's own errors, and never hang."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestd.collateral.intel import parse_enclave_identity, parse_tcb_info, signed_span
from attestd.collateral.source import BundleDirectory
from attestd.errors import AttestdError, CollateralMalformed, EvidenceError
from attestd.evidence.openenclave import parse_openenclave_report
from attestd.evidence.quote import parse_quote
from attestd.pki.certs import load_crl
from attestd.pki.sgx_extension import SGX_EXTENSION_OID, parse_pck_extension
from attestd.verify.dcap import DcapVerifier
from conftest import DCAP, MAA_OFFLINE
from property.mutations import mutated

SEEDS = [
    (DCAP / p).read_bytes()
    for p in (
        "phala-dcap-qvl/sgx_v3/quote.bin",
        "phala-dcap-qvl/tdx_v4/quote.bin",
        "go-tdx-guest/tdx_v5_sample_partial/quote.bin",
        "intel-qvl-sampledata/quote.dat",
    )
]
OE_SEED = (MAA_OFFLINE / "pysdk_b779_nondebug__2023-05/openenclave_report.bin").read_bytes()
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(mutated(SEEDS))
def test_quote_parser_only_raises_evidence_errors(data: bytes) -> None:
    try:
        q = parse_quote(data)
    except EvidenceError:
        return
    cert = q.qe.certification
    for extract in (cert.pem_chain, cert.ppid_info):
        try:
            extract()
        except EvidenceError:
            pass


@FUZZ
@given(st.binary(max_size=2048))
def test_quote_parser_on_random_bytes(data: bytes) -> None:
    try:
        parse_quote(data)
    except EvidenceError:
        pass


@FUZZ
@given(mutated([OE_SEED]))
def test_openenclave_parser(data: bytes) -> None:
    try:
        parse_openenclave_report(data)
    except EvidenceError:
        pass


_VERIFIER = DcapVerifier(collateral=BundleDirectory(DCAP / "phala-dcap-qvl/sgx_v3"))
_AT = datetime.fromtimestamp(
    json.loads((DCAP / "phala-dcap-qvl/sgx_v3/meta.json").read_text())["verification_time_unix"],
    UTC,
)


@FUZZ
@given(mutated(SEEDS[:1]))
def test_verifier_on_mutated_quotes(data: bytes) -> None:
    try:
        _VERIFIER.verify(data, at=_AT)
    except AttestdError:
        return
    assert data == SEEDS[0] or parse_quote(data).signed_data == parse_quote(SEEDS[0]).signed_data


def _extension() -> bytes:
    leaf = x509.load_pem_x509_certificates(
        (DCAP / "phala-dcap-qvl/tdx_v4/pck_chain.pem").read_bytes()
    )[0]
    value = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXTENSION_OID)).value
    assert isinstance(value, x509.UnrecognizedExtension)
    return value.value


@FUZZ
@given(mutated([_extension()]))
def test_pck_extension_parser(data: bytes) -> None:
    try:
        parse_pck_extension(data)
    except EvidenceError:
        pass


def _tcb_content() -> bytes:
    """The contents of the TCB SEQUENCE of a real PCK certificate's SGX extension."""
    from attestd.pki.sgx_extension import SGX_EXTENSION_OID_DER, _items

    value = _extension()
    _, start, end = _items(value, 4, len(value), "extension")[SGX_EXTENSION_OID_DER + b"\x02"][:3]
    return value[start:end]


@FUZZ
@given(mutated([_tcb_content()]))
def test_pck_tcb_fast_reader_is_a_subset_of_the_checked_one(content: bytes) -> None:
    """Whatever the one-pass reader of Intel's TCB layout accepts, the checked reader reads the
    same; it declines (None) everything else rather than guess."""
    from attestd.pki.sgx_extension import _tcb, _tcb_fast

    fast = _tcb_fast(content, 0, len(content))
    if fast is None:
        return
    assert _tcb(content, 0, len(content)) == fast


_JSON_SEEDS = [
    (DCAP / "phala-dcap-qvl/tdx_v4/tcb_info.json").read_bytes(),
    (DCAP / "teepot/out_of_date/tcb_info.json").read_bytes(),
    (DCAP / "phala-dcap-qvl/tdx_v4/qe_identity.json").read_bytes(),
]


@FUZZ
@given(mutated(_JSON_SEEDS))
def test_collateral_json_parsers(data: bytes) -> None:
    for parse in (parse_tcb_info, parse_enclave_identity):
        try:
            parse(data)
        except CollateralMalformed:
            pass


@FUZZ
@given(mutated([(DCAP / "phala-dcap-qvl/sgx_v3/pck_crl.der").read_bytes()]))
def test_crl_loader(data: bytes) -> None:
    try:
        load_crl(data, "pck_crl", CollateralMalformed)
    except CollateralMalformed:
        pass


_BUNDLE = DCAP / "phala-dcap-qvl/sgx_v3"
_FIELDS = [
    "pck_crl",
    "pck_crl_issuer_chain",
    "root_ca_crl",
    "tcb_info",
    "tcb_info_issuer_chain",
    "qe_identity",
    "qe_identity_issuer_chain",
]


@FUZZ
@given(st.sampled_from(_FIELDS), st.data())
def test_verifier_on_mutated_collateral(field: str, data: st.DataObject) -> None:
    from dataclasses import replace

    from attestd.collateral.source import DcapCollateral

    good = DcapCollateral.from_directory(_BUNDLE)
    piece = data.draw(mutated([getattr(good, field)]))
    try:
        _VERIFIER.verify(SEEDS[0], at=_AT, collateral=replace(good, **{field: piece}))
    except AttestdError:
        return
    # Accepted: only possible if the mutation left the signed content as it was.
    original = getattr(good, field)
    if field.endswith("chain"):
        same = [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(piece)]
        assert same == [
            c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(original)
        ]
    elif field.endswith("crl"):
        loaded = load_crl(piece, field, CollateralMalformed)
        assert loaded.public_bytes(Encoding.DER) == load_crl(
            original, field, CollateralMalformed
        ).public_bytes(Encoding.DER)
    else:
        key = "tcbInfo" if field == "tcb_info" else "enclaveIdentity"
        assert signed_span(piece, key, field) == signed_span(original, key, field)
