"""TPM 2.0 quote verification: real quotes verify; every tampering is rejected with its own error.

Real data (tests/vectors/tpm, see PROVENANCE.md): the swtpm-replayed quotes (tpm2-tools 5.4 on
swtpm 0.7.1 over real boot-log PCRs), the swtpm-flow tpm2-tools and tpm2-pytss quotes, Keylime
7.14.3's checkquote test vector, and go-attestation's Windows GCE Shielded VM dump (SHA1 quote).

Minted data: for what no real TPM will sign (another magic, another type, ECDSA and RSAPSS
signatures), a fake AK — a TPMT_PUBLIC built here around a key generated here — signs modified
copies of a real TPMS_ATTEST.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from attestd.errors import (
    EvidenceError,
    InvalidQuoteSignature,
    MalformedEvidence,
    UnsupportedEvidence,
    VerificationError,
)
from attestd.evidence.tpm import (
    Public,
    Signature,
    TpmAlg,
    TpmSt,
    parse_attest,
    parse_pcr_blob,
    parse_public,
    parse_signature,
    parse_tpm2b_public,
)
from attestd.verify.tpm import (
    AttestNotQuote,
    AttestNotTpmGenerated,
    PcrDigestMismatch,
    QualifyingDataMismatch,
    VerifiedQuote,
    verify_quote,
)
from conftest import VECTORS

TPM = VECTORS / "tpm"
REPLAYED = sorted(p for p in (TPM / "swtpm-replayed").iterdir() if p.is_dir())
BANKS = {"sha1": TpmAlg.SHA1, "sha256": TpmAlg.SHA256}
WINDOWS = json.loads((TPM / "go-eventlog/legacydata/windows_gcp_shielded_vm.json").read_text())
KEYLIME = json.loads((TPM / "keylime/checkquote_vector.json").read_text())

PcrValues = Mapping[int, Mapping[int, bytes]]


# --- real vectors ---


def _nonce(d: Path) -> bytes:
    return bytes.fromhex((d / "nonce.hex").read_text().strip())


def _blob_values(d: Path) -> PcrValues:
    return parse_pcr_blob((d / "quote.pcrs").read_bytes()).values


def _json_values(d: Path) -> PcrValues:
    """tpm_pcrs.json (PCRs read back from the TPM); debian-10's sha256 bank is all zero."""
    read = json.loads((d / "tpm_pcrs.json").read_text())["pcrs"]
    out: dict[int, dict[int, bytes]] = {
        BANKS[b]: {int(i): bytes.fromhex(v) for i, v in vals.items()} for b, vals in read.items()
    }
    out.setdefault(TpmAlg.SHA256, {i: bytes(32) for i in out[TpmAlg.SHA1]})
    return out


def _replayed(d: Path) -> tuple[bytes, bytes, Public]:
    return (
        (d / "quote.msg").read_bytes(),
        (d / "quote.sig").read_bytes(),
        parse_tpm2b_public((d / "ak.tpm2b_public").read_bytes()),
    )


@pytest.mark.parametrize("source", ["quote.pcrs", "tpm_pcrs.json"])
@pytest.mark.parametrize("ak_form", ["ak.tpm2b_public", "ak.pem"])
@pytest.mark.parametrize("d", REPLAYED, ids=lambda p: p.name)
def test_replayed_quotes_verify(d: Path, ak_form: str, source: str) -> None:
    attest, sig, ak_public = _replayed(d)
    assert ak_public.name() == (d / "ak.name").read_bytes()
    ak = (
        ak_public
        if ak_form == "ak.tpm2b_public"
        else load_pem_public_key((d / "ak.pem").read_bytes())
    )
    assert isinstance(ak, Public | rsa.RSAPublicKey)
    values = _blob_values(d) if source == "quote.pcrs" else _json_values(d)
    vq = verify_quote(attest, sig, ak, pcr_values=values, qualifying_data=_nonce(d))
    assert isinstance(vq, VerifiedQuote)
    assert vq.hash_alg == TpmAlg.SHA256
    assert vq.attest.raw == attest
    assert list(vq.pcrs) == [TpmAlg.SHA256, TpmAlg.SHA1]
    expected = _json_values(d)
    for alg, bank in vq.pcrs.items():
        assert dict(bank) == {i: expected[alg][i] for i in bank}
        assert list(bank) == sorted(expected[TpmAlg.SHA1])


def test_keylime_checkquote_vector() -> None:
    ak = load_pem_public_key(KEYLIME["ak_pem"].encode())
    assert isinstance(ak, rsa.RSAPublicKey)
    quote = base64.b64decode(KEYLIME["quoteblob_b64"])
    sig = base64.b64decode(KEYLIME["sigblob_b64"])
    pcrblob = base64.b64decode(KEYLIME["pcrblob_b64"])
    values = parse_pcr_blob(pcrblob).values
    vq = verify_quote(quote, sig, ak, pcr_values=values, qualifying_data=KEYLIME["nonce"].encode())
    assert list(vq.pcrs[TpmAlg.SHA256]) == [16]
    # The vector's own note: flipping byte 5 of the quote or of the PCR blob must fail.
    flipped = bytearray(quote)
    flipped[5] ^= 1
    with pytest.raises(InvalidQuoteSignature):
        verify_quote(
            bytes(flipped), sig, ak, pcr_values=values, qualifying_data=b"Ai5M5SjYjnkyv4P7itH1"
        )
    flipped = bytearray(pcrblob)
    flipped[5] ^= 1
    with pytest.raises(EvidenceError):
        values = parse_pcr_blob(bytes(flipped)).values
        verify_quote(quote, sig, ak, pcr_values=values, qualifying_data=b"Ai5M5SjYjnkyv4P7itH1")


def test_swtpm_flow_tpm2_tools_quote() -> None:
    d = TPM / "swtpm-flow/tools"
    ak = load_pem_public_key((d / "ak.pem").read_bytes())
    assert isinstance(ak, rsa.RSAPublicKey)
    vq = verify_quote(
        (d / "quote.msg").read_bytes(),
        (d / "quote.sig").read_bytes(),
        ak,
        pcr_values=_blob_values(d),
        qualifying_data=_nonce(d),
    )
    assert list(vq.pcrs[TpmAlg.SHA256]) == [*range(8), 16, 23]


def test_swtpm_flow_pytss_quote() -> None:
    """pytss/pcrs.bin is the sha256 PCRs 0-7 and 16, concatenated."""
    d = TPM / "swtpm-flow/pytss"
    raw = (d / "pcrs.bin").read_bytes()
    values: dict[int, dict[int, bytes]] = {
        TpmAlg.SHA256: {pcr: raw[32 * n : 32 * n + 32] for n, pcr in enumerate([*range(8), 16])}
    }
    ak = load_pem_public_key((d / "ak.pem").read_bytes())
    assert isinstance(ak, rsa.RSAPublicKey)
    vq = verify_quote(
        (d / "quote.msg").read_bytes(),
        (d / "quote.sig").read_bytes(),
        ak,
        pcr_values=values,
        qualifying_data=_nonce(d),
    )
    assert dict(vq.pcrs[TpmAlg.SHA256]) == values[TpmAlg.SHA256]


def _windows_pcrs() -> dict[int, dict[int, bytes]]:
    # Go's crypto.SHA1 is 3: every PCR in the dump is from the SHA1 bank.
    assert {p["DigestAlg"] for p in WINDOWS["Log"]["PCRs"]} == {3}
    return {
        TpmAlg.SHA1: {p["Index"]: base64.b64decode(p["Digest"]) for p in WINDOWS["Log"]["PCRs"]}
    }


def test_windows_gce_shielded_vm_sha1_quote() -> None:
    ak = parse_public(base64.b64decode(WINDOWS["AK"]["Public"]))
    vq = verify_quote(
        base64.b64decode(WINDOWS["Quote"]["Quote"]),
        base64.b64decode(WINDOWS["Quote"]["Signature"]),
        ak,
        pcr_values=_windows_pcrs(),
        qualifying_data=b"",
    )
    assert vq.hash_alg == TpmAlg.SHA1
    assert list(vq.pcrs) == [TpmAlg.SHA1] and list(vq.pcrs[TpmAlg.SHA1]) == list(range(24))


def test_windows_ak_creation_attestation_is_not_a_quote() -> None:
    """A real type confusion: the AK's certified-creation TPMS_ATTEST carries a valid AK signature
    and TPM_GENERATED, but it is not a quote."""
    ak = parse_public(base64.b64decode(WINDOWS["AK"]["Public"]))
    with pytest.raises(AttestNotQuote):
        verify_quote(
            base64.b64decode(WINDOWS["AK"]["CreateAttestation"]),
            base64.b64decode(WINDOWS["AK"]["CreateSignature"]),
            ak,
            pcr_values=_windows_pcrs(),
            qualifying_data=b"",
        )


# --- negatives on real quotes ---

ARCH = TPM / "swtpm-replayed/arch-linux-workstation"


def _verify_arch(
    *,
    attest: bytes | None = None,
    sig: bytes | Signature | None = None,
    ak: Public | rsa.RSAPublicKey | ec.EllipticCurvePublicKey | None = None,
    values: PcrValues | None = None,
    nonce: bytes | None = None,
) -> VerifiedQuote:
    a, s, k = _replayed(ARCH)
    return verify_quote(
        a if attest is None else attest,
        s if sig is None else sig,
        k if ak is None else ak,
        pcr_values=_blob_values(ARCH) if values is None else values,
        qualifying_data=_nonce(ARCH) if nonce is None else nonce,
    )


def test_arch_baseline() -> None:
    _verify_arch()


@pytest.mark.parametrize(
    "nonce",
    [b"", bytes(20), b"\x01" + _nonce(ARCH)[1:], _nonce(ARCH)[:-1], _nonce(ARCH) + b"\x00"],
    ids=["empty", "zeros", "first-byte", "short", "long"],
)
def test_wrong_nonce(nonce: bytes) -> None:
    with pytest.raises(QualifyingDataMismatch):
        _verify_arch(nonce=nonce)


def test_every_flipped_pcr_value_is_a_digest_mismatch() -> None:
    values = _blob_values(ARCH)
    for alg, bank in values.items():
        for pcr in bank:
            tampered = {a: dict(b) for a, b in values.items()}
            v = bytearray(tampered[alg][pcr])
            v[-1] ^= 1
            tampered[alg][pcr] = bytes(v)
            with pytest.raises(PcrDigestMismatch) as e:
                _verify_arch(values=tampered)
            assert e.value.selection == "sha256:0,1,2,3,4,5,6,7,8 sha1:0,1,2,3,4,5,6,7,8"
            assert "sha256:0,1,2,3,4,5,6,7,8 sha1:0,1,2,3,4,5,6,7,8" in e.value.message


def test_swapped_banks_do_not_verify() -> None:
    """The digest covers the banks in selection order: sha1 values under sha256 fail."""
    values = _blob_values(ARCH)
    with pytest.raises(VerificationError):
        _verify_arch(
            values={TpmAlg.SHA256: values[TpmAlg.SHA1], TpmAlg.SHA1: values[TpmAlg.SHA256]}
        )


def test_missing_or_wrong_size_pcr_value() -> None:
    values = {a: dict(b) for a, b in _blob_values(ARCH).items()}
    del values[TpmAlg.SHA1][8]
    with pytest.raises(VerificationError, match="sha1 PCR 8"):
        _verify_arch(values=values)
    with pytest.raises(VerificationError, match="sha256 PCR"):
        _verify_arch(values={TpmAlg.SHA1: _blob_values(ARCH)[TpmAlg.SHA1]})
    values = {a: dict(b) for a, b in _blob_values(ARCH).items()}
    values[TpmAlg.SHA256][3] += b"\x00"
    with pytest.raises(VerificationError, match="33 bytes"):
        _verify_arch(values=values)


def test_extra_pcr_values_are_not_returned() -> None:
    values = {a: dict(b) for a, b in _blob_values(ARCH).items()}
    values[TpmAlg.SHA256][23] = b"\x01" * 32
    values[TpmAlg.SHA384] = {0: bytes(48)}
    vq = _verify_arch(values=values)
    assert 23 not in vq.pcrs[TpmAlg.SHA256] and TpmAlg.SHA384 not in vq.pcrs


def test_every_flipped_signature_value_byte() -> None:
    sig = (ARCH / "quote.sig").read_bytes()
    for i in range(6, len(sig)):  # 0014 000b 0100 | 256 signature bytes
        flipped = bytearray(sig)
        flipped[i] ^= 0x80
        with pytest.raises(InvalidQuoteSignature):
            _verify_arch(sig=bytes(flipped))


@pytest.mark.parametrize(
    ("header", "error"),
    [
        ("0016000b0100", InvalidQuoteSignature),  # RSAPSS: the AK's scheme is RSASSA
        ("001400040100", InvalidQuoteSignature),  # sha1: the AK's scheme hash is sha256
        ("0014000b00ff", MalformedEvidence),  # size 255, 256 bytes follow
        ("0018000b0100", MalformedEvidence),  # ECDSA: r size 256 > MAX_ECC_KEY_BYTES
    ],
)
def test_tampered_signature_header(header: str, error: type[Exception]) -> None:
    sig = (ARCH / "quote.sig").read_bytes()
    with pytest.raises(error):
        _verify_arch(sig=bytes.fromhex(header) + sig[6:])


def test_wrong_ak() -> None:
    for other in REPLAYED[1:]:
        _, _, ak = _replayed(other)
        with pytest.raises(InvalidQuoteSignature):
            _verify_arch(ak=ak)
        with pytest.raises(InvalidQuoteSignature):
            _verify_arch(ak=ak.public_key())
    windows_ak = parse_public(base64.b64decode(WINDOWS["AK"]["Public"]))
    with pytest.raises(InvalidQuoteSignature):  # and its scheme (RSASSA/SHA1) does not match
        _verify_arch(ak=windows_ak)


def test_quote_of_one_machine_with_pcrs_of_another() -> None:
    with pytest.raises(PcrDigestMismatch):
        _verify_arch(values=_blob_values(TPM / "swtpm-replayed/ubuntu-2104-no-dbx"))


@pytest.mark.parametrize("d", REPLAYED, ids=lambda p: p.name)
def test_every_single_byte_flip_of_a_real_attest_is_rejected(d: Path) -> None:
    attest, sig, ak = _replayed(d)
    values, nonce = _blob_values(d), _nonce(d)
    masks = (0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xFF)
    for i in range(len(attest)):
        for mask in masks if d == ARCH else (0xFF,):
            flipped = bytearray(attest)
            flipped[i] ^= mask
            with pytest.raises(EvidenceError):
                verify_quote(bytes(flipped), sig, ak, pcr_values=values, qualifying_data=nonce)
    for n in range(len(attest)):
        with pytest.raises(EvidenceError):
            verify_quote(attest[:n], sig, ak, pcr_values=values, qualifying_data=nonce)


# --- minted: a fake AK signs modified copies of a real TPMS_ATTEST ---

RESTRICTED_SIGNING = (
    0x00050072  # fixedTPM fixedParent sensitiveDataOrigin userWithAuth restricted sign
)


@cache
def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def _ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def fake_rsa_ak(
    key: rsa.RSAPrivateKey,
    *,
    scheme: int = TpmAlg.RSASSA,
    hash_alg: int = TpmAlg.SHA256,
    attributes: int = RESTRICTED_SIGNING,
) -> bytes:
    """A TPMT_PUBLIC (§12.2.4) for ``key``, like tpm2_createak -G rsa -s <scheme> -g <hash>."""
    n = key.public_key().public_numbers().n.to_bytes(key.key_size // 8, "big")
    scheme_bytes = struct.pack(">H", scheme) + (
        b"" if scheme == TpmAlg.NULL else struct.pack(">H", hash_alg)
    )
    return (
        struct.pack(">HHI", TpmAlg.RSA, TpmAlg.SHA256, attributes)
        + b"\x00\x00"  # authPolicy: empty
        + struct.pack(">H", TpmAlg.NULL)  # symmetric
        + scheme_bytes
        + struct.pack(">HI", key.key_size, 0)  # keyBits, exponent 0 = 65537
        + struct.pack(">H", len(n))
        + n
    )


def fake_ecc_ak(key: ec.EllipticCurvePrivateKey) -> bytes:
    n = key.public_key().public_numbers()
    return (
        struct.pack(">HHI", TpmAlg.ECC, TpmAlg.SHA256, RESTRICTED_SIGNING)
        + b"\x00\x00"
        + struct.pack(">HHHHH", TpmAlg.NULL, TpmAlg.ECDSA, TpmAlg.SHA256, 0x0003, TpmAlg.NULL)
        + struct.pack(">H", 32)
        + n.x.to_bytes(32, "big")
        + struct.pack(">H", 32)
        + n.y.to_bytes(32, "big")
    )


_HASHES: dict[int, Callable[[], hashes.HashAlgorithm]] = {
    TpmAlg.SHA1: hashes.SHA1,
    TpmAlg.SHA256: hashes.SHA256,
    TpmAlg.SHA384: hashes.SHA384,
}


def rsassa(key: rsa.RSAPrivateKey, data: bytes, hash_alg: int = TpmAlg.SHA256) -> bytes:
    sig = key.sign(data, padding.PKCS1v15(), _HASHES[hash_alg]())
    return struct.pack(">HHH", TpmAlg.RSASSA, hash_alg, len(sig)) + sig


def rsapss(key: rsa.RSAPrivateKey, data: bytes, salt: int) -> bytes:
    h = hashes.SHA256()
    sig = key.sign(data, padding.PSS(mgf=padding.MGF1(h), salt_length=salt), h)
    return struct.pack(">HHH", TpmAlg.RSAPSS, TpmAlg.SHA256, len(sig)) + sig


def ecdsa(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    rb, sb = r.to_bytes(32, "big"), s.to_bytes(32, "big")
    return (
        struct.pack(">HH", TpmAlg.ECDSA, TpmAlg.SHA256)
        + struct.pack(">H", 32)
        + rb
        + struct.pack(">H", 32)
        + sb
    )


def _arch_attest() -> bytes:
    return (ARCH / "quote.msg").read_bytes()


def _patch(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


def test_fake_ak_baseline() -> None:
    key = _rsa_key()
    ak = parse_public(fake_rsa_ak(key))
    _verify_arch(sig=rsassa(key, _arch_attest()), ak=ak)
    _verify_arch(sig=rsassa(key, _arch_attest()), ak=key.public_key())


@pytest.mark.parametrize("magic", [b"\x00\x00\x00\x00", b"\xff\x54\x43\x46", b"\x47\x43\x54\xff"])
def test_wrong_magic(magic: bytes) -> None:
    key = _rsa_key()
    attest = _patch(_arch_attest(), 0, magic)
    with pytest.raises(AttestNotTpmGenerated):
        _verify_arch(attest=attest, sig=rsassa(key, attest), ak=parse_public(fake_rsa_ak(key)))


@pytest.mark.parametrize(
    "tag", [TpmSt.ATTEST_CERTIFY, TpmSt.ATTEST_CREATION, TpmSt.ATTEST_TIME, 0x1234, 0x0000]
)
def test_wrong_type(tag: int) -> None:
    key = _rsa_key()
    attest = _patch(_arch_attest(), 4, struct.pack(">H", tag))
    with pytest.raises(AttestNotQuote):
        _verify_arch(attest=attest, sig=rsassa(key, attest), ak=parse_public(fake_rsa_ak(key)))


def test_signed_but_malformed_attest() -> None:
    key = _rsa_key()
    for attest in (
        _arch_attest() + b"\x00",
        _arch_attest()[:-1],
        _patch(_arch_attest(), 0x50, b"\x07"),
    ):
        with pytest.raises(MalformedEvidence):
            _verify_arch(attest=attest, sig=rsassa(key, attest), ak=key.public_key())


def test_signed_attest_with_another_pcr_digest() -> None:
    key = _rsa_key()
    attest = _patch(_arch_attest(), 0x6B, bytes(32))
    with pytest.raises(PcrDigestMismatch):
        _verify_arch(attest=attest, sig=rsassa(key, attest), ak=key.public_key())


def test_ak_must_be_a_restricted_signing_key() -> None:
    key = _rsa_key()
    sig = rsassa(key, _arch_attest())
    for attributes in (0x00040072, 0x00010072, 0x00060072 & ~0x00040000):  # no restricted / no sign
        ak = parse_public(fake_rsa_ak(key, attributes=attributes))
        with pytest.raises(VerificationError, match="restricted signing key"):
            _verify_arch(sig=sig, ak=ak)


@pytest.mark.parametrize("salt", ["digest", "max"])
def test_rsapss(salt: str) -> None:
    """TPMs use salt = digest length (current reference code) or the maximum (older code)."""
    key = _rsa_key()
    length = 32 if salt == "digest" else 256 - 32 - 2
    ak = parse_public(fake_rsa_ak(key, scheme=TpmAlg.RSAPSS))
    _verify_arch(sig=rsapss(key, _arch_attest(), length), ak=ak)
    _verify_arch(sig=rsapss(key, _arch_attest(), length), ak=key.public_key())


@pytest.mark.parametrize("salt", [0, 20, 64])
def test_rsapss_other_salt_lengths_are_rejected(salt: int) -> None:
    key = _rsa_key()
    with pytest.raises(InvalidQuoteSignature):
        _verify_arch(sig=rsapss(key, _arch_attest(), salt), ak=key.public_key())


def test_ecdsa() -> None:
    key = _ec_key()
    ak = parse_public(fake_ecc_ak(key))
    vq = _verify_arch(sig=ecdsa(key, _arch_attest()), ak=ak)
    assert vq.signature.sig_alg == TpmAlg.ECDSA
    _verify_arch(sig=ecdsa(key, _arch_attest()), ak=key.public_key())
    wrong = bytearray(ecdsa(key, _arch_attest()))
    wrong[10] ^= 1
    with pytest.raises(InvalidQuoteSignature):
        _verify_arch(sig=bytes(wrong), ak=ak)


def test_scheme_and_key_type_mismatches() -> None:
    rkey, ekey = _rsa_key(), _ec_key()
    with pytest.raises(InvalidQuoteSignature, match="not an ECC key"):
        _verify_arch(sig=ecdsa(ekey, _arch_attest()), ak=rkey.public_key())
    with pytest.raises(InvalidQuoteSignature, match="not an RSA key"):
        _verify_arch(sig=rsassa(rkey, _arch_attest()), ak=ekey.public_key())
    with pytest.raises(InvalidQuoteSignature, match="AK's scheme"):
        _verify_arch(
            sig=rsassa(rkey, _arch_attest(), TpmAlg.SHA1), ak=parse_public(fake_rsa_ak(rkey))
        )
    # An AK without a fixed scheme (NULL) accepts any scheme its key can verify.
    ak = parse_public(fake_rsa_ak(rkey, scheme=TpmAlg.NULL))
    _verify_arch(sig=rsassa(rkey, _arch_attest()), ak=ak)


def test_signature_hash_decides_the_pcr_digest_hash() -> None:
    """Signed with SHA-384, the quote's SHA-256 pcrDigest no longer matches (wrong length)."""
    key = _rsa_key()
    with pytest.raises(PcrDigestMismatch):
        _verify_arch(sig=rsassa(key, _arch_attest(), TpmAlg.SHA384), ak=key.public_key())


def test_unsupported_signature_schemes() -> None:
    key = _rsa_key()
    for sig in (
        b"\x00\x10",
        bytes.fromhex("0005000b") + bytes(32),
        bytes.fromhex("001a000b00010100010a"),
    ):
        with pytest.raises(UnsupportedEvidence):
            _verify_arch(sig=sig, ak=key.public_key())


def test_parsed_signature_is_accepted() -> None:
    _verify_arch(sig=parse_signature((ARCH / "quote.sig").read_bytes()))


def test_verified_quote_is_immutable() -> None:
    vq = _verify_arch()
    with pytest.raises(TypeError):
        vq.pcrs[TpmAlg.SHA1][0] = b"x"  # type: ignore[index]
    with pytest.raises(AttributeError):
        vq.hash_alg = 0  # type: ignore[misc]
    assert parse_attest(_arch_attest()) == vq.attest
