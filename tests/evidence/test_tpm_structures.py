"""TPM 2.0 structure parsers against real TPM output, and hostile / truncated inputs.

Real data (tests/vectors/tpm, see PROVENANCE.md):
* swtpm-replayed/<log>/: swtpm 0.7.1 (libtpms, TPM 2.0 rev 1.64) quotes over real boot-log PCRs,
  written by tpm2-tools 5.4 (quote.msg = TPMS_ATTEST, quote.sig = TPMT_SIGNATURE,
  ak.tpm2b_public = TPM2B_PUBLIC, ak.name, quote.pcrs = tpm2-tools PCR blob, tpm_pcrs.json = PCRs
  read back from the TPM).
* swtpm-flow/tools, swtpm-flow/pytss: tpm2-tools and tpm2-pytss quotes on a fresh swtpm.
* keylime/checkquote_vector.json: Keylime 7.14.3's test quote.
* go-eventlog/legacydata/windows_gcp_shielded_vm.json: a Windows GCE Shielded VM (real vTPM):
  AK TPMT_PUBLIC, SHA1 quote over 24 PCRs, the AK's creation attestation.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from attestd.errors import MalformedEvidence, UnsupportedEvidence
from attestd.evidence.tpm import (
    TPM_GENERATED_VALUE,
    EccCurve,
    EccParms,
    EccPoint,
    ObjectAttribute,
    PcrSelection,
    RsaParms,
    TpmAlg,
    TpmSt,
    parse_attest,
    parse_attest_header,
    parse_pcr_blob,
    parse_pcr_selection,
    parse_public,
    parse_signature,
    parse_tpm2b_public,
)
from conftest import VECTORS

TPM = VECTORS / "tpm"
REPLAYED = sorted(p for p in (TPM / "swtpm-replayed").iterdir() if p.is_dir())
BANKS = {"sha1": TpmAlg.SHA1, "sha256": TpmAlg.SHA256}
WINDOWS = json.loads((TPM / "go-eventlog/legacydata/windows_gcp_shielded_vm.json").read_text())
KEYLIME = json.loads((TPM / "keylime/checkquote_vector.json").read_text())


def _yaml_value(path: Path, key: str) -> str:
    """A top-level scalar of tpm2-tools' quote.yaml (``quoted: ...``, ``calcDigest: ...``)."""
    for line in path.read_text().splitlines():
        if line.strip().startswith(f"{key}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{key} not in {path}")


def test_vectors_present() -> None:
    assert [p.name for p in REPLAYED] == [
        "arch-linux-workstation",
        "debian-10",
        "rhel8-uefi",
        "ubuntu-2104-no-dbx",
    ]


# --- TPMS_ATTEST ---


@pytest.mark.parametrize("d", REPLAYED, ids=lambda p: p.name)
def test_replayed_attest(d: Path) -> None:
    raw = (d / "quote.msg").read_bytes()
    a = parse_attest(raw)
    assert raw.hex() == _yaml_value(d / "quote.yaml", "quoted")
    assert a.magic == TPM_GENERATED_VALUE
    assert a.type == TpmSt.ATTEST_QUOTE
    assert a.raw == raw
    assert a.extra_data == bytes.fromhex((d / "nonce.hex").read_text().strip())
    assert a.qualified_signer[:2] == b"\x00\x0b" and len(a.qualified_signer) == 34
    assert a.clock_info.safe is True
    assert a.firmware_version == 0x2019102300163636  # libtpms' firmware version
    assert a.attested.pcr_digest.hex() == _yaml_value(d / "quote.yaml", "calcDigest")
    # tpm2_quote -l sha256:P+sha1:P: both banks, same PCRs, in that order.
    sha256, sha1 = a.attested.pcr_select
    assert (sha256.hash_alg, sha1.hash_alg) == (TpmAlg.SHA256, TpmAlg.SHA1)
    expected = tuple(
        sorted(int(i) for i in json.loads((d / "tpm_pcrs.json").read_text())["pcrs"]["sha1"])
    )
    assert sha256.pcrs == sha1.pcrs == expected
    header = parse_attest_header(raw)
    assert (header.extra_data, header.clock_info) == (a.extra_data, a.clock_info)


def test_attest_field_offsets_arch() -> None:
    """Annotated: the first bytes of the arch-linux quote."""
    a = parse_attest((TPM / "swtpm-replayed/arch-linux-workstation/quote.msg").read_bytes())
    # ff544347 magic | 8018 type | 0022 000b 2820f7ef... qualifiedSigner | 0014 d8b59992... extraData
    # 0000000000009070 clock | 0000000d resetCount | 00000000 restartCount | 01 safe
    # 2019102300163636 firmwareVersion | 00000002 count | 000b 03 ff0100 | 0004 03 ff0100 | 0020 ...
    assert a.clock_info.clock == 0x9070
    assert a.clock_info.reset_count == 13
    assert a.clock_info.restart_count == 0
    sel = a.attested.pcr_select[0]
    assert sel.select == b"\xff\x01\x00"
    assert sel.pcrs == tuple(range(9))
    assert sel.describe() == "sha256:0,1,2,3,4,5,6,7,8"


def test_keylime_attest() -> None:
    a = parse_attest(base64.b64decode(KEYLIME["quoteblob_b64"]))
    assert a.extra_data == KEYLIME["nonce"].encode()
    assert [s.describe() for s in a.attested.pcr_select] == ["sha256:16"]


@pytest.mark.parametrize(
    ("flow", "pcrs"),
    [("tools", (*range(8), 16, 23)), ("pytss", (*range(8), 16))],
)
def test_swtpm_flow_attest(flow: str, pcrs: tuple[int, ...]) -> None:
    d = TPM / "swtpm-flow" / flow
    a = parse_attest((d / "quote.msg").read_bytes())
    assert a.extra_data == bytes.fromhex((d / "nonce.hex").read_text().strip())
    (sel,) = a.attested.pcr_select
    assert (sel.hash_alg, sel.pcrs) == (TpmAlg.SHA256, pcrs)


def test_windows_quote() -> None:
    a = parse_attest(base64.b64decode(WINDOWS["Quote"]["Quote"]))
    assert a.magic == TPM_GENERATED_VALUE and a.type == TpmSt.ATTEST_QUOTE
    assert a.extra_data == b""  # go-attestation's dump: empty nonce
    (sel,) = a.attested.pcr_select
    assert (sel.hash_alg, sel.select, sel.pcrs) == (TpmAlg.SHA1, b"\xff\xff\xff", tuple(range(24)))
    assert len(a.attested.pcr_digest) == 20


def test_other_attestation_types_are_unsupported_after_the_header() -> None:
    """The Windows AK's own creation attestation (TPM_ST_ATTEST_CREATION), a real TPMS_ATTEST."""
    raw = base64.b64decode(WINDOWS["AK"]["CreateAttestation"])
    header = parse_attest_header(raw)
    assert header.magic == TPM_GENERATED_VALUE
    assert header.type == TpmSt.ATTEST_CREATION
    with pytest.raises(UnsupportedEvidence, match="ATTEST_CREATION"):
        parse_attest(raw)


def _arch_attest() -> bytes:
    return (TPM / "swtpm-replayed/arch-linux-workstation/quote.msg").read_bytes()


def _patch(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


# (description, mutation of the arch-linux TPMS_ATTEST, field, offset)
ATTEST_CASES = [
    ("empty", lambda d: b"", "magic", 0),
    ("magic cut", lambda d: d[:3], "magic", 0),
    ("type cut", lambda d: d[:5], "type", 4),
    ("qualifiedSigner.size 0xffff", lambda d: _patch(d, 6, b"\xff\xff"), "qualifiedSigner.size", 6),
    (
        "qualifiedSigner.size 67 > sizeof(TPMU_NAME)",
        lambda d: _patch(d, 6, b"\x00\x43"),
        "qualifiedSigner.size",
        6,
    ),
    ("qualifiedSigner cut", lambda d: d[:20], "qualifiedSigner.buffer", 8),
    (
        "extraData.size 67 > sizeof(TPMT_HA)",
        lambda d: _patch(d, 0x2A, b"\x00\x43"),
        "extraData.size",
        0x2A,
    ),
    ("extraData cut", lambda d: d[:50], "extraData.buffer", 0x2C),
    ("clock cut", lambda d: d[:0x45], "clockInfo.clock", 0x40),
    ("safe = 2", lambda d: _patch(d, 0x50, b"\x02"), "clockInfo.safe", 0x50),
    ("unknown type tag", lambda d: _patch(d, 4, b"\x12\x34"), "type", 4),
    (
        "pcrSelect.count 0xffffffff",
        lambda d: _patch(d, 0x59, b"\xff\xff\xff\xff"),
        "attested.quote.pcrSelect.count",
        0x59,
    ),
    (
        "pcrSelect.count 17",
        lambda d: _patch(d, 0x59, b"\x00\x00\x00\x11"),
        "attested.quote.pcrSelect.count",
        0x59,
    ),
    (
        "hash not a hash (RSA)",
        lambda d: _patch(d, 0x5D, b"\x00\x01"),
        "attested.quote.pcrSelect.pcrSelections[0].hash",
        0x5D,
    ),
    (
        "sizeofSelect 5",
        lambda d: _patch(d, 0x5F, b"\x05"),
        "attested.quote.pcrSelect.pcrSelections[0].sizeofSelect",
        0x5F,
    ),
    (
        "pcrDigest.size 65",
        lambda d: _patch(d, 0x69, b"\x00\x41"),
        "attested.quote.pcrDigest.size",
        0x69,
    ),
    ("pcrDigest cut", lambda d: d[:-1], "attested.quote.pcrDigest.buffer", 0x6B),
    ("trailing byte", lambda d: d + b"\x00", "trailing", 139),
]


@pytest.mark.parametrize(
    ("mutate", "field", "offset"), [c[1:] for c in ATTEST_CASES], ids=[c[0] for c in ATTEST_CASES]
)
def test_attest_malformed(mutate: object, field: str, offset: int) -> None:
    assert callable(mutate)
    with pytest.raises(MalformedEvidence) as e:
        parse_attest(mutate(_arch_attest()))
    assert (e.value.structure, e.value.field, e.value.offset) == ("TPMS_ATTEST", field, offset)


def _every_prefix_is_malformed(parse: object, data: bytes, structure: str) -> None:
    assert callable(parse)
    for n in range(len(data)):
        with pytest.raises(MalformedEvidence) as e:
            parse(data[:n])
        assert e.value.structure == structure
        assert e.value.field
        assert 0 <= e.value.offset <= n, (n, e.value)
        assert str(e.value).startswith(f"{structure}.{e.value.field} at offset {e.value.offset}:")
    with pytest.raises(MalformedEvidence) as e:
        parse(data + b"\x00")
    assert (e.value.field, e.value.offset) == ("trailing", len(data))


def test_every_truncation_of_every_real_structure() -> None:
    for d in REPLAYED:
        _every_prefix_is_malformed(parse_attest, (d / "quote.msg").read_bytes(), "TPMS_ATTEST")
        _every_prefix_is_malformed(
            parse_signature, (d / "quote.sig").read_bytes(), "TPMT_SIGNATURE"
        )
        _every_prefix_is_malformed(
            parse_tpm2b_public, (d / "ak.tpm2b_public").read_bytes(), "TPM2B_PUBLIC"
        )
    _every_prefix_is_malformed(
        parse_public, base64.b64decode(WINDOWS["AK"]["Public"]), "TPMT_PUBLIC"
    )
    _every_prefix_is_malformed(
        parse_attest, base64.b64decode(WINDOWS["Quote"]["Quote"]), "TPMS_ATTEST"
    )
    _every_prefix_is_malformed(
        parse_signature, base64.b64decode(WINDOWS["Quote"]["Signature"]), "TPMT_SIGNATURE"
    )
    _every_prefix_is_malformed(
        parse_pcr_blob, (TPM / "swtpm-flow/tools/quote.pcrs").read_bytes(), "tpm2-tools PCR blob"
    )


def test_tpm2b_public_truncated_inside_public_area_names_the_inner_structure() -> None:
    data = (REPLAYED[0] / "ak.tpm2b_public").read_bytes()
    # size says 0x118 but only the first 10 bytes of the TPMT_PUBLIC follow
    with pytest.raises(MalformedEvidence) as e:
        parse_tpm2b_public(data[:12])
    assert (e.value.structure, e.value.field, e.value.offset) == ("TPM2B_PUBLIC", "publicArea", 2)
    # size one short: the inner TPMT_PUBLIC runs out inside unique.rsa
    short = (len(data) - 3).to_bytes(2, "big") + data[2:]
    with pytest.raises(MalformedEvidence) as e:
        parse_tpm2b_public(short)
    assert (e.value.structure, e.value.field) == ("TPMT_PUBLIC", "unique.rsa.buffer")
    # size one long: a TPMT_PUBLIC with a trailing byte inside the TPM2B
    long = (len(data) - 1).to_bytes(2, "big") + data[2:] + b"\x00"
    with pytest.raises(MalformedEvidence) as e:
        parse_tpm2b_public(long)
    assert (e.value.structure, e.value.field, e.value.offset) == (
        "TPMT_PUBLIC",
        "trailing",
        len(data),
    )


# --- PCR selection ---


@pytest.mark.parametrize(
    ("bitmap", "pcrs"),
    [
        (b"", ()),
        (b"\x00\x00\x00", ()),
        (b"\xff\x01\x00", tuple(range(9))),
        (b"\xff\x00\x81", (*range(8), 16, 23)),
        (b"\x00\x00\x00\x80", (31,)),
    ],
)
def test_pcr_bitmap(bitmap: bytes, pcrs: tuple[int, ...]) -> None:
    assert PcrSelection.from_bitmap(TpmAlg.SHA256, bitmap).pcrs == pcrs


def test_pcr_selection_list_standalone() -> None:
    data = bytes.fromhex("00000002000b03ff0100000403ff0100")
    sel = parse_pcr_selection(data)
    assert [s.describe() for s in sel] == ["sha256:0,1,2,3,4,5,6,7,8", "sha1:0,1,2,3,4,5,6,7,8"]
    with pytest.raises(MalformedEvidence) as e:
        parse_pcr_selection(bytes.fromhex("00000001001003ff0100"))  # TPM_ALG_NULL is no hash
    assert (e.value.field, e.value.offset) == ("TPML_PCR_SELECTION.pcrSelections[0].hash", 4)
    assert parse_pcr_selection(b"\x00\x00\x00\x00") == ()


# --- TPMT_SIGNATURE ---


@pytest.mark.parametrize("d", REPLAYED, ids=lambda p: p.name)
def test_replayed_signature(d: Path) -> None:
    s = parse_signature((d / "quote.sig").read_bytes())
    assert (s.sig_alg, s.hash_alg) == (TpmAlg.RSASSA, TpmAlg.SHA256)
    assert s.signature.hex() == _yaml_value(d / "quote.yaml", "sig")


def test_windows_and_keylime_signatures() -> None:
    s = parse_signature(base64.b64decode(WINDOWS["Quote"]["Signature"]))
    assert (s.sig_alg, s.hash_alg, len(s.signature)) == (TpmAlg.RSASSA, TpmAlg.SHA1, 256)
    s = parse_signature(base64.b64decode(KEYLIME["sigblob_b64"]))
    assert (s.sig_alg, s.hash_alg, len(s.signature)) == (TpmAlg.RSASSA, TpmAlg.SHA256, 256)


def test_signature_variants() -> None:
    # 0018 ECDSA | 000b sha256 | 0002 r | 0003 s
    s = parse_signature(bytes.fromhex("0018000b0002abcd0003010203"))
    assert (s.sig_alg, s.hash_alg, s.r, s.s) == (
        TpmAlg.ECDSA,
        TpmAlg.SHA256,
        b"\xab\xcd",
        b"\x01\x02\x03",
    )
    # 0016 RSAPSS | 000c sha384 | 0001 sig
    s = parse_signature(bytes.fromhex("0016000c000199"))
    assert (s.sig_alg, s.hash_alg, s.signature) == (TpmAlg.RSAPSS, TpmAlg.SHA384, b"\x99")
    # 0005 HMAC | 0004 sha1 | 20-byte digest (TPMT_HA: no size field)
    s = parse_signature(bytes.fromhex("00050004") + bytes(range(20)))
    assert (s.sig_alg, s.signature) == (TpmAlg.HMAC, bytes(range(20)))
    # 0010 NULL
    assert parse_signature(b"\x00\x10").sig_alg == TpmAlg.NULL


@pytest.mark.parametrize(
    ("hexdata", "field", "offset"),
    [
        ("0099", "sigAlg", 0),  # not a TPM_ALG_ID
        ("0001000b0000", "sigAlg", 0),  # TPM_ALG_RSA is no signature scheme
        ("00140010", "signature.hash", 2),  # RSASSA with hash NULL
        ("0014000b0201", "signature.sig.size", 4),  # 513 bytes > MAX_RSA_KEY_BYTES
        ("0014000b0100aa", "signature.sig.buffer", 6),
        ("0018000b0051", "signature.signatureR.size", 4),  # 81 > MAX_ECC_KEY_BYTES
        ("0018000b0001aa", "signature.signatureS.size", 7),
        ("00050004aabb", "signature.digest", 4),
        ("001000", "trailing", 2),
    ],
)
def test_signature_malformed(hexdata: str, field: str, offset: int) -> None:
    with pytest.raises(MalformedEvidence) as e:
        parse_signature(bytes.fromhex(hexdata))
    assert (e.value.structure, e.value.field, e.value.offset) == ("TPMT_SIGNATURE", field, offset)


# --- TPMT_PUBLIC / TPM2B_PUBLIC ---


@pytest.mark.parametrize("d", REPLAYED, ids=lambda p: p.name)
def test_replayed_ak_public_and_name(d: Path) -> None:
    p = parse_tpm2b_public((d / "ak.tpm2b_public").read_bytes())
    assert p.name() == (d / "ak.name").read_bytes()
    pem = load_pem_public_key((d / "ak.pem").read_bytes())
    key = p.public_key()
    assert isinstance(pem, rsa.RSAPublicKey) and isinstance(key, rsa.RSAPublicKey)
    assert key.public_numbers() == pem.public_numbers()
    assert (p.type, p.name_alg, p.object_attributes) == (TpmAlg.RSA, TpmAlg.SHA256, 0x00050072)
    assert p.has(
        ObjectAttribute.RESTRICTED | ObjectAttribute.SIGN_ENCRYPT | ObjectAttribute.FIXED_TPM
    )
    assert not p.has(ObjectAttribute.DECRYPT)
    assert p.auth_policy == b""
    assert isinstance(p.parameters, RsaParms)
    assert p.parameters.symmetric.algorithm == TpmAlg.NULL
    assert (p.parameters.scheme.scheme, p.parameters.scheme.hash_alg) == (
        TpmAlg.RSASSA,
        TpmAlg.SHA256,
    )
    assert (p.parameters.key_bits, p.parameters.exponent, p.parameters.public_exponent) == (
        2048,
        0,
        65537,
    )
    assert len(p.raw) + 2 == len((d / "ak.tpm2b_public").read_bytes())


def test_tools_ak_name_from_the_default_template() -> None:
    """swtpm-flow/tools has only ak.pem and ak.name: tpm2_createak's RSA/rsassa/sha256 template
    (the replayed AKs' TPMT_PUBLIC minus the modulus) plus the PEM modulus gives ak.name."""
    template = (REPLAYED[0] / "ak.tpm2b_public").read_bytes()[2:-256]
    key = load_pem_public_key((TPM / "swtpm-flow/tools/ak.pem").read_bytes())
    assert isinstance(key, rsa.RSAPublicKey)
    modulus = key.public_numbers().n.to_bytes(256, "big")
    assert (
        parse_public(template + modulus).name() == (TPM / "swtpm-flow/tools/ak.name").read_bytes()
    )


def test_windows_ak_public() -> None:
    p = parse_public(base64.b64decode(WINDOWS["AK"]["Public"]))
    assert (p.type, p.name_alg, p.object_attributes) == (TpmAlg.RSA, TpmAlg.SHA256, 0x00050472)
    assert p.has(ObjectAttribute.NO_DA | ObjectAttribute.RESTRICTED | ObjectAttribute.SIGN_ENCRYPT)
    assert len(p.auth_policy) == 32
    assert isinstance(p.parameters, RsaParms)
    assert (p.parameters.scheme.scheme, p.parameters.scheme.hash_alg) == (
        TpmAlg.RSASSA,
        TpmAlg.SHA1,
    )
    assert p.public_key().key_size == 2048
    # The Name is nameAlg || H(TPMT_PUBLIC).
    assert p.name() == b"\x00\x0b" + hashlib.sha256(p.raw).digest()


def _ecc_public(key: ec.EllipticCurvePublicKey, curve_id: int = EccCurve.NIST_P256) -> bytes:
    n = key.public_numbers()
    size = (key.curve.key_size + 7) // 8
    return (
        struct.pack(">HHI", TpmAlg.ECC, TpmAlg.SHA256, 0x00050072)
        + b"\x00\x00"  # authPolicy
        + struct.pack(">H", TpmAlg.NULL)  # symmetric
        + struct.pack(">HH", TpmAlg.ECDSA, TpmAlg.SHA256)  # scheme
        + struct.pack(">H", curve_id)
        + struct.pack(">H", TpmAlg.NULL)  # kdf
        + struct.pack(">H", size)
        + n.x.to_bytes(size, "big")
        + struct.pack(">H", size)
        + n.y.to_bytes(size, "big")
    )


def test_ecc_public_roundtrip() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    data = _ecc_public(key)
    p = parse_public(data)
    assert isinstance(p.parameters, EccParms) and isinstance(p.unique, EccPoint)
    assert (p.parameters.curve_id, p.parameters.kdf.scheme) == (EccCurve.NIST_P256, TpmAlg.NULL)
    parsed = p.public_key()
    assert isinstance(parsed, ec.EllipticCurvePublicKey)
    assert parsed.public_numbers() == key.public_numbers()
    assert p.name() == b"\x00\x0b" + hashlib.sha256(data).digest()
    assert parse_tpm2b_public(len(data).to_bytes(2, "big") + data) == p


def test_ecc_public_unsupported_curve_and_bad_point() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    bn = parse_public(_ecc_public(key, EccCurve.BN_P256))
    with pytest.raises(UnsupportedEvidence, match="BN_P256"):
        bn.public_key()
    data = bytearray(_ecc_public(key))
    data[-1] ^= 1  # y no longer on the curve
    with pytest.raises(MalformedEvidence) as e:
        parse_public(bytes(data)).public_key()
    assert (e.value.structure, e.value.field, e.value.offset) == (
        "TPMT_PUBLIC",
        "unique",
        len(data) - 68,
    )


def _windows_ak() -> bytes:
    return base64.b64decode(WINDOWS["AK"]["Public"])


# Offsets in the Windows AK TPMT_PUBLIC: 0 type | 2 nameAlg | 4 objectAttributes | 8 authPolicy
# (0020 + 32) | 42 symmetric | 44 scheme | 46 scheme hash | 48 keyBits | 50 exponent | 54 unique
PUBLIC_CASES = [
    ("type not TPMI_ALG_PUBLIC", 0, "0004", "type", 0),
    ("nameAlg not a hash", 2, "0001", "nameAlg", 2),
    ("authPolicy 65 bytes", 8, "0041", "authPolicy.size", 8),
    ("symmetric XOR", 42, "000a", "parameters.rsaDetail.symmetric.algorithm", 42),
    ("scheme ECDSA on RSA", 44, "0018", "parameters.rsaDetail.scheme.scheme", 44),
    ("scheme hash NULL", 46, "0010", "parameters.rsaDetail.scheme.details.hashAlg", 46),
    ("keyBits 1024 vs 256-byte modulus", 48, "0400", "unique.rsa", 54),
    ("modulus 513 bytes", 54, "0201", "unique.rsa.size", 54),
]


@pytest.mark.parametrize(
    ("at", "new", "field", "offset"),
    [c[1:] for c in PUBLIC_CASES],
    ids=[c[0] for c in PUBLIC_CASES],
)
def test_public_malformed(at: int, new: str, field: str, offset: int) -> None:
    with pytest.raises(MalformedEvidence) as e:
        parse_public(_patch(_windows_ak(), at, bytes.fromhex(new)))
    assert (e.value.structure, e.value.field, e.value.offset) == ("TPMT_PUBLIC", field, offset)


def test_public_ecc_malformed() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    data = _ecc_public(key)
    # 0 type | 2 nameAlg | 4 attrs | 8 authPolicy 0000 | 10 symmetric | 12 scheme | 14 hash
    # 16 curveID | 18 kdf | 20 x
    with pytest.raises(MalformedEvidence) as e:
        parse_public(_patch(data, 16, b"\x00\x99"))
    assert (e.value.field, e.value.offset) == ("parameters.eccDetail.curveID", 16)
    with pytest.raises(MalformedEvidence) as e:
        parse_public(_patch(data, 18, b"\x00\x04"))  # SHA1 is no KDF scheme
    assert (e.value.field, e.value.offset) == ("parameters.eccDetail.kdf.scheme", 18)
    with pytest.raises(MalformedEvidence) as e:
        parse_public(_patch(data, 12, b"\x00\x14"))  # RSASSA is no ECC scheme
    assert (e.value.field, e.value.offset) == ("parameters.eccDetail.scheme.scheme", 12)


def test_keyedhash_and_symcipher_objects_are_unsupported() -> None:
    for alg in (TpmAlg.KEYEDHASH, TpmAlg.SYMCIPHER):
        with pytest.raises(UnsupportedEvidence):
            parse_public(struct.pack(">HHI", alg, TpmAlg.SHA256, 0) + b"\x00\x00")


def test_null_name_alg_has_no_name() -> None:
    p = parse_public(_patch(_windows_ak(), 2, b"\x00\x10"))
    with pytest.raises(UnsupportedEvidence):
        p.name()


# --- tpm2-tools PCR blob ---


@pytest.mark.parametrize("d", REPLAYED, ids=lambda p: p.name)
def test_pcr_blob_equals_pcrs_read_from_the_tpm(d: Path) -> None:
    blob = parse_pcr_blob((d / "quote.pcrs").read_bytes())
    quote = parse_attest((d / "quote.msg").read_bytes())
    assert blob.selection == quote.attested.pcr_select
    read = json.loads((d / "tpm_pcrs.json").read_text())["pcrs"]
    for bank, values in read.items():
        assert {i: v.hex() for i, v in blob.values[BANKS[bank]].items()} == {
            int(i): v for i, v in values.items()
        }
    if "sha256" not in read:  # debian-10: legacy SHA1 log, the sha256 bank stayed all zero
        assert set(blob.values[TpmAlg.SHA256].values()) == {bytes(32)}


def test_pcr_blob_tools_flow() -> None:
    blob = parse_pcr_blob((TPM / "swtpm-flow/tools/quote.pcrs").read_bytes())
    bank = blob.values[TpmAlg.SHA256]
    assert list(bank) == [*range(8), 16, 23]
    assert all(bank[i] == bytes(32) for i in range(8))
    # PROVENANCE: PCR16 = extend(0, sha256("hello"))
    assert bank[16] == hashlib.sha256(bytes(32) + hashlib.sha256(b"hello").digest()).digest()


def test_pcr_blob_keylime() -> None:
    blob = parse_pcr_blob(base64.b64decode(KEYLIME["pcrblob_b64"]))
    assert [s.describe() for s in blob.selection] == ["sha256:16"]
    assert blob.values[TpmAlg.SHA256][16].hex() == (
        "d471c0674951f0ef075aecdd42fbefa6eca6019820add0bd222d1c4e6242ce6f"
    )


def _blob() -> bytes:
    return (TPM / "swtpm-flow/tools/quote.pcrs").read_bytes()


# Layout (little-endian): 0 count | 4 + 8*i selection slot i (hash, sizeofSelect, select[4], pad)
# | 132 number of TPML_DIGESTs | 136 + 532*k TPML_DIGEST k (count, then 8 x (size, buffer[64]))
BLOB_CASES = [
    ("selection count 17", 0, "11000000", "pcrSelect.count", 0),
    ("hash not a hash", 4, "1000", "pcrSelect.pcrSelections[0].hash", 4),
    ("sizeofSelect 5", 6, "05", "pcrSelect.pcrSelections[0].sizeofSelect", 6),
    ("33 digest lists", 132, "21000000", "pcrs.count", 132),
    ("TPML_DIGEST.count 9", 136, "09000000", "pcrs.pcr_values[0].count", 136),
    ("TPM2B_DIGEST.size 65", 140, "4100", "pcrs.pcr_values[0].digests[0].size", 140),
    ("digest of 31 bytes", 140, "1f00", "pcrs", 140),
    ("one value missing", 668, "01000000", "pcrs", 1200),
    ("one list more than the file has", 132, "03000000", "pcrs.pcr_values[2]", 1200),
    ("a PCR unselected", 9, "80", "pcrs", 1200),
]


@pytest.mark.parametrize(
    ("at", "new", "field", "offset"), [c[1:] for c in BLOB_CASES], ids=[c[0] for c in BLOB_CASES]
)
def test_pcr_blob_malformed(at: int, new: str, field: str, offset: int) -> None:
    with pytest.raises(MalformedEvidence) as e:
        parse_pcr_blob(_patch(_blob(), at, bytes.fromhex(new)))
    assert (e.value.structure, e.value.field, e.value.offset) == (
        "tpm2-tools PCR blob",
        field,
        offset,
    )


def test_pcr_blob_ignores_slots_past_count() -> None:
    data = _patch(_blob(), 12, bytes.fromhex("ffff 09 ffffffff 00".replace(" ", "")))
    assert parse_pcr_blob(data) == parse_pcr_blob(_blob())
