"""TPM 2.0 structures for quote verification. Parse only: bytes -> frozen dataclasses, no judgement.

Layouts follow the TCG *Trusted Platform Module Library, Part 2: Structures*, Family "2.0",
Level 00 Revision 01.59 (section numbers below are that revision's). TPM structures are
marshalled **big-endian** with no padding; every ``TPM2B_*`` is a ``UINT16`` size followed by that
many bytes, and every size is checked against both the bytes left and the maximum the spec gives
the buffer (the same ``TPM_RC_SIZE`` checks a TPM's unmarshalling code makes).

What is parsed here:

* ``TPMS_ATTEST`` (§10.12.12) with ``TPMS_QUOTE_INFO`` (§10.12.4) as the attested union member.
  ``magic`` and ``type`` are exposed, never judged: :mod:`attestd.verify.tpm` judges them. A
  ``type`` that is another attestation (certify, creation, ...) is :class:`UnsupportedEvidence`
  once the common header has parsed; a ``type`` that is no ``TPM_ST_ATTEST_*`` value at all is
  :class:`MalformedEvidence` (the union cannot be read).
* ``TPML_PCR_SELECTION`` / ``TPMS_PCR_SELECTION`` (§10.9.7, §10.6.2).
* ``TPMT_SIGNATURE`` (§11.3.4): RSASSA / RSAPSS (``TPMS_SIGNATURE_RSA``), ECDSA, ECDAA, SM2 and
  ECSCHNORR (``TPMS_SIGNATURE_ECC``), HMAC (``TPMT_HA``) and NULL.
* ``TPMT_PUBLIC`` / ``TPM2B_PUBLIC`` (§12.2.4, §12.2.5) for RSA and ECC keys, with
  :meth:`Public.public_key` (a ``cryptography`` key) and :meth:`Public.name` (the TPM Name).
* The PCR file ``tpm2_quote -o`` writes and Keylime consumes (:func:`parse_pcr_blob`). This is
  *not* a TPM structure: tpm2-tools writes its in-memory C structs, so it is little-endian and
  padded (see the function's docstring).

Unknown algorithm identifiers, curves, tags and ``TPMI_YES_NO`` values are
:class:`MalformedEvidence` naming the structure, field and byte offset (never a ``KeyError``).
Whole-buffer parsers reject trailing bytes: every structure here has an exact marshalled size.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from types import MappingProxyType

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from attestd._binary import Reader
from attestd.errors import MalformedEvidence, UnsupportedEvidence

__all__ = [
    "HASH_DIGEST_SIZES",
    "TPM_GENERATED_VALUE",
    "Attest",
    "AttestHeader",
    "CertifyAttest",
    "CertifyInfo",
    "ClockInfo",
    "EccCurve",
    "EccParms",
    "EccPoint",
    "ObjectAttribute",
    "PcrBlob",
    "PcrSelection",
    "Public",
    "QuoteInfo",
    "RsaParms",
    "Scheme",
    "Signature",
    "SymDef",
    "TpmAlg",
    "TpmSt",
    "alg_name",
    "hash_algorithm",
    "hash_digest",
    "parse_attest",
    "parse_attest_header",
    "parse_certify",
    "parse_pcr_blob",
    "parse_pcr_selection",
    "parse_public",
    "parse_signature",
    "parse_tpm2b_public",
]

#: §6.2 Table 7: the value a TPM puts in ``TPMS_ATTEST.magic`` of everything it signs.
TPM_GENERATED_VALUE = 0xFF544347


class TpmAlg(IntEnum):
    """§6.3 Table 9, ``TPM_ALG_ID`` (the values this module knows)."""

    RSA = 0x0001
    SHA1 = 0x0004
    HMAC = 0x0005
    AES = 0x0006
    MGF1 = 0x0007
    KEYEDHASH = 0x0008
    XOR = 0x000A
    SHA256 = 0x000B
    SHA384 = 0x000C
    SHA512 = 0x000D
    NULL = 0x0010
    SM3_256 = 0x0012
    SM4 = 0x0013
    RSASSA = 0x0014
    RSAES = 0x0015
    RSAPSS = 0x0016
    OAEP = 0x0017
    ECDSA = 0x0018
    ECDH = 0x0019
    ECDAA = 0x001A
    SM2 = 0x001B
    ECSCHNORR = 0x001C
    ECMQV = 0x001D
    KDF1_SP800_56A = 0x0020
    KDF2 = 0x0021
    KDF1_SP800_108 = 0x0022
    ECC = 0x0023
    SYMCIPHER = 0x0025
    CAMELLIA = 0x0026
    SHA3_256 = 0x0027
    SHA3_384 = 0x0028
    SHA3_512 = 0x0029
    CTR = 0x0040
    OFB = 0x0041
    CBC = 0x0042
    CFB = 0x0043
    ECB = 0x0044


class TpmSt(IntEnum):
    """§6.9 Table 19, the ``TPM_ST`` tags a ``TPMS_ATTEST.type`` can carry (§10.12.10)."""

    ATTEST_NV = 0x8014
    ATTEST_COMMAND_AUDIT = 0x8015
    ATTEST_SESSION_AUDIT = 0x8016
    ATTEST_CERTIFY = 0x8017
    ATTEST_QUOTE = 0x8018
    ATTEST_TIME = 0x8019
    ATTEST_CREATION = 0x801A
    ATTEST_NV_DIGEST = 0x801C


class EccCurve(IntEnum):
    """§6.4 Table 10, ``TPM_ECC_CURVE``."""

    NIST_P192 = 0x0001
    NIST_P224 = 0x0002
    NIST_P256 = 0x0003
    NIST_P384 = 0x0004
    NIST_P521 = 0x0005
    BN_P256 = 0x0010
    BN_P638 = 0x0011
    SM2_P256 = 0x0020


class ObjectAttribute(IntFlag):
    """§8.3 Table 31, ``TPMA_OBJECT`` bits (reserved bits are kept, not judged)."""

    FIXED_TPM = 1 << 1
    ST_CLEAR = 1 << 2
    FIXED_PARENT = 1 << 4
    SENSITIVE_DATA_ORIGIN = 1 << 5
    USER_WITH_AUTH = 1 << 6
    ADMIN_WITH_POLICY = 1 << 7
    NO_DA = 1 << 10
    ENCRYPTED_DUPLICATION = 1 << 11
    RESTRICTED = 1 << 16
    DECRYPT = 1 << 17
    SIGN_ENCRYPT = 1 << 18
    X509_SIGN = 1 << 19


#: §10.3.1 ``TPMU_HA``: digest size of every hash ``TPMI_ALG_HASH`` (§9.27) may name.
HASH_DIGEST_SIZES: Mapping[int, int] = MappingProxyType(
    {
        TpmAlg.SHA1: 20,
        TpmAlg.SHA256: 32,
        TpmAlg.SHA384: 48,
        TpmAlg.SHA512: 64,
        TpmAlg.SM3_256: 32,
        TpmAlg.SHA3_256: 32,
        TpmAlg.SHA3_384: 48,
        TpmAlg.SHA3_512: 64,
    }
)

# Buffer maxima (§10.4, §10.5.3, §11.2.4.5, §11.2.5.1). The RSA and ECC maxima are
# implementation-dependent (MAX_RSA_KEY_BYTES, MAX_ECC_KEY_BYTES); these allow RSA-4096 and
# BN_P638, the largest a TPM 2.0 can implement.
_MAX_DIGEST = 64  # TPM2B_DIGEST: sizeof(TPMU_HA)
_MAX_DATA = 66  # TPM2B_DATA: sizeof(TPMT_HA)
_MAX_NAME = 66  # TPM2B_NAME: sizeof(TPMU_NAME)
_MAX_RSA_BYTES = 512
_MAX_ECC_BYTES = 80
# TPML_PCR_SELECTION.count <= HASH_COUNT (implementation-dependent); 16 = TPM2_NUM_PCR_BANKS of
# the TSS. sizeofSelect <= PCR_SELECT_MAX; 4 bytes = 32 PCRs, the most any TPM 2.0 profile has.
_MAX_PCR_BANKS = 16
_MAX_SIZEOF_SELECT = 4

_RSA_SIG_ALGS = frozenset({TpmAlg.RSASSA, TpmAlg.RSAPSS})
_ECC_SIG_ALGS = frozenset({TpmAlg.ECDSA, TpmAlg.ECDAA, TpmAlg.SM2, TpmAlg.ECSCHNORR})
_SYM_OBJECT_ALGS = frozenset({TpmAlg.AES, TpmAlg.SM4, TpmAlg.CAMELLIA})
_SYM_MODES = frozenset({TpmAlg.CTR, TpmAlg.OFB, TpmAlg.CBC, TpmAlg.CFB, TpmAlg.ECB, TpmAlg.NULL})
_RSA_SCHEMES_WITH_HASH = frozenset({TpmAlg.RSASSA, TpmAlg.RSAPSS, TpmAlg.OAEP})
_RSA_SCHEMES_EMPTY = frozenset({TpmAlg.RSAES, TpmAlg.NULL})
_ECC_SCHEMES_WITH_HASH = frozenset(
    {TpmAlg.ECDSA, TpmAlg.SM2, TpmAlg.ECSCHNORR, TpmAlg.ECDH, TpmAlg.ECMQV}
)
_KDF_SCHEMES = frozenset({TpmAlg.MGF1, TpmAlg.KDF1_SP800_56A, TpmAlg.KDF2, TpmAlg.KDF1_SP800_108})


def alg_name(alg: int) -> str:
    """``sha256`` for 0x000B; ``0x1234`` for an identifier this module does not know."""
    try:
        return TpmAlg(alg).name.lower()
    except ValueError:
        return f"0x{alg:04x}"


_CRYPTOGRAPHY_HASHES: Mapping[int, type[hashes.HashAlgorithm]] = MappingProxyType(
    {
        TpmAlg.SHA1: hashes.SHA1,
        TpmAlg.SHA256: hashes.SHA256,
        TpmAlg.SHA384: hashes.SHA384,
        TpmAlg.SHA512: hashes.SHA512,
        TpmAlg.SM3_256: hashes.SM3,
        TpmAlg.SHA3_256: hashes.SHA3_256,
        TpmAlg.SHA3_384: hashes.SHA3_384,
        TpmAlg.SHA3_512: hashes.SHA3_512,
    }
)


def hash_algorithm(alg: int) -> hashes.HashAlgorithm:
    """The ``cryptography`` hash for a ``TPM_ALG_ID``; :class:`UnsupportedEvidence` if none."""
    cls = _CRYPTOGRAPHY_HASHES.get(alg)
    if cls is None:
        raise UnsupportedEvidence(f"TPM hash algorithm {alg_name(alg)} is not supported")
    return cls()


def hash_digest(alg: int, data: bytes) -> bytes:
    """``H_alg(data)``; :class:`UnsupportedEvidence` if this platform cannot compute it."""
    try:
        h = hashes.Hash(hash_algorithm(alg))
    except UnsupportedAlgorithm as exc:
        raise UnsupportedEvidence(
            f"TPM hash algorithm {alg_name(alg)} is not available here"
        ) from exc
    h.update(data)
    return h.finalize()


# --- big-endian readers over Reader.take (the shared Reader is little-endian) ---


def _u8(r: Reader, field: str) -> int:
    return r.take(1, field)[0]


def _u16(r: Reader, field: str) -> int:
    return int.from_bytes(r.take(2, field), "big")


def _u32(r: Reader, field: str) -> int:
    return int.from_bytes(r.take(4, field), "big")


def _u64(r: Reader, field: str) -> int:
    return int.from_bytes(r.take(8, field), "big")


def _tpm2b(r: Reader, field: str, maximum: int) -> bytes:
    """A ``TPM2B``: UINT16 size, then ``size`` bytes (§10.4.1); ``size`` <= the buffer's maximum."""
    at = r.offset
    size = _u16(r, f"{field}.size")
    if size > maximum:
        raise r.fail(f"{field}.size", f"{size} exceeds the maximum of {maximum}", offset=at)
    return r.take(size, f"{field}.buffer")


def _alg(r: Reader, field: str, allowed: Collection[int], what: str) -> int:
    at = r.offset
    value = _u16(r, field)
    if value not in allowed:
        raise r.fail(field, f"{alg_name(value)} is not a valid {what}", offset=at)
    return value


def _hash_alg(r: Reader, field: str, *, allow_null: bool = False) -> int:
    """``TPMI_ALG_HASH`` (§9.27); with ``allow_null`` it is ``TPMI_ALG_HASH+``."""
    at = r.offset
    value = _u16(r, field)
    if value in HASH_DIGEST_SIZES or (allow_null and value == TpmAlg.NULL):
        return value
    raise r.fail(field, f"{alg_name(value)} is not a hash algorithm", offset=at)


# --- PCR selections ---


_BITS = tuple(tuple(j for j in range(8) if byte >> j & 1) for byte in range(256))


@dataclass(frozen=True, slots=True)
class PcrSelection:
    """§10.6.2 ``TPMS_PCR_SELECTION``: ``hash`` (TPMI_ALG_HASH), ``sizeofSelect`` (UINT8),
    ``pcrSelect`` (bitmap: bit ``j`` of byte ``i`` selects PCR ``8*i + j``)."""

    hash_alg: int
    select: bytes  # the bitmap, sizeofSelect bytes
    pcrs: tuple[int, ...]  # selected PCR indices, ascending

    @classmethod
    def from_bitmap(cls, hash_alg: int, select: bytes) -> PcrSelection:
        pcrs = tuple(8 * i + j for i, byte in enumerate(select) for j in _BITS[byte])
        return cls(hash_alg, select, pcrs)

    def describe(self) -> str:
        """``sha256:0,1,2,7`` — for messages."""
        return f"{alg_name(self.hash_alg)}:{','.join(map(str, self.pcrs)) or '-'}"


def _pcr_selection_list(r: Reader, field: str) -> tuple[PcrSelection, ...]:
    """§10.9.7 ``TPML_PCR_SELECTION``: UINT32 count, then ``count`` TPMS_PCR_SELECTIONs."""
    at = r.offset
    count = _u32(r, f"{field}.count")
    if count > _MAX_PCR_BANKS:
        raise r.fail(
            f"{field}.count", f"{count} exceeds the maximum of {_MAX_PCR_BANKS}", offset=at
        )
    out = []
    for i in range(count):
        f = f"{field}.pcrSelections[{i}]"
        hash_alg = _hash_alg(r, f"{f}.hash")
        at = r.offset
        size = _u8(r, f"{f}.sizeofSelect")
        if size > _MAX_SIZEOF_SELECT:
            raise r.fail(
                f"{f}.sizeofSelect",
                f"{size} exceeds the maximum of {_MAX_SIZEOF_SELECT}",
                offset=at,
            )
        out.append(PcrSelection.from_bitmap(hash_alg, r.take(size, f"{f}.pcrSelect")))
    return tuple(out)


def parse_pcr_selection(data: bytes) -> tuple[PcrSelection, ...]:
    """A marshalled ``TPML_PCR_SELECTION`` (§10.9.7), exactly."""
    r = Reader(data, "TPML_PCR_SELECTION")
    out = _pcr_selection_list(r, "TPML_PCR_SELECTION")
    r.expect_end("trailing")
    return out


# --- TPMS_ATTEST ---


@dataclass(frozen=True, slots=True)
class ClockInfo:
    """§10.11.1 ``TPMS_CLOCK_INFO`` (17 bytes)."""

    clock: int  # UINT64, milliseconds
    reset_count: int  # UINT32
    restart_count: int  # UINT32
    safe: bool  # TPMI_YES_NO


@dataclass(frozen=True, slots=True)
class QuoteInfo:
    """§10.12.4 ``TPMS_QUOTE_INFO``: ``pcrSelect`` (TPML_PCR_SELECTION), ``pcrDigest``
    (TPM2B_DIGEST: the hash, with the signing scheme's hash, of the selected PCRs)."""

    pcr_select: tuple[PcrSelection, ...]
    pcr_digest: bytes


@dataclass(frozen=True, slots=True)
class AttestHeader:
    """The members of §10.12.12 ``TPMS_ATTEST`` before the ``attested`` union.

    Offsets: ``magic`` 0 (UINT32), ``type`` 4 (TPMI_ST_ATTEST), ``qualifiedSigner`` 6
    (TPM2B_NAME), then ``extraData`` (TPM2B_DATA), ``clockInfo`` (TPMS_CLOCK_INFO) and
    ``firmwareVersion`` (UINT64). Nothing here is judged: see :mod:`attestd.verify.tpm`.
    """

    magic: int
    type: int
    qualified_signer: bytes
    extra_data: bytes
    clock_info: ClockInfo
    firmware_version: int


@dataclass(frozen=True, slots=True)
class Attest(AttestHeader):
    """§10.12.12 ``TPMS_ATTEST`` whose ``attested`` member is a ``TPMS_QUOTE_INFO``.

    ``raw`` is the exact byte string the attestation key signed. Unverified: only
    :func:`attestd.verify.tpm.verify_quote` establishes that the TPM produced it.
    """

    attested: QuoteInfo
    raw: bytes


_CLOCK_AND_FIRMWARE = struct.Struct(">QIIBQ")


def _attest_header(r: Reader) -> AttestHeader:
    magic = _u32(r, "magic")
    type_ = _u16(r, "type")
    qualified_signer = _tpm2b(r, "qualifiedSigner", _MAX_NAME)
    extra_data = _tpm2b(r, "extraData", _MAX_DATA)
    at = r.offset
    # clockInfo (clock UINT64, resetCount UINT32, restartCount UINT32, safe TPMI_YES_NO), then
    # firmwareVersion (UINT64): one fixed-size run, read field by field only when it is cut
    # short (so the error names the field).
    if r.remaining >= _CLOCK_AND_FIRMWARE.size:
        tail = r.take(_CLOCK_AND_FIRMWARE.size, "clockInfo")
        clock, reset_count, restart_count, safe, firmware_version = _CLOCK_AND_FIRMWARE.unpack(tail)
    else:
        clock = _u64(r, "clockInfo.clock")
        reset_count = _u32(r, "clockInfo.resetCount")
        restart_count = _u32(r, "clockInfo.restartCount")
        safe = _u8(r, "clockInfo.safe")
        firmware_version = _u64(r, "firmwareVersion")
    if safe > 1:
        raise r.fail(
            "clockInfo.safe", f"TPMI_YES_NO value {safe} is neither 0 nor 1", offset=at + 16
        )
    return AttestHeader(
        magic,
        type_,
        qualified_signer,
        extra_data,
        ClockInfo(clock, reset_count, restart_count, bool(safe)),
        firmware_version,
    )


@dataclass(frozen=True, slots=True)
class CertifyInfo:
    """§10.12.3 ``TPMS_CERTIFY_INFO``: ``name`` (TPM2B_NAME) of the certified object and its
    ``qualifiedName`` (TPM2B_NAME)."""

    name: bytes
    qualified_name: bytes


@dataclass(frozen=True, slots=True)
class CertifyAttest(AttestHeader):
    """§10.12.12 ``TPMS_ATTEST`` whose ``attested`` member is a ``TPMS_CERTIFY_INFO``
    (``TPM2_Certify``: the signing key vouches that the named object is loaded in the same TPM).
    ``raw`` is the exact byte string signed. Unverified:
    :func:`attestd.verify.tpm.verify_certification` judges it."""

    attested: CertifyInfo
    raw: bytes


def parse_attest_header(data: bytes) -> AttestHeader:
    """The common header of a ``TPMS_ATTEST`` of any type; the ``attested`` bytes are not read."""
    return _attest_header(Reader(data, "TPMS_ATTEST"))


def parse_attest(data: bytes) -> Attest:
    """A ``TPMS_ATTEST`` (§10.12.12) that is a quote, exactly (no trailing bytes).

    Raises:
        MalformedEvidence: truncated, oversized or trailing bytes, an unknown ``type`` tag or
            algorithm identifier.
        UnsupportedEvidence: a well-formed header whose ``type`` is another attestation
            (``TPM_ST_ATTEST_CERTIFY``, ``_CREATION``, ...), which this module does not read.
    """
    r = Reader(data, "TPMS_ATTEST")
    header = _attest_header(r)
    if header.type != TpmSt.ATTEST_QUOTE:
        try:
            tag = TpmSt(header.type)
        except ValueError:
            raise r.fail(
                "type", f"0x{header.type:04x} is not a TPM_ST_ATTEST_* tag", offset=4
            ) from None
        raise UnsupportedEvidence(
            f"TPMS_ATTEST.type is TPM_ST_{tag.name} (0x{tag:04x}); only quotes "
            "(TPM_ST_ATTEST_QUOTE) are supported"
        )
    pcr_select = _pcr_selection_list(r, "attested.quote.pcrSelect")
    pcr_digest = _tpm2b(r, "attested.quote.pcrDigest", _MAX_DIGEST)
    r.expect_end("trailing")
    return Attest(*_header_fields(header), QuoteInfo(pcr_select, pcr_digest), bytes(data))


def parse_certify(data: bytes) -> CertifyAttest:
    """A ``TPMS_ATTEST`` (§10.12.12) that is a ``TPM2_Certify`` result, exactly (no trailing
    bytes).

    Raises:
        MalformedEvidence: truncated, oversized or trailing bytes, or a ``type`` that is not
            ``TPM_ST_ATTEST_CERTIFY``.
    """
    r = Reader(data, "TPMS_ATTEST")
    header = _attest_header(r)
    if header.type != TpmSt.ATTEST_CERTIFY:
        raise r.fail(
            "type",
            f"0x{header.type:04x} is not TPM_ST_ATTEST_CERTIFY 0x{TpmSt.ATTEST_CERTIFY:04x}",
            offset=4,
        )
    name = _tpm2b(r, "attested.certify.name", _MAX_NAME)
    qualified_name = _tpm2b(r, "attested.certify.qualifiedName", _MAX_NAME)
    r.expect_end("trailing")
    return CertifyAttest(*_header_fields(header), CertifyInfo(name, qualified_name), bytes(data))


def _header_fields(h: AttestHeader) -> tuple[int, int, bytes, bytes, ClockInfo, int]:
    return h.magic, h.type, h.qualified_signer, h.extra_data, h.clock_info, h.firmware_version


# --- TPMT_SIGNATURE ---


@dataclass(frozen=True, slots=True)
class Signature:
    """§11.3.4 ``TPMT_SIGNATURE``: ``sigAlg`` selects the ``TPMU_SIGNATURE`` member (§11.3.3).

    * RSASSA, RSAPSS (§11.3.1 ``TPMS_SIGNATURE_RSA``): ``hash_alg``, ``signature``.
    * ECDSA, ECDAA, SM2, ECSCHNORR (§11.3.2 ``TPMS_SIGNATURE_ECC``): ``hash_alg``, ``r``, ``s``.
    * HMAC (``TPMT_HA``): ``hash_alg``, ``signature`` = the HMAC.
    * NULL: nothing (``hash_alg`` is NULL).
    """

    sig_alg: int
    hash_alg: int
    signature: bytes = b""
    r: bytes = b""
    s: bytes = b""


def parse_signature(data: bytes) -> Signature:
    """A marshalled ``TPMT_SIGNATURE``, exactly."""
    r = Reader(data, "TPMT_SIGNATURE")
    at = r.offset
    sig_alg = _u16(r, "sigAlg")
    if sig_alg in _RSA_SIG_ALGS:
        hash_alg = _hash_alg(r, "signature.hash")
        out = Signature(sig_alg, hash_alg, _tpm2b(r, "signature.sig", _MAX_RSA_BYTES))
    elif sig_alg in _ECC_SIG_ALGS:
        hash_alg = _hash_alg(r, "signature.hash")
        sig_r = _tpm2b(r, "signature.signatureR", _MAX_ECC_BYTES)
        sig_s = _tpm2b(r, "signature.signatureS", _MAX_ECC_BYTES)
        out = Signature(sig_alg, hash_alg, r=sig_r, s=sig_s)
    elif sig_alg == TpmAlg.HMAC:
        hash_alg = _hash_alg(r, "signature.hashAlg")
        out = Signature(sig_alg, hash_alg, r.take(HASH_DIGEST_SIZES[hash_alg], "signature.digest"))
    elif sig_alg == TpmAlg.NULL:
        out = Signature(sig_alg, TpmAlg.NULL)
    else:
        raise r.fail("sigAlg", f"{alg_name(sig_alg)} is not a signature scheme", offset=at)
    r.expect_end("trailing")
    return out


# --- TPMT_PUBLIC ---


@dataclass(frozen=True, slots=True)
class SymDef:
    """§11.1.7 ``TPMT_SYM_DEF_OBJECT``; ``key_bits`` and ``mode`` are 0 when ``algorithm`` is
    NULL (the union members are then absent)."""

    algorithm: int
    key_bits: int = 0
    mode: int = 0


@dataclass(frozen=True, slots=True)
class Scheme:
    """A scheme selector and its details: §11.2.4.2 ``TPMT_RSA_SCHEME``, §11.2.5.6
    ``TPMT_ECC_SCHEME`` or §11.2.3.3 ``TPMT_KDF_SCHEME``. ``hash_alg`` is NULL for schemes
    without one (NULL, RSAES); ``count`` is only used by ECDAA (§11.1.18)."""

    scheme: int
    hash_alg: int = TpmAlg.NULL
    count: int = 0


@dataclass(frozen=True, slots=True)
class RsaParms:
    """§12.2.3.5 ``TPMS_RSA_PARMS``: symmetric, scheme, keyBits (UINT16), exponent (UINT32; 0
    means the default 2^16 + 1, see :attr:`public_exponent`)."""

    symmetric: SymDef
    scheme: Scheme
    key_bits: int
    exponent: int

    @property
    def public_exponent(self) -> int:
        return self.exponent or 65537


@dataclass(frozen=True, slots=True)
class EccParms:
    """§12.2.3.6 ``TPMS_ECC_PARMS``: symmetric, scheme, curveID, kdf."""

    symmetric: SymDef
    scheme: Scheme
    curve_id: int
    kdf: Scheme


@dataclass(frozen=True, slots=True)
class EccPoint:
    """§11.2.5.2 ``TPMS_ECC_POINT``: two ``TPM2B_ECC_PARAMETER``s."""

    x: bytes
    y: bytes


_CURVES: Mapping[int, type[ec.EllipticCurve]] = MappingProxyType(
    {
        EccCurve.NIST_P192: ec.SECP192R1,
        EccCurve.NIST_P224: ec.SECP224R1,
        EccCurve.NIST_P256: ec.SECP256R1,
        EccCurve.NIST_P384: ec.SECP384R1,
        EccCurve.NIST_P521: ec.SECP521R1,
    }
)


@dataclass(frozen=True, slots=True)
class Public:
    """§12.2.4 ``TPMT_PUBLIC`` of an RSA or ECC key.

    ``raw`` is the marshalled ``TPMT_PUBLIC`` (without a ``TPM2B_PUBLIC`` size), the input of
    :meth:`name`. ``unique`` is the RSA modulus (§11.2.4.5) or the ECC point (§11.2.5.2).
    """

    type: int
    name_alg: int
    object_attributes: int
    auth_policy: bytes
    parameters: RsaParms | EccParms
    unique: bytes | EccPoint
    raw: bytes

    def has(self, attribute: ObjectAttribute) -> bool:
        """Whether ``objectAttributes`` has every bit of ``attribute``."""
        return self.object_attributes & attribute == attribute

    def name(self) -> bytes:
        """The TPM Name (Part 1, "Names"): ``nameAlg`` (UINT16) || ``H_nameAlg(TPMT_PUBLIC)``."""
        if self.name_alg == TpmAlg.NULL:
            raise UnsupportedEvidence("TPMT_PUBLIC.nameAlg is NULL: the object has no digest Name")
        return self.name_alg.to_bytes(2, "big") + hash_digest(self.name_alg, self.raw)

    def public_key(self) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        """The key as a ``cryptography`` public key.

        Raises:
            UnsupportedEvidence: an ECC curve ``cryptography`` does not implement (BN, SM2).
            MalformedEvidence: key material that is not a valid public key.
        """
        params, unique = self.parameters, self.unique
        try:
            if isinstance(params, RsaParms) and isinstance(unique, bytes):
                n = int.from_bytes(unique, "big")
                return rsa.RSAPublicNumbers(params.public_exponent, n).public_key()
            if isinstance(params, EccParms) and isinstance(unique, EccPoint):
                curve = _CURVES.get(params.curve_id)
                if curve is None:
                    name = next((c.name for c in EccCurve if c == params.curve_id), "unknown")
                    raise UnsupportedEvidence(
                        f"ECC curve 0x{params.curve_id:04x} ({name}) is not supported"
                    )
                x, y = int.from_bytes(unique.x, "big"), int.from_bytes(unique.y, "big")
                return ec.EllipticCurvePublicNumbers(x, y, curve()).public_key()
            raise ValueError("parameters and unique are of different key types")
        except ValueError as exc:
            size = (
                4 + len(unique.x) + len(unique.y)
                if isinstance(unique, EccPoint)
                else 2 + len(unique)
            )
            raise MalformedEvidence(
                "TPMT_PUBLIC", "unique", len(self.raw) - size, f"not a valid public key: {exc}"
            ) from exc


def _sym_def_object(r: Reader, field: str) -> SymDef:
    algorithm = _alg(
        r, f"{field}.algorithm", _SYM_OBJECT_ALGS | {TpmAlg.NULL}, "symmetric algorithm"
    )
    if algorithm == TpmAlg.NULL:
        return SymDef(algorithm)
    key_bits = _u16(r, f"{field}.keyBits")
    mode = _alg(r, f"{field}.mode", _SYM_MODES, "block cipher mode")
    return SymDef(algorithm, key_bits, mode)


def _rsa_scheme(r: Reader, field: str) -> Scheme:
    scheme = _alg(r, f"{field}.scheme", _RSA_SCHEMES_WITH_HASH | _RSA_SCHEMES_EMPTY, "RSA scheme")
    if scheme in _RSA_SCHEMES_EMPTY:
        return Scheme(scheme)
    return Scheme(scheme, _hash_alg(r, f"{field}.details.hashAlg"))


def _ecc_scheme(r: Reader, field: str) -> Scheme:
    scheme = _alg(
        r,
        f"{field}.scheme",
        _ECC_SCHEMES_WITH_HASH | {TpmAlg.ECDAA, TpmAlg.NULL},
        "ECC scheme",
    )
    if scheme == TpmAlg.NULL:
        return Scheme(scheme)
    hash_alg = _hash_alg(r, f"{field}.details.hashAlg")
    if scheme == TpmAlg.ECDAA:
        return Scheme(scheme, hash_alg, _u16(r, f"{field}.details.count"))
    return Scheme(scheme, hash_alg)


def _kdf_scheme(r: Reader, field: str) -> Scheme:
    scheme = _alg(r, f"{field}.scheme", _KDF_SCHEMES | {TpmAlg.NULL}, "KDF scheme")
    if scheme == TpmAlg.NULL:
        return Scheme(scheme)
    return Scheme(scheme, _hash_alg(r, f"{field}.details.hashAlg"))


def _public(r: Reader, data: bytes) -> Public:
    start = at = r.offset
    type_ = _u16(r, "type")
    if type_ not in (TpmAlg.RSA, TpmAlg.ECC, TpmAlg.KEYEDHASH, TpmAlg.SYMCIPHER):
        raise r.fail("type", f"{alg_name(type_)} is not a TPMI_ALG_PUBLIC", offset=at)
    name_alg = _hash_alg(r, "nameAlg", allow_null=True)
    object_attributes = _u32(r, "objectAttributes")
    auth_policy = _tpm2b(r, "authPolicy", _MAX_DIGEST)
    parameters: RsaParms | EccParms
    unique: bytes | EccPoint
    if type_ == TpmAlg.RSA:
        symmetric = _sym_def_object(r, "parameters.rsaDetail.symmetric")
        scheme = _rsa_scheme(r, "parameters.rsaDetail.scheme")
        key_bits = _u16(r, "parameters.rsaDetail.keyBits")
        exponent = _u32(r, "parameters.rsaDetail.exponent")
        parameters = RsaParms(symmetric, scheme, key_bits, exponent)
        at = r.offset
        unique = _tpm2b(r, "unique.rsa", _MAX_RSA_BYTES)
        if len(unique) * 8 != key_bits:
            raise r.fail(
                "unique.rsa", f"{len(unique)}-byte modulus for keyBits {key_bits}", offset=at
            )
    elif type_ == TpmAlg.ECC:
        symmetric = _sym_def_object(r, "parameters.eccDetail.symmetric")
        scheme = _ecc_scheme(r, "parameters.eccDetail.scheme")
        curve_id = _alg(r, "parameters.eccDetail.curveID", frozenset(EccCurve), "TPM_ECC_CURVE")
        kdf = _kdf_scheme(r, "parameters.eccDetail.kdf")
        parameters = EccParms(symmetric, scheme, curve_id, kdf)
        unique = EccPoint(
            _tpm2b(r, "unique.ecc.x", _MAX_ECC_BYTES), _tpm2b(r, "unique.ecc.y", _MAX_ECC_BYTES)
        )
    else:
        raise UnsupportedEvidence(
            f"TPMT_PUBLIC of type {alg_name(type_)}: only RSA and ECC keys are supported"
        )
    return Public(
        type_, name_alg, object_attributes, auth_policy, parameters, unique, data[start : r.offset]
    )


def parse_public(data: bytes) -> Public:
    """A marshalled ``TPMT_PUBLIC`` (§12.2.4), exactly (go-attestation's ``AK.Public``)."""
    r = Reader(data, "TPMT_PUBLIC")
    out = _public(r, data)
    r.expect_end("trailing")
    return out


def parse_tpm2b_public(data: bytes) -> Public:
    """A marshalled ``TPM2B_PUBLIC`` (§12.2.5: UINT16 size, then a ``TPMT_PUBLIC`` of exactly
    that size), exactly (tpm2-tools ``-u`` output)."""
    r = Reader(data, "TPM2B_PUBLIC")
    size = _u16(r, "size")
    inner = r.sub(size, "TPMT_PUBLIC", "publicArea")
    out = _public(inner, data)
    inner.expect_end("trailing")
    r.expect_end("trailing")
    return out


# --- tpm2-tools PCR file ---


@dataclass(frozen=True, slots=True)
class PcrBlob:
    """What ``tpm2_quote -o`` wrote: the PCR selection read and the values, by bank and index.

    ``values[alg][pcr]`` is the digest; banks and PCRs iterate in selection order. Unverified:
    these values mean nothing until :func:`attestd.verify.tpm.verify_quote` matched them against
    a signed ``pcrDigest``.
    """

    selection: tuple[PcrSelection, ...]
    values: Mapping[int, Mapping[int, bytes]]


_BLOB_SELECTIONS = 16  # TPML_PCR_SELECTION.pcrSelections[TPM2_NUM_PCR_BANKS]
_BLOB_DIGESTS_PER_LIST = 8  # TPML_DIGEST.digests[8]
_BLOB_MAX_LISTS = 32  # tpm2_pcrs.pcr_values[TPM2_MAX_PCRS]
_BLOB_SLOT = struct.Struct("<HB4sx")  # TPMS_PCR_SELECTION as a padded C struct
_BLOB_DIGEST = struct.Struct(f"<H{_MAX_DIGEST}s")  # TPM2B_DIGEST: size, buffer[64]


def parse_pcr_blob(data: bytes) -> PcrBlob:
    """The PCR file of ``tpm2_quote -o`` / ``tpm2_pcrread -o`` (tpm2-tools 4.x/5.x), which Keylime
    calls ``pcrblob``.

    tpm2-tools ``fwrite``s its in-memory tss2 C structs (x86-64: **little-endian**, padded):

    * ``TPML_PCR_SELECTION`` (132 bytes): UINT32 count, then 16 slots of 8 bytes — UINT16
      hash, UINT8 sizeofSelect, BYTE pcrSelect[4], 1 padding byte. Slots past ``count`` are
      ignored.
    * UINT32: the number ``n`` of ``TPML_DIGEST``s that follow.
    * ``n`` x ``TPML_DIGEST`` (532 bytes): UINT32 count (<= 8), then 8 ``TPM2B_DIGEST`` slots of
      66 bytes (UINT16 size, BYTE buffer[64]). Only the first ``count`` are values.

    The values, concatenated, are the selected PCRs in selection order (bank by bank, PCRs
    ascending) — the order ``TPM2_PCR_Read`` returns them. Their number must equal the number
    of selected PCRs and each must be its bank's digest size.
    """
    r = Reader(data, "tpm2-tools PCR blob")
    at = r.offset
    count = r.u32("pcrSelect.count")
    if count > _BLOB_SELECTIONS:
        raise r.fail(
            "pcrSelect.count", f"{count} exceeds the maximum of {_BLOB_SELECTIONS}", offset=at
        )
    base = r.offset
    slots = r.take(_BLOB_SELECTIONS * _BLOB_SLOT.size, "pcrSelect.pcrSelections")
    selection = []
    for i in range(count):  # slots past count are ignored
        hash_alg, size, bitmap = _BLOB_SLOT.unpack_from(slots, i * _BLOB_SLOT.size)
        at = base + i * _BLOB_SLOT.size
        if hash_alg not in HASH_DIGEST_SIZES:
            raise r.fail(
                f"pcrSelect.pcrSelections[{i}].hash",
                f"{alg_name(hash_alg)} is not a hash algorithm",
                offset=at,
            )
        if size > _MAX_SIZEOF_SELECT:
            raise r.fail(
                f"pcrSelect.pcrSelections[{i}].sizeofSelect",
                f"{size} exceeds the maximum of {_MAX_SIZEOF_SELECT}",
                offset=at + 2,
            )
        selection.append(PcrSelection.from_bitmap(hash_alg, bitmap[:size]))
    at = r.offset
    lists = r.u32("pcrs.count")
    if lists > _BLOB_MAX_LISTS:
        raise r.fail("pcrs.count", f"{lists} exceeds the maximum of {_BLOB_MAX_LISTS}", offset=at)
    digests: list[tuple[int, bytes]] = []
    list_size = 4 + _BLOB_DIGESTS_PER_LIST * _BLOB_DIGEST.size
    for i in range(lists):
        at = r.offset
        chunk = r.take(list_size, f"pcrs.pcr_values[{i}]")
        n = int.from_bytes(chunk[:4], "little")
        if n > _BLOB_DIGESTS_PER_LIST:
            raise r.fail(
                f"pcrs.pcr_values[{i}].count",
                f"{n} exceeds the maximum of {_BLOB_DIGESTS_PER_LIST}",
                offset=at,
            )
        for j in range(n):  # slots past count are ignored
            slot = 4 + j * _BLOB_DIGEST.size
            size, buffer = _BLOB_DIGEST.unpack_from(chunk, slot)
            if size > _MAX_DIGEST:
                raise r.fail(
                    f"pcrs.pcr_values[{i}].digests[{j}].size",
                    f"{size} exceeds the maximum of {_MAX_DIGEST}",
                    offset=at + slot,
                )
            digests.append((at + slot, buffer[:size]))
    end = r.offset
    r.expect_end("trailing")
    wanted = sum(len(s.pcrs) for s in selection)
    if len(digests) != wanted:
        raise r.fail(
            "pcrs",
            f"{len(digests)} PCR values for {wanted} selected PCRs "
            f"({' '.join(s.describe() for s in selection)})",
            offset=end,
        )
    values: dict[int, dict[int, bytes]] = {}
    it = iter(digests)
    for sel in selection:
        bank = values.setdefault(sel.hash_alg, {})
        for pcr in sel.pcrs:
            at, digest = next(it)
            if len(digest) != HASH_DIGEST_SIZES[sel.hash_alg]:
                raise r.fail(
                    "pcrs",
                    f"{alg_name(sel.hash_alg)} PCR {pcr} value has {len(digest)} bytes, "
                    f"expected {HASH_DIGEST_SIZES[sel.hash_alg]}",
                    offset=at,
                )
            bank[pcr] = digest
    return PcrBlob(
        tuple(selection),
        MappingProxyType({alg: MappingProxyType(bank) for alg, bank in values.items()}),
    )
