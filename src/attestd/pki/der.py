"""Just enough DER (ITU-T X.690) to read names straight out of signed X.509 bytes.

Intel QVL compares issuer and subject names as raw DER (dcap.md §1.B step 10). Reading the raw
bytes from ``tbs_certificate_bytes`` / ``tbs_certlist_bytes`` is also much cheaper than building
cryptography's ``Name`` objects, which matters when a chain is verified cold. Only called on
structures cryptography has already parsed; still bounds-checked, raising ``ValueError``.
"""

from __future__ import annotations

from datetime import datetime

__all__ = ["CertFields", "CrlFields", "common_name"]

_SEQUENCE, _SET, _INTEGER = 0x30, 0x31, 0x02
_CN_OID = b"\x06\x03\x55\x04\x03"  # 2.5.4.3 commonName


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, value start, value end) of the element at ``pos``."""
    try:
        tag, first = data[pos], data[pos + 1]
    except IndexError:
        raise ValueError("truncated DER") from None
    if first < 0x80:
        start = pos + 2
        end = start + first
    else:
        n = first & 0x7F
        start = pos + 2 + n
        if not 0 < n <= 4 or start > len(data):
            raise ValueError("bad DER length")
        end = start + int.from_bytes(data[pos + 2 : start], "big")
    if end > len(data):
        raise ValueError("DER element overruns")
    return tag, start, end


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
    _, tbs_start, alg_pos = _tlv(der, pos)
    _, _, sig_pos = _tlv(der, alg_pos)
    tag, s, e = _tlv(der, sig_pos)
    if tag != 0x03 or s == e or der[s] != 0:
        raise ValueError(f"{what} signatureValue is not a BIT STRING")
    if tbs_start == alg_pos:
        raise ValueError(f"{what} TBS is empty")
    return der[pos:alg_pos], der[alg_pos:sig_pos], der[s + 1 : e]


_ECDSA_SHA256_ALG = bytes.fromhex("300a06082a8648ce3d040302")  # AlgorithmIdentifier, no params
_P256_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
_P256_SPKI_SIZE = len(_P256_SPKI_PREFIX) + 65


class CertFields:
    """What certificate verification reads, straight from the DER of an X.509 certificate
    (RFC 5280 §4.1) that cryptography has already loaded: the signed TBS bytes, the signature,
    issuer and subject names, serial number, notAfter, and the P-256 point (None for other keys)."""

    __slots__ = (
        "_after_spki",
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
        tbs, alg, self.signature = _signed(der, "Certificate")
        self.tbs = tbs
        _, pos, _ = _tlv(tbs, 0)
        if tbs[pos] == 0xA0:  # [0] EXPLICIT version
            pos = _tlv(tbs, pos)[2]
        tag, s, pos = _tlv(tbs, pos)
        if tag != _INTEGER:
            raise ValueError("serialNumber is not an INTEGER")
        self.serial = int.from_bytes(tbs[s:pos], "big", signed=True)
        end = _tlv(tbs, pos)[2]  # signature (AlgorithmIdentifier)
        self.ecdsa_sha256 = alg == tbs[pos:end] == _ECDSA_SHA256_ALG
        pos, end = end, _tlv(tbs, end)[2]
        self.issuer = tbs[pos:end]
        _, validity, pos = _tlv(tbs, end)
        self.not_after = _time(tbs, _tlv(tbs, validity)[2])[0]  # after notBefore
        end = _tlv(tbs, pos)[2]
        self.subject = tbs[pos:end]
        pos, end = end, _tlv(tbs, end)[2]
        self.p256_point = (
            tbs[pos + len(_P256_SPKI_PREFIX) : end]
            if end - pos == _P256_SPKI_SIZE and tbs.startswith(_P256_SPKI_PREFIX, pos)
            else None
        )
        self._after_spki = end

    def extension(self, oid: bytes) -> bytes | None:
        """The extnValue (OCTET STRING contents) of the extension whose OID has the DER body
        ``oid``, or None. RFC 5280 §4.1: issuerUniqueID [1] and subjectUniqueID [2] may follow
        the key, then extensions [3] EXPLICIT SEQUENCE OF SEQUENCE {extnID, critical BOOLEAN
        DEFAULT FALSE, extnValue OCTET STRING}; §4.2: no extension may appear twice."""
        tbs, pos = self.tbs, self._after_spki
        end = _tlv(tbs, 0)[2]
        while pos < end and tbs[pos] in (0x81, 0xA1, 0x82, 0xA2):  # unique IDs
            pos = _tlv(tbs, pos)[2]
        if pos >= end or tbs[pos] != 0xA3:
            return None
        _, s, _ = _tlv(tbs, pos)
        tag, pos, end = _tlv(tbs, s)
        if tag != _SEQUENCE:
            raise ValueError("extensions are not a SEQUENCE")
        seen, found = set(), None
        while pos < end:
            tag, xs, pos = _tlv(tbs, pos)
            otag, os_, oe = _tlv(tbs, xs)
            if tag != _SEQUENCE or otag != 0x06:
                raise ValueError("malformed extension")
            ext_oid = tbs[os_:oe]
            if ext_oid in seen:
                raise ValueError(f"duplicate extension {ext_oid.hex()}")
            seen.add(ext_oid)
            vtag, vs, ve = _tlv(tbs, oe)
            if vtag == 0x01:  # critical
                vtag, vs, ve = _tlv(tbs, ve)
            if vtag != 0x04 or ve != pos:
                raise ValueError("malformed extension value")
            if ext_oid == oid:
                found = tbs[vs:ve]
        return found


def _time(data: bytes, pos: int) -> tuple[datetime, int]:
    """UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), RFC 5280 §4.1.2.5, and the
    position after it."""
    tag, s, e = _tlv(data, pos)
    text = data[s : e - 1]
    if e - s == 13 and tag == 0x17:  # RFC 5280: YY >= 50 is 19YY
        text = (b"19" if text[:2] >= b"50" else b"20") + text
    elif e - s != 15 or tag != 0x18:
        raise ValueError("unsupported time encoding")
    if data[e - 1] != 0x5A or not text.isdigit():  # 'Z', and digits only
        raise ValueError("unsupported time encoding")
    # Basic ISO 8601 form; fromisoformat checks the ranges (month 13, second 60...).
    iso = text.decode("ascii")
    return datetime.fromisoformat(f"{iso[:8]}T{iso[8:]}+00:00"), e


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
        tbs, alg, self.signature = _signed(der, "CertificateList")
        self.tbs = tbs
        _, pos, end = _tlv(tbs, 0)
        if tbs[pos] == _INTEGER:  # version
            pos = _tlv(tbs, pos)[2]
        nxt = _tlv(tbs, pos)[2]  # signature (AlgorithmIdentifier)
        self.ecdsa_sha256 = alg == tbs[pos:nxt] == _ECDSA_SHA256_ALG
        pos, nxt = nxt, _tlv(tbs, nxt)[2]
        self.issuer = tbs[pos:nxt]
        self.this_update, pos = _time(tbs, nxt)
        self.next_update: datetime | None = None
        if pos < end and tbs[pos] in (0x17, 0x18):
            self.next_update, pos = _time(tbs, pos)
        if pos < end and tbs[pos] == _SEQUENCE:  # revokedCertificates
            pos = _tlv(tbs, pos)[2]
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
