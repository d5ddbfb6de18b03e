"""Hypothesis: mutated real TPM structures never make a TPM parser, or the quote verifier, raise
anything but attestd's own errors; and a mutated quote never verifies with the real signature.

Seeds are the real structures in tests/vectors/tpm (swtpm-replayed, swtpm-flow, Keylime, the
Windows GCE dump). A second verifier test re-signs every mutant with a fake AK, so that the
mutated bytes get past the signature and reach the parser and the judgement steps.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestd.errors import AttestdError, EvidenceError
from attestd.evidence.tpm import (
    Public,
    TpmAlg,
    parse_attest,
    parse_attest_header,
    parse_certify,
    parse_pcr_blob,
    parse_pcr_selection,
    parse_public,
    parse_signature,
    parse_tpm2b_public,
)
from attestd.verify.tpm import verify_quote
from conftest import VECTORS
from property.mutations import mutated

TPM = VECTORS / "tpm"
REPLAYED = sorted(p for p in (TPM / "swtpm-replayed").iterdir() if p.is_dir())
_WINDOWS = json.loads((TPM / "go-eventlog/legacydata/windows_gcp_shielded_vm.json").read_text())
_KEYLIME = json.loads((TPM / "keylime/checkquote_vector.json").read_text())

ATTESTS = [
    *((d / "quote.msg").read_bytes() for d in REPLAYED),
    (TPM / "swtpm-flow/tools/quote.msg").read_bytes(),
    (TPM / "swtpm-flow/pytss/quote.msg").read_bytes(),
    base64.b64decode(_KEYLIME["quoteblob_b64"]),
    base64.b64decode(_WINDOWS["Quote"]["Quote"]),
    base64.b64decode(_WINDOWS["AK"]["CreateAttestation"]),
]


def _as_certification(quote: bytes) -> bytes:
    """A TPM2_Certify TPMS_ATTEST with a real quote's header (type 0x8017) and two TPM2B_NAMEs
    (sha256 Names): a seed of the right shape, since no vector holds a certification."""
    header_end = len(quote) - len(parse_attest(quote).attested.pcr_digest) - 2
    header_end -= sum(6 for _ in parse_attest(quote).attested.pcr_select) + 4
    name = b"\x00\x22\x00\x0b" + bytes(range(32))
    return quote[:4] + b"\x80\x17" + quote[6:header_end] + name + name


CERTIFICATIONS = [_as_certification(a) for a in ATTESTS[:3]]
SIGNATURES = [
    *((d / "quote.sig").read_bytes() for d in REPLAYED),
    base64.b64decode(_WINDOWS["Quote"]["Signature"]),
    bytes.fromhex("0018000b0002abcd0003010203"),  # ECDSA (no real ECC quote exists in the vectors)
]
TPM2B_PUBLICS = [(d / "ak.tpm2b_public").read_bytes() for d in REPLAYED]
PUBLICS = [base64.b64decode(_WINDOWS["AK"]["Public"]), *(p[2:] for p in TPM2B_PUBLICS)]
PCR_BLOBS = [
    *((d / "quote.pcrs").read_bytes() for d in REPLAYED),
    (TPM / "swtpm-flow/tools/quote.pcrs").read_bytes(),
    base64.b64decode(_KEYLIME["pcrblob_b64"]),
]
SELECTIONS = [a[0x59:0x69] for a in ATTESTS[:4]]  # the TPML_PCR_SELECTION of the swtpm quotes

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _only_evidence_errors(parse: Callable[[bytes], object], data: bytes) -> object:
    try:
        return parse(data)
    except EvidenceError:
        return None


@FUZZ
@given(mutated(ATTESTS))
def test_attest_parsers(data: bytes) -> None:
    _only_evidence_errors(parse_attest_header, data)
    a = _only_evidence_errors(parse_attest, data)
    if a is not None:
        _only_evidence_errors(parse_attest, data + b"\x00")  # never accepts trailing bytes


@FUZZ
@given(mutated(CERTIFICATIONS))
def test_certify_parser(data: bytes) -> None:
    c = _only_evidence_errors(parse_certify, data)
    if c is not None:
        assert _only_evidence_errors(parse_certify, data + b"\x00") is None


def test_certification_seeds_parse() -> None:
    for seed in CERTIFICATIONS:
        assert parse_certify(seed).attested.name == b"\x00\x0b" + bytes(range(32))


@FUZZ
@given(mutated(SIGNATURES))
def test_signature_parser(data: bytes) -> None:
    _only_evidence_errors(parse_signature, data)


@FUZZ
@given(mutated(PUBLICS + TPM2B_PUBLICS))
def test_public_parsers_and_key_extraction(data: bytes) -> None:
    for parse in (parse_public, parse_tpm2b_public):
        p = _only_evidence_errors(parse, data)
        if isinstance(p, Public):
            for extract in (p.name, p.public_key):
                try:
                    extract()
                except EvidenceError:
                    pass


@FUZZ
@given(mutated(PCR_BLOBS + SELECTIONS))
def test_pcr_parsers(data: bytes) -> None:
    _only_evidence_errors(parse_pcr_blob, data)
    _only_evidence_errors(parse_pcr_selection, data)


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    for parse in (
        parse_attest,
        parse_certify,
        parse_signature,
        parse_public,
        parse_tpm2b_public,
        parse_pcr_blob,
        parse_pcr_selection,
    ):
        _only_evidence_errors(parse, data)


_ARCH = TPM / "swtpm-replayed/arch-linux-workstation"
_ATTEST = (_ARCH / "quote.msg").read_bytes()
_SIG = (_ARCH / "quote.sig").read_bytes()
_AK = parse_tpm2b_public((_ARCH / "ak.tpm2b_public").read_bytes())
_PCRS = parse_pcr_blob((_ARCH / "quote.pcrs").read_bytes()).values
_NONCE = bytes.fromhex((_ARCH / "nonce.hex").read_text().strip())


@FUZZ
@given(mutated([_ATTEST]), mutated([_SIG]))
def test_verifier_rejects_mutants_with_the_real_signature(attest: bytes, sig: bytes) -> None:
    try:
        verify_quote(attest, sig, _AK, pcr_values=_PCRS, qualifying_data=_NONCE)
    except AttestdError:
        return
    assert attest == _ATTEST and sig == _SIG


_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_MODULUS = _KEY.public_key().public_numbers().n.to_bytes(256, "big")
# TPMT_PUBLIC: RSA, nameAlg sha256, restricted signing, no policy, symmetric NULL, RSASSA/sha256,
# 2048 bits, exponent 0 (= 65537), then the modulus.
_FAKE_AK = parse_public(
    struct.pack(">HHIH", TpmAlg.RSA, TpmAlg.SHA256, 0x00050072, 0)
    + struct.pack(">HHHHI", TpmAlg.NULL, TpmAlg.RSASSA, TpmAlg.SHA256, 2048, 0)
    + struct.pack(">H", 256)
    + _MODULUS
)


def _resign(data: bytes) -> bytes:
    sig = _KEY.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return struct.pack(">HHH", TpmAlg.RSASSA, TpmAlg.SHA256, len(sig)) + sig


@FUZZ
@given(mutated([_ATTEST]))
def test_verifier_on_signed_mutants(attest: bytes) -> None:
    """Signed by the (fake) AK, a mutant reaches the parser and every judgement step."""
    try:
        vq = verify_quote(
            attest, _resign(attest), _FAKE_AK, pcr_values=_PCRS, qualifying_data=_NONCE
        )
    except AttestdError:
        return
    # It verified: then what it says is what the real quote says, where it matters.
    real = parse_attest(_ATTEST)
    assert vq.attest.extra_data == _NONCE
    assert vq.attest.attested == real.attested
