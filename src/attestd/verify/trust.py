"""Certificate chains, CRLs and collateral signatures for DCAP verification (dcap.md §1.B-D),
verified once and remembered by the exact bytes verified.

Nothing here depends on the time: each verified object carries its validity windows, which
:mod:`attestd.verify.dcap` checks at every verification's time. Names are compared as raw DER, as
Intel QVL does; everything Intel signs is ECDSA P-256 with SHA-256, and nothing else is accepted.
"""

from __future__ import annotations

import binascii
import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec

from attestd.collateral.intel import (
    EnclaveIdentity,
    TcbInfo,
    TcbLevel,
    parse_enclave_identity,
    parse_tcb_info,
)
from attestd.collateral.source import CaType, DcapCollateral
from attestd.errors import (
    AttestdError,
    CollateralMalformed,
    CollateralRevoked,
    CollateralSignatureInvalid,
    CollateralUntrusted,
    InvalidCertificateChain,
    MalformedEvidence,
    UnsupportedEvidence,
    UntrustedCertificateChain,
)
from attestd.evidence.quote import CERT_TYPE_PCK_CERT_CHAIN, Quote
from attestd.pki.certs import (
    X509_LOAD_ERRORS,
    TrustAnchors,
    crl_der,
    ecdsa_p256_verify_raw,
    ecdsa_sha256_verify,
    spki_der,
)
from attestd.pki.der import CertFields, CrlFields, common_name
from attestd.pki.sgx_extension import SGX_EXTENSION_OID_DER, PckExtension, parse_pck_extension
from attestd.verify import tcb

__all__ = [
    "CACHE_LIMIT",
    "Cert",
    "PckChain",
    "TrustCache",
    "VerifiedCollateral",
    "Windows",
    "remember",
    "revoked",
]

CACHE_LIMIT = 4096
_FAR_PAST = datetime.min.replace(tzinfo=UTC)


class Cert:
    """A certificate with what verification reads from it, extracted once from its DER: raw
    names (compared byte for byte, as QVL does), common name, serial, notAfter, TBS bytes and
    signature, and the P-256 key (built on first use)."""

    __slots__ = ("_key", "cert", "cn", "der", "f")

    def __init__(self, der: bytes) -> None:
        self.der = der
        self.cert = x509.load_der_x509_certificate(der)  # full validation by cryptography
        self.f = CertFields(der)
        # RFC 5280 §4.1.2.2: positive. cryptography only warns (when warnings are errors, the
        # warning itself is caught as a load error by the caller).
        if self.f.serial <= 0:
            raise ValueError(f"serial number {self.f.serial} is not positive")
        self.cn = common_name(self.f.subject)
        self._key: ec.EllipticCurvePublicKey | bool | None = False

    @property
    def issuer(self) -> bytes:
        return self.f.issuer

    @property
    def subject(self) -> bytes:
        return self.f.subject

    @property
    def serial(self) -> int:
        return self.f.serial

    @property
    def key(self) -> ec.EllipticCurvePublicKey | None:
        """The P-256 public key, or None if the certificate has another or an invalid key."""
        if self._key is False:
            point = self.f.p256_point
            try:
                self._key = (
                    None
                    if point is None
                    else ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
                )
            except ValueError:
                self._key = None
        assert not isinstance(self._key, bool)
        return self._key

    def use_key(self, key: ec.EllipticCurvePublicKey) -> None:
        """Use an already built key object for this certificate's key (same SPKI)."""
        if self._key is False:
            self._key = key

    def window(self, prefix: str) -> tuple[str, datetime | None, datetime]:
        """Step 11: QVL checks only notAfter of certificates."""
        return (f"{prefix}:{self.cn}", None, self.f.not_after)


Window = tuple[str, datetime | None, datetime]


@dataclass(frozen=True, slots=True)
class Windows:
    """Validity windows of cached material, with their intersection precomputed."""

    items: tuple[Window, ...]
    max_start: datetime
    min_end: datetime

    @classmethod
    def of(cls, items: Sequence[Window]) -> Windows:
        starts = [s for _, s, _ in items if s is not None]
        return cls(tuple(items), max(starts, default=_FAR_PAST), min(e for _, _, e in items))


@dataclass(slots=True)
class Chain:
    certs: tuple[Cert, ...]
    windows: Windows


@dataclass(slots=True)
class PckChain:
    chain: Chain
    ext: PckExtension
    key: ec.EllipticCurvePublicKey
    ca: CaType
    issuer: bytes
    leaf_serial: int
    ca_serial: int
    leaf_der: bytes


@dataclass(slots=True)
class VerifiedCollateral:
    root_crl: x509.CertificateRevocationList
    pck_crl_issuer: bytes
    pck_crl: x509.CertificateRevocationList
    tcb_info: TcbInfo
    levels: tuple[TcbLevel, ...]
    qe_identity: EnclaveIdentity
    crl_chain_ca_serial: int
    windows: Windows


def remember(cache: Any, key: Any, value: Any = None) -> None:
    """Add to a bounded cache (a set, or a dict when ``value`` is given); cleared when full."""
    if len(cache) >= CACHE_LIMIT:
        cache.clear()
    if isinstance(cache, set):
        cache.add(key)
    else:
        cache[key] = value


def revoked(crl: x509.CertificateRevocationList, serial: int) -> bool:
    """Step 10: matching is by serial number only."""
    return crl.get_revoked_certificate_by_serial_number(serial) is not None


class TrustCache:
    """Chains, CRLs and collateral verified once and remembered by the exact bytes verified
    (steps 7-16 of dcap.md §1). Time-independent: validity windows are returned, not judged."""

    def __init__(self, anchors: TrustAnchors) -> None:
        self.anchors = anchors
        self._anchor_keys = anchors.public_keys
        self._anchors_read = _read_anchors(anchors)
        self._signed: set[tuple[bytes, bytes, bytes]] = set()
        self._pem: dict[bytes, tuple[Cert, ...]] = {}
        self._certs: dict[bytes, Cert] = {}
        self._pck: dict[bytes, PckChain] = {}
        self._collateral: dict[DcapCollateral, VerifiedCollateral] = {}

    def clear(self) -> None:
        for c in (self._signed, self._pem, self._certs, self._pck, self._collateral):
            c.clear()

    def _load_pem(self, data: bytes, what: str, error: type[AttestdError]) -> tuple[Cert, ...]:
        got = self._pem.get(data)
        if got is None:
            certs = []
            try:
                for block in _pem_blocks(data):
                    cert = self._certs.get(block)
                    if cert is None:
                        der = _pem_body(block)
                        cert = self._anchors_read.get(der) or Cert(der)
                        remember(self._certs, block, cert)
                    certs.append(cert)
            except X509_LOAD_ERRORS as exc:
                raise error(f"{what}: malformed certificate ({exc})") from exc
            if not certs:
                raise error(f"{what}: no PEM certificate")
            got = _leaf_first(certs)
            remember(self._pem, data, got)
        return got

    def _signed_by(self, child: Cert, issuer: Cert) -> bool:
        """Issuer name matches (raw DER) and the signature verifies with the issuer's key."""
        if child.issuer != issuer.subject:
            return False
        c = child.f
        issuer_key = issuer.key
        if issuer_key is None or not c.ecdsa_sha256:
            return False
        key = (c.tbs, c.signature, issuer.f.tbs)  # each bytes object hashes once
        if key in self._signed:
            return True
        if not ecdsa_sha256_verify(issuer_key, c.signature, c.tbs):
            return False
        remember(self._signed, key)
        return True

    def _anchored_root(self, root: Cert, what: str, untrusted: type[AttestdError]) -> None:
        """Steps 8-9: the root is self-signed and has the public key of a trust anchor."""
        if root is self._anchors_read.get(root.der):
            return  # the configured anchor itself, read (with its key) when configured
        if not self._signed_by(root, root):
            raise untrusted(f"{what}: root {root.cn!r} is not a valid self-signed certificate")
        if root.key is None or spki_der(root.key) not in self._anchor_keys:
            raise untrusted(
                f"{what}: root {root.cert.subject.rfc4514_string()} is not a trust anchor "
                f"(trusted: {self.anchors.describe()})"
            )

    def pck_chain(self, q: Quote, override: bytes | None) -> PckChain:
        cert = q.qe.certification
        embedded = override is None and cert.cert_type == CERT_TYPE_PCK_CERT_CHAIN
        if override is not None:
            data = override
        elif embedded:
            data = cert.data
        else:
            raise UnsupportedEvidence(
                f"certification data type {cert.cert_type} carries no PCK certificate chain; "
                "supply it (pck_chain)"
            )
        hit = self._pck.get(data)
        if hit is not None:
            return hit
        if embedded and not data.rstrip(b"\x00\r\n\t ").endswith(_PEM_END):
            cert.pem_chain()  # raises, naming the offset of what follows the last PEM block
        try:
            certs = self._load_pem(data, "PCK certificate chain", InvalidCertificateChain)
        except InvalidCertificateChain as exc:
            raise MalformedEvidence(
                "CertificationData", "pck_cert_chain", cert.offset, exc.message
            ) from exc
        # Step 7: exactly leaf, intermediate CA, root, with Intel's CN shapes.
        if len(certs) != 3:
            raise InvalidCertificateChain(f"PCK chain has {len(certs)} certificates, expected 3")
        leaf, ca, root = certs
        if "SGX Root CA" not in root.cn:
            raise InvalidCertificateChain(f"PCK chain root CN {root.cn!r} lacks 'SGX Root CA'")
        if "CA" not in ca.cn:
            raise InvalidCertificateChain(f"PCK chain intermediate CN {ca.cn!r} lacks 'CA'")
        if "SGX PCK Certificate" not in leaf.cn:
            raise InvalidCertificateChain(f"PCK leaf CN {leaf.cn!r} lacks 'SGX PCK Certificate'")
        # Steps 8-9.
        self._anchored_root(root, "PCK chain", UntrustedCertificateChain)
        if not self._signed_by(ca, root):
            raise InvalidCertificateChain(f"PCK chain: {ca.cn!r} is not signed by the root")
        if not self._signed_by(leaf, ca):
            raise InvalidCertificateChain(
                f"PCK chain: the PCK certificate is not signed by {ca.cn!r}"
            )
        try:
            ext_value = leaf.f.extension(SGX_EXTENSION_OID_DER)
        except ValueError as exc:
            raise InvalidCertificateChain(f"PCK certificate extensions: {exc}") from exc
        if ext_value is None:
            raise InvalidCertificateChain("PCK certificate lacks the SGX extension")
        ext = parse_pck_extension(ext_value)
        key = leaf.key
        if key is None:
            raise InvalidCertificateChain("PCK certificate key is not a valid P-256 key")
        ca_type: CaType = "platform" if "Platform" in ca.cn else "processor"
        if (ext.platform_instance_id is not None) != (ca_type == "platform"):
            raise InvalidCertificateChain(
                f"PCK certificate from {ca.cn!r} has {7 if ext.platform_instance_id else 5} SGX "
                "extension entries"
            )
        pck = PckChain(
            chain=Chain(certs, Windows.of([c.window("pck_chain") for c in (root, ca, leaf)])),
            ext=ext,
            key=key,
            ca=ca_type,
            issuer=leaf.issuer,
            leaf_serial=leaf.serial,
            ca_serial=ca.serial,
            leaf_der=leaf.f.tbs,
        )
        remember(self._pck, data, pck)
        return pck

    def _crl(
        self, data: bytes, issuer: Cert, item: str
    ) -> tuple[x509.CertificateRevocationList, bytes, datetime, datetime]:
        """Step 10: a CRL issued and signed by ``issuer``, with CRL number and AKI extensions."""
        try:  # no strict_x509() here: cryptography warns about nothing in a CRL it loads
            der = crl_der(data)
            crl = x509.load_der_x509_crl(der)
            f = CrlFields(der)
        except X509_LOAD_ERRORS as exc:
            raise CollateralMalformed(f"{item}: not a CRL in PEM, DER or hex-DER ({exc})") from exc
        if f.issuer != issuer.subject:
            raise CollateralUntrusted(
                f"{item}: issuer {common_name(f.issuer)!r} is not {issuer.cn!r}"
            )
        if not f.has_crl_number:
            raise CollateralMalformed(f"{item}: lacks the CRL number extension")
        if not f.has_aki:
            raise CollateralMalformed(f"{item}: lacks the authority key identifier extension")
        key = issuer.key
        if key is None or not f.ecdsa_sha256:
            raise CollateralSignatureInvalid(f"{item}: not signed with ECDSA P-256 SHA-256")
        if not ecdsa_sha256_verify(key, f.signature, f.tbs):
            raise CollateralSignatureInvalid(
                f"{item}: signature does not verify with {issuer.cn!r}"
            )
        if f.next_update is None:
            raise CollateralMalformed(f"{item}: no nextUpdate")
        return crl, f.issuer, f.this_update, f.next_update

    def _signing_chain(
        self, data: bytes, item: str, root_crl: x509.CertificateRevocationList
    ) -> tuple[Cert, list[tuple[str, datetime | None, datetime]]]:
        """Step 13: exactly 'Intel SGX TCB Signing' and the root; not revoked by the Root CRL."""
        certs = self._load_pem(data, item, CollateralMalformed)
        if len(certs) != 2:
            raise CollateralMalformed(f"{item}: {len(certs)} certificates, expected 2")
        signing, root = certs
        if "SGX TCB Signing" not in signing.cn:
            raise CollateralMalformed(f"{item}: CN {signing.cn!r} lacks 'SGX TCB Signing'")
        self._anchored_root(root, item, CollateralUntrusted)
        if not self._signed_by(signing, root):
            raise CollateralSignatureInvalid(f"{item}: {signing.cn!r} is not signed by the root")
        if revoked(root_crl, signing.serial):
            raise CollateralRevoked(f"{item}: {signing.cn!r} is revoked by the Root CA CRL")
        return signing, [signing.window(item), root.window(item)]

    def collateral(self, coll: DcapCollateral) -> VerifiedCollateral:
        hit = self._collateral.get(coll)
        if hit is not None:
            return hit
        windows: list[tuple[str, datetime | None, datetime]] = []
        # Step 10: PCK CRL issuer chain (intermediate CA, root) and the two CRLs.
        chain = self._load_pem(
            coll.pck_crl_issuer_chain, "pck_crl_issuer_chain", CollateralMalformed
        )
        if len(chain) != 2:
            raise CollateralMalformed(
                f"pck_crl_issuer_chain: {len(chain)} certificates, expected 2"
            )
        ca, root = chain
        self._anchored_root(root, "pck_crl_issuer_chain", CollateralUntrusted)
        if not self._signed_by(ca, root):
            raise CollateralSignatureInvalid(
                f"pck_crl_issuer_chain: {ca.cn!r} is not signed by the root"
            )
        windows += [ca.window("pck_crl_issuer_chain"), root.window("pck_crl_issuer_chain")]
        root_crl, _, start, end = self._crl(coll.root_ca_crl, root, "root_ca_crl")
        windows.append(("root_ca_crl", start, end))
        pck_crl, pck_crl_issuer, start, end = self._crl(coll.pck_crl, ca, "pck_crl")
        windows.append(("pck_crl", start, end))
        # Steps 12-15: TCB Info, signed over its exact bytes by the TCB Signing key.
        info = parse_tcb_info(coll.tcb_info)
        signing, w = self._signing_chain(
            coll.tcb_info_issuer_chain, "tcb_info_issuer_chain", root_crl
        )
        windows += w
        if not _verify_json(signing, info.signature, info.signed_bytes):
            raise CollateralSignatureInvalid(
                "tcb_info: signature does not verify over the tcbInfo bytes as received"
            )
        windows.append(("tcb_info", None, info.next_update))  # step 15: nextUpdate only
        # Step 16: QE Identity, likewise.
        ident = parse_enclave_identity(coll.qe_identity)
        signing, w = self._signing_chain(
            coll.qe_identity_issuer_chain, "qe_identity_issuer_chain", root_crl
        )
        windows += w
        if not _verify_json(signing, ident.signature, ident.signed_bytes):
            raise CollateralSignatureInvalid(
                "qe_identity: signature does not verify over the enclaveIdentity bytes as received"
            )
        windows.append(("qe_identity", None, ident.next_update))
        vc = VerifiedCollateral(
            root_crl=root_crl,
            pck_crl_issuer=pck_crl_issuer,
            pck_crl=pck_crl,
            tcb_info=info,
            levels=tcb.sorted_levels(info),
            qe_identity=ident,
            crl_chain_ca_serial=ca.serial,
            windows=Windows.of(windows),
        )
        remember(self._collateral, coll, vc)
        return vc


@functools.cache
def _read_anchors(anchors: TrustAnchors) -> dict[bytes, Cert]:
    """DER of each EC trust anchor -> its :class:`Cert`, read once per anchor set: a chain that
    embeds the anchor itself (byte for byte) reuses it, as it reuses the anchor's key."""
    out = {}
    for der, key in anchors.anchor_keys.items():
        cert = Cert(der)
        cert.use_key(key)
        out[der] = cert
    return out


def _verify_json(signer: Cert, signature: bytes, data: bytes) -> bool:
    return signer.key is not None and ecdsa_p256_verify_raw(signer.key, signature, data)


def p256_key(cert: x509.Certificate) -> ec.EllipticCurvePublicKey | None:
    """The certificate's P-256 public key, or None if it has another or an invalid one."""
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return None
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
        return key
    return None


def _leaf_first(certs: Sequence[Cert]) -> tuple[Cert, ...]:
    """Order a chain leaf first (Intel sends it so; some tools write the root first). A chain
    that is not a single path is returned as given and fails the checks that follow."""
    for a, b in itertools.pairwise(certs):
        if a.issuer != b.subject:
            break
    else:
        return tuple(certs)  # already leaf first: the common case
    roots = [c for c in certs if c.issuer == c.subject]
    if len(roots) != 1:
        return tuple(certs)
    ordered = [roots[0]]
    rest = [c for c in certs if c is not roots[0]]
    while rest:
        nxt = [c for c in rest if c.issuer == ordered[-1].subject]
        if len(nxt) != 1:
            return tuple(certs)
        ordered.append(nxt[0])
        rest.remove(nxt[0])
    return tuple(reversed(ordered))


_PEM_BEGIN, _PEM_END = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"


def _pem_blocks(data: bytes) -> list[bytes]:
    """The PEM certificate blocks of ``data``, each as its exact text. RFC 7468 §2: the
    encapsulation boundaries start a line; a marker inside other text (``------BEGIN``) is not
    one, so that block is skipped, as cryptography's own PEM reader skips it."""
    out, pos = [], 0
    while (i := data.find(_PEM_BEGIN, pos)) >= 0:
        j = data.find(_PEM_END, i)
        if j < 0:
            break
        pos = j + len(_PEM_END)
        if i == 0 or data[i - 1] in b"\n\r":
            out.append(data[i:pos])
    return out


def _pem_body(block: bytes) -> bytes:
    """The DER inside one PEM certificate block (RFC 7468: base64, whitespace allowed)."""
    body = block[len(_PEM_BEGIN) : -len(_PEM_END)]
    return binascii.a2b_base64(body.translate(None, b" \t\r\n"), strict_mode=True)
