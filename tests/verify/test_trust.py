"""Trust decisions of the chain cache on byte-level edge cases found by fuzzing."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from attestd.collateral.source import BundleDirectory, DcapCollateral
from attestd.errors import AttestdError
from attestd.verify.dcap import DcapVerifier
from conftest import DCAP

FOLDER = DCAP / "phala-dcap-qvl/sgx_v3"
AT = datetime.fromtimestamp(
    json.loads((FOLDER / "meta.json").read_text())["verification_time_unix"], UTC
)
ECDSA_SHA256_OID = bytes.fromhex("06082a8648ce3d040302")


def _mutate_outer_signature_algorithm(pem_chain: bytes, index: int) -> bytes:
    """Change the unsigned outer signatureAlgorithm of certificate ``index`` (TBS and signature
    untouched): the bytes are no longer those of the certificate that was signed or configured."""
    blocks = pem_chain.split(b"-----END CERTIFICATE-----")
    head, body = blocks[index].split(b"-----BEGIN CERTIFICATE-----")
    der = base64.b64decode(b"".join(body.split()))
    at = der.rindex(ECDSA_SHA256_OID)
    der = der[:at] + bytes.fromhex("0608268648ce3d040302") + der[at + len(ECDSA_SHA256_OID) :]
    text = base64.encodebytes(der)
    blocks[index] = head + b"-----BEGIN CERTIFICATE-----\n" + text
    return b"-----END CERTIFICATE-----".join(blocks)


@pytest.mark.parametrize("index", [0, 1])
def test_issuer_chain_certificate_with_altered_outer_algorithm_is_rejected(index: int) -> None:
    good = DcapCollateral.from_directory(FOLDER)
    verifier = DcapVerifier(collateral=BundleDirectory(FOLDER))
    quote = (FOLDER / "quote.bin").read_bytes()
    verifier.verify(quote, at=AT, collateral=good)
    bad = replace(
        good,
        tcb_info_issuer_chain=_mutate_outer_signature_algorithm(good.tcb_info_issuer_chain, index),
    )
    for v in (verifier, DcapVerifier(collateral=BundleDirectory(FOLDER))):  # warm and cold
        with pytest.raises(AttestdError):
            v.verify(quote, at=AT, collateral=bad)


def test_pem_marker_inside_a_line_is_not_a_block() -> None:
    """Found by fuzzing: ``------BEGIN CERTIFICATE-----`` (one dash too many) is not a PEM
    boundary (RFC 7468), so the issuer chain is short a certificate and is rejected."""
    good = DcapCollateral.from_directory(FOLDER)
    bad = replace(good, pck_crl_issuer_chain=b"-" + good.pck_crl_issuer_chain)
    quote = (FOLDER / "quote.bin").read_bytes()
    with pytest.raises(AttestdError):
        DcapVerifier(collateral=BundleDirectory(FOLDER)).verify(quote, at=AT, collateral=bad)


def test_an_embedded_anchor_is_read_once_and_an_older_issuance_is_checked() -> None:
    """A root byte-identical to the configured anchor reuses the anchor's parsed certificate and
    key; an older issuance of the same root (as MAA-era quotes embed) is a different
    certificate, checked as self-signed and pinned by key."""
    from attestd.pki.certs import default_trust_anchors
    from attestd.verify.trust import TrustCache, _read_anchors
    from conftest import MAA_OFFLINE

    anchors = default_trust_anchors()
    (anchor,) = _read_anchors(anchors).values()
    current = TrustCache(anchors)._load_pem(
        (FOLDER / "pck_chain.pem").read_bytes(), "chain", AttestdError
    )
    assert current[-1] is anchor
    older_pem = next(MAA_OFFLINE.glob("*/pck_chain.pem")).read_bytes()
    cache = TrustCache(anchors)
    older = cache._load_pem(older_pem, "chain", AttestdError)
    assert older[-1] is not anchor and older[-1].der != anchor.der
    cache._anchored_root(older[-1], "chain", AttestdError)  # self-signed, anchor key: trusted
    assert older[-1].key is not None and older[-1].subject == anchor.subject
