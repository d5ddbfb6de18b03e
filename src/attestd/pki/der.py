"""Just enough DER (ITU-T X.690) to read names straight out of signed X.509 bytes.

Intel QVL compares issuer and subject names as raw DER (dcap.md §1.B step 10). Reading the raw
bytes from ``tbs_certificate_bytes`` / ``tbs_certlist_bytes`` is also much cheaper than building
cryptography's ``Name`` objects, which matters when a chain is verified cold. Only called on
structures cryptography has already parsed; still bounds-checked, raising ``ValueError``.
"""

from __future__ import annotations

__all__ = ["common_name", "crl_issuer", "tbs_issuer_subject"]

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


def tbs_issuer_subject(tbs: bytes) -> tuple[bytes, bytes]:
    """RFC 5280 §4.1: TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber,
    signature, issuer, validity, subject, ... }. Returns the DER of issuer and subject."""
    tag, pos, _ = _tlv(tbs, 0)
    if tag != _SEQUENCE:
        raise ValueError("TBSCertificate is not a SEQUENCE")
    if tbs[pos] == 0xA0:  # [0] EXPLICIT version
        _, pos = _element(tbs, pos)
    _, pos = _element(tbs, pos)  # serialNumber
    _, pos = _element(tbs, pos)  # signature AlgorithmIdentifier
    issuer, pos = _element(tbs, pos)
    _, pos = _element(tbs, pos)  # validity
    subject, _ = _element(tbs, pos)
    return issuer, subject


def crl_issuer(tbs: bytes) -> bytes:
    """RFC 5280 §5.1: TBSCertList ::= SEQUENCE { version OPTIONAL, signature, issuer, ... }."""
    tag, pos, _ = _tlv(tbs, 0)
    if tag != _SEQUENCE:
        raise ValueError("TBSCertList is not a SEQUENCE")
    if tbs[pos] == _INTEGER:
        _, pos = _element(tbs, pos)
    _, pos = _element(tbs, pos)  # signature AlgorithmIdentifier
    issuer, _ = _element(tbs, pos)
    return issuer


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
