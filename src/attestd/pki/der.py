"""Just enough DER (ITU-T X.690) to read names straight out of signed X.509 bytes.

Intel QVL compares issuer and subject names as raw DER (dcap.md §1.B step 10). Reading the raw
bytes from ``tbs_certificate_bytes`` / ``tbs_certlist_bytes`` is also much cheaper than building
cryptography's ``Name`` objects, which matters when a chain is verified cold. Only called on
structures cryptography has already parsed; still bounds-checked, raising ``ValueError``.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["CertFields", "CrlFields", "common_name"]

_SEQUENCE, _SET, _INTEGER = 0x30, 0x31, 0x02
_CN_OID = b"\x06\x03\x55\x04\x03"  # 2.5.4.3 commonName


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, value start, value end) of the element at ``pos``."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first & 0x80:
        n = first & 0x7F
        if not 0 < n <= 4 or pos + n > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    else:
        length = first
    if pos + length > len(data):
        raise ValueError("DER element overruns")
    return tag, pos, pos + length


def _element(data: bytes, pos: int) -> tuple[bytes, int]:
    """The whole element at ``pos`` (header included) and the position after it."""
    _, _, end = _tlv(data, pos)
    return data[pos:end], end


def common_name(name: bytes) -> str:
    """The first commonName of a DER Name (RDNSequence), or "" when there is none."""
    _, pos, end = _tlv(name, 0)
    while pos < end:
        _, spos, send = _tlv(name, pos)  # SET OF AttributeTypeAndValue
        apos = spos
        while apos < send:
            _, vpos, vend = _tlv(name, apos)
            if name[vpos : vpos + len(_CN_OID)] == _CN_OID:
                _, s, e = _tlv(name, vpos + len(_CN_OID))
                return name[s:e].decode("utf-8", "replace")
            apos = vend
        pos = send
    return ""


def _signed(der: bytes, what: str) -> tuple[bytes, bytes, bytes]:
    """RFC 5280 §4.1.1 / §5.1.1: SEQUENCE { tbs, signatureAlgorithm, signatureValue BIT STRING }.
    Returns (the TBS element, the AlgorithmIdentifier element, the signature bytes)."""
    tag, pos, _ = _tlv(der, 0)
    if tag != _SEQUENCE:
        raise ValueError(f"{what} is not a SEQUENCE")
    tbs, pos = _element(der, pos)
    alg, pos = _element(der, pos)
    tag, s, e = _tlv(der, pos)
    if tag != 0x03 or s == e or der[s] != 0:
        raise ValueError(f"{what} signatureValue is not a BIT STRING")
    if _tlv(tbs, 0)[1] == len(tbs):
        raise ValueError(f"{what} TBS is empty")
    return tbs, alg, der[s + 1 : e]


_ECDSA_SHA256_ALG = bytes.fromhex("300a06082a8648ce3d040302")  # AlgorithmIdentifier, no params
_P256_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")


class CertFields:
    """What certificate verification reads, straight from the DER of an X.509 certificate
    (RFC 5280 §4.1) that cryptography has already loaded: the signed TBS bytes, the signature,
    issuer and subject names, serial number, notAfter, and the P-256 point (None for other keys)."""

    __slots__ = (
        "ecdsa_sha256",
        "issuer",
        "not_after",
        "p256_point",
        "serial",
        "signature",
        "subject",
        "tbs",
    )

    def __init__(self, der: bytes) -> None:
        self.tbs, alg, self.signature = _signed(der, "Certificate")
        tbs = self.tbs
        _, pos, _ = _tlv(tbs, 0)
        if tbs[pos] == 0xA0:
            _, pos = _element(tbs, pos)
        tag, s, e = _tlv(tbs, pos)
        if tag != _INTEGER:
            raise ValueError("serialNumber is not an INTEGER")
        self.serial = int.from_bytes(tbs[s:e], "big", signed=True)
        inner_alg, pos = _element(tbs, e)
        self.ecdsa_sha256 = alg == inner_alg == _ECDSA_SHA256_ALG
        self.issuer, pos = _element(tbs, pos)
        _, vs, ve = _tlv(tbs, pos)  # validity
        _, after = _element(tbs, vs)  # notBefore
        self.not_after = _time(tbs, after)
        self.subject, pos = _element(tbs, ve)
        spki, _ = _element(tbs, pos)
        self.p256_point = (
            spki[len(_P256_SPKI_PREFIX) :]
            if (spki.startswith(_P256_SPKI_PREFIX) and len(spki) == len(_P256_SPKI_PREFIX) + 65)
            else None
        )


def _time(data: bytes, pos: int) -> datetime:
    """UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), RFC 5280 §4.1.2.5."""
    tag, s, e = _tlv(data, pos)
    text = data[s:e].decode("ascii")
    if tag == 0x17 and len(text) == 13 and text.endswith("Z"):
        year = int(text[:2])
        year += 2000 if year < 50 else 1900
        rest = text[2:]
    elif tag == 0x18 and len(text) == 15 and text.endswith("Z"):
        year = int(text[:4])
        rest = text[4:]
    else:
        raise ValueError("unsupported time encoding")
    return datetime(
        year,
        int(rest[0:2]),
        int(rest[2:4]),
        int(rest[4:6]),
        int(rest[6:8]),
        int(rest[8:10]),
        tzinfo=UTC,
    )


_CRL_NUMBER_OID = b"\x06\x03\x55\x1d\x14"  # 2.5.29.20
_AKI_OID = b"\x06\x03\x55\x1d\x23"  # 2.5.29.35


class CrlFields:
    """What CRL checking reads, from the DER of a CRL cryptography has already loaded
    (RFC 5280 §5.1): TBS bytes, signature, issuer, thisUpdate, nextUpdate, and whether the
    CRL number and authority key identifier extensions are present."""

    __slots__ = (
        "ecdsa_sha256",
        "has_aki",
        "has_crl_number",
        "issuer",
        "next_update",
        "signature",
        "tbs",
        "this_update",
    )

    def __init__(self, der: bytes) -> None:
        self.tbs, alg, self.signature = _signed(der, "CertificateList")
        tbs = self.tbs
        _, pos, end = _tlv(tbs, 0)
        if tbs[pos] == _INTEGER:
            _, pos = _element(tbs, pos)
        inner_alg, pos = _element(tbs, pos)
        self.ecdsa_sha256 = alg == inner_alg == _ECDSA_SHA256_ALG
        self.issuer, pos = _element(tbs, pos)
        self.this_update = _time(tbs, pos)
        _, pos = _element(tbs, pos)
        self.next_update: datetime | None = None
        if pos < end and tbs[pos] in (0x17, 0x18):
            self.next_update = _time(tbs, pos)
            _, pos = _element(tbs, pos)
        if pos < end and tbs[pos] == _SEQUENCE:  # revokedCertificates
            _, pos = _element(tbs, pos)
        self.has_crl_number = self.has_aki = False
        if pos < end and tbs[pos] == 0xA0:  # [0] EXPLICIT Extensions
            _, s, _ = _tlv(tbs, pos)
            _, epos, eend = _tlv(tbs, s)
            while epos < eend:
                _, xs, xe = _tlv(tbs, epos)
                oid = tbs[xs : xs + 5]
                self.has_crl_number |= oid == _CRL_NUMBER_OID
                self.has_aki |= oid == _AKI_OID
                epos = xe
