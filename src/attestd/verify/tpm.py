"""TPM 2.0 quote verification: the attestation key's signature, TPM_GENERATED, the nonce and the
PCR digest. The event log is not replayed here.

:func:`verify_quote` follows what a TPM does in ``TPM2_Quote`` (TPM 2.0 Library Part 3 §18.4) and
undoes it, step by step:

1. The AK signed ``H_sig(TPMS_ATTEST)`` with its scheme (Part 1 §11.4.7 / Annex B). RSASSA is
   PKCS #1 v1.5. RSAPSS: the reference implementation's ``PssEncode`` (Part 4 ``CryptRsa.c``;
   libtpms, swtpm, current firmware TPMs) uses the FIPS 186-4 salt length = the digest length
   (capped at ``emLen - hLen - 2``), while TPMs built on the earlier reference code used the
   *maximum* salt length ``emLen - hLen - 2``; both are accepted, digest length first. ECDSA
   signatures are (r, s) over the digest.
2. ``magic`` must be ``TPM_GENERATED_VALUE``: a *restricted* signing key only signs data that
   starts with it when the TPM produced the data itself (Part 1, restricted signing keys and
   ``TPM_GENERATED``; Part 3 ``TPM2_Sign`` refuses such digests). If the AK
   is given as a ``TPMT_PUBLIC`` it must therefore be restricted and sign; a bare
   ``cryptography`` key is the caller's word that it is such an AK.
3. ``type`` must be ``TPM_ST_ATTEST_QUOTE``: a certify or creation attestation signed by the same
   AK is not a quote.
4. ``extraData`` must equal the verifier's qualifying data (nonce), compared in constant time.
5. ``pcrDigest`` must equal ``H_sig(PCR[sel_0][0] || ... )``: the selected PCR values, bank by bank
   in ``pcrSelect`` order and PCRs ascending, hashed with the hash algorithm of the signing
   scheme, as ``TPM2_Quote`` computes it.

Only the PCRs the quote selected come back, in :class:`VerifiedQuote`; other supplied values
are ignored. Everything raises: a returned value is a verified quote.

:func:`verify_certification` undoes ``TPM2_Certify`` the same way (steps 1-2, then the type
``TPM_ST_ATTEST_CERTIFY`` and the certified object's Name), for keys bound to an AK.

Error classes (all :class:`VerificationError`, HTTP-mapped like it, ``code`` unchanged):
:class:`InvalidQuoteSignature` (from :mod:`attestd.errors`), :class:`AttestNotTpmGenerated`,
:class:`AttestNotQuote`, :class:`QualifyingDataMismatch`, :class:`PcrDigestMismatch`,
:class:`KeyNotCertified`.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from attestd.errors import (
    AttestNotQuote,
    AttestNotTpmGenerated,
    EvidenceError,
    InvalidQuoteSignature,
    KeyNotCertified,
    PcrDigestMismatch,
    QualifyingDataMismatch,
    UnsupportedEvidence,
    VerificationError,
)
from attestd.evidence.tpm import (
    HASH_DIGEST_SIZES,
    TPM_GENERATED_VALUE,
    Attest,
    AttestHeader,
    CertifyAttest,
    ObjectAttribute,
    PcrSelection,
    Public,
    Signature,
    TpmAlg,
    TpmSt,
    alg_name,
    hash_algorithm,
    hash_digest,
    parse_attest,
    parse_attest_header,
    parse_certify,
    parse_signature,
)

__all__ = [
    "AkPublic",
    "AttestNotQuote",
    "AttestNotTpmGenerated",
    "KeyNotCertified",
    "PcrDigestMismatch",
    "QualifyingDataMismatch",
    "VerifiedQuote",
    "verify_certification",
    "verify_quote",
]

AkPublic = Public | rsa.RSAPublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True, slots=True)
class VerifiedQuote:
    """A quote whose signature, magic, type, nonce and PCR digest verified.

    ``pcrs[alg][index]`` holds exactly the PCRs the quote selected (``alg`` a ``TPM_ALG_ID``),
    in selection order; ``hash_alg`` is the signature's (and ``pcrDigest``'s) hash.
    """

    attest: Attest
    signature: Signature
    hash_alg: int
    pcrs: Mapping[int, Mapping[int, bytes]]


def verify_quote(
    attest_bytes: bytes,
    signature: bytes | Signature,
    ak_public: AkPublic,
    *,
    pcr_values: Mapping[int, Mapping[int, bytes]],
    qualifying_data: bytes,
) -> VerifiedQuote:
    """Verify a TPM 2.0 quote and return the PCR values it vouches for.

    Args:
        attest_bytes: the ``TPMS_ATTEST`` exactly as signed (``tpm2_quote -m``).
        signature: a ``TPMT_SIGNATURE`` (``tpm2_quote -s``), marshalled or parsed.
        ak_public: the attestation key, as a parsed ``TPMT_PUBLIC`` (checked to be a restricted
            signing key whose scheme matches the signature) or a ``cryptography`` public key.
            Whether this AK is trustworthy (credential activation, AK certificate) is the
            caller's concern.
        pcr_values: ``{TPM_ALG_ID: {pcr index: digest}}``, e.g. :attr:`PcrBlob.values`; must
            contain every PCR the quote selected.
        qualifying_data: the nonce the verifier sent (``extraData``); ``b""`` if none.

    Raises:
        InvalidQuoteSignature: the signature does not verify with ``ak_public``.
        AttestNotTpmGenerated, AttestNotQuote, QualifyingDataMismatch, PcrDigestMismatch,
            VerificationError: see the module docstring.
        MalformedEvidence: the signature, attest or AK bytes do not parse.
        UnsupportedEvidence: a signature scheme, hash or curve this verifier does not implement.
    """
    sig = _signed_by_ak(attest_bytes, signature, ak_public)
    try:
        attest = parse_attest(attest_bytes)
    except EvidenceError:
        # Steps 2 and 3 judged on the common header, so that a signed non-quote is a
        # verification failure rather than an unsupported structure.
        _generated_as(attest_bytes, TpmSt.ATTEST_QUOTE, AttestNotQuote)
        raise
    _tpm_generated(attest)

    # Step 4: freshness.
    if not hmac.compare_digest(attest.extra_data, qualifying_data):
        raise QualifyingDataMismatch(
            "TPMS_ATTEST.extraData does not match the qualifying data (nonce): "
            f"{len(attest.extra_data)} bytes quoted, {len(qualifying_data)} expected"
        )

    # Step 5: the PCR values the quote selected, hashed in selection order.
    selection = attest.attested.pcr_select
    selected = _selected_values(selection, pcr_values)
    digest = hash_digest(sig.hash_alg, b"".join(v for bank in selected for _, v in bank[1]))
    if not hmac.compare_digest(digest, attest.attested.pcr_digest):
        described = " ".join(s.describe() for s in selection)
        raise PcrDigestMismatch(
            f"pcrDigest does not match the PCR values of selection {described} "
            f"({alg_name(sig.hash_alg)} over the values in selection order)",
            selection=described,
        )
    pcrs: dict[int, dict[int, bytes]] = {}
    for alg, values in selected:
        pcrs.setdefault(alg, {}).update(values)
    return VerifiedQuote(
        attest,
        sig,
        sig.hash_alg,
        MappingProxyType({alg: MappingProxyType(v) for alg, v in pcrs.items()}),
    )


def verify_certification(
    attest_bytes: bytes,
    signature: bytes | Signature,
    ak_public: AkPublic,
    *,
    certified: Public,
) -> CertifyAttest:
    """Verify a ``TPM2_Certify`` result (TPM 2.0 Part 3 §18.2): the AK signed a
    ``TPMS_CERTIFY_INFO`` naming ``certified``, i.e. that object is loaded in the AK's TPM.

    Checks, in order: the signature over the exact bytes (the AK checked as for quotes);
    ``magic`` is ``TPM_GENERATED_VALUE``; ``type`` is ``TPM_ST_ATTEST_CERTIFY``;
    ``attested.name`` is ``certified.name()`` (``nameAlg || H(TPMT_PUBLIC)``, so every field
    of the public area, attributes included, is covered). ``extraData`` is the caller's to
    judge. Raises :class:`InvalidQuoteSignature`, :class:`AttestNotTpmGenerated` or
    :class:`KeyNotCertified`."""
    _signed_by_ak(attest_bytes, signature, ak_public)
    _generated_as(attest_bytes, TpmSt.ATTEST_CERTIFY, KeyNotCertified)
    attest = parse_certify(attest_bytes)
    if not hmac.compare_digest(attest.attested.name, certified.name()):
        raise KeyNotCertified(
            f"the certification names the object {attest.attested.name.hex()}, not the key sent "
            f"(Name {certified.name().hex()})"
        )
    return attest


def _signed_by_ak(
    attest_bytes: bytes, signature: bytes | Signature, ak_public: AkPublic
) -> Signature:
    """Step 1 (module docstring): the AK's signature over the exact bytes, before anything in
    them is believed."""
    sig = signature if isinstance(signature, Signature) else parse_signature(signature)
    if isinstance(ak_public, Public):
        _check_ak(ak_public, sig)
        key = ak_public.public_key()
    else:
        key = ak_public
    _verify_signature(key, sig, attest_bytes)
    return sig


def _tpm_generated(header: AttestHeader) -> None:
    """Step 2: ``magic``."""
    if header.magic != TPM_GENERATED_VALUE:
        raise AttestNotTpmGenerated(
            f"TPMS_ATTEST.magic is 0x{header.magic:08x}, not TPM_GENERATED_VALUE "
            f"0x{TPM_GENERATED_VALUE:08x}"
        )


def _generated_as(attest_bytes: bytes, tag: TpmSt, error: type[VerificationError]) -> None:
    """Steps 2 and 3 on the common header: ``magic`` (else :class:`AttestNotTpmGenerated`),
    then ``type`` is ``tag`` (else ``error``)."""
    header = parse_attest_header(attest_bytes)
    _tpm_generated(header)
    if header.type != tag:
        raise error(f"TPMS_ATTEST.type is 0x{header.type:04x}, not TPM_ST_{tag.name} 0x{tag:04x}")


def _check_ak(ak: Public, sig: Signature) -> None:
    needed = ObjectAttribute.RESTRICTED | ObjectAttribute.SIGN_ENCRYPT
    if not ak.has(needed):
        raise VerificationError(
            f"the AK is not a restricted signing key (objectAttributes "
            f"0x{ak.object_attributes:08x}): its signature does not show the TPM generated the quote"
        )
    scheme = ak.parameters.scheme
    if scheme.scheme != TpmAlg.NULL and (scheme.scheme, scheme.hash_alg) != (
        sig.sig_alg,
        sig.hash_alg,
    ):
        raise InvalidQuoteSignature(
            f"signature is {alg_name(sig.sig_alg)}/{alg_name(sig.hash_alg)} but the AK's scheme "
            f"is {alg_name(scheme.scheme)}/{alg_name(scheme.hash_alg)}"
        )


def _verify_signature(
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey, sig: Signature, data: bytes
) -> None:
    what = f"{alg_name(sig.sig_alg)}/{alg_name(sig.hash_alg)}"
    if sig.sig_alg not in (TpmAlg.RSASSA, TpmAlg.RSAPSS, TpmAlg.ECDSA):
        raise UnsupportedEvidence(f"TPM signature scheme {alg_name(sig.sig_alg)} is not supported")
    algorithm = hash_algorithm(sig.hash_alg)
    try:
        if sig.sig_alg == TpmAlg.ECDSA:
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise InvalidQuoteSignature(f"{what} signature, but the AK is not an ECC key")
            der = encode_dss_signature(int.from_bytes(sig.r, "big"), int.from_bytes(sig.s, "big"))
            key.verify(der, data, ec.ECDSA(algorithm))
            return
        if not isinstance(key, rsa.RSAPublicKey):
            raise InvalidQuoteSignature(f"{what} signature, but the AK is not an RSA key")
        if sig.sig_alg == TpmAlg.RSASSA:
            key.verify(sig.signature, data, padding.PKCS1v15(), algorithm)
            return
        # Exact lengths: cryptography's PSS.MAX_LENGTH means "any length" when verifying.
        max_salt = (key.key_size + 6) // 8 - algorithm.digest_size - 2  # emLen - hLen - 2
        for salt in dict.fromkeys((min(algorithm.digest_size, max_salt), max_salt)):
            try:
                key.verify(
                    sig.signature,
                    data,
                    padding.PSS(mgf=padding.MGF1(algorithm), salt_length=salt),
                    algorithm,
                )
                return
            except (InvalidSignature, ValueError):
                continue
        raise InvalidSignature
    except UnsupportedAlgorithm as exc:
        raise UnsupportedEvidence(f"{what} signatures are not available here") from exc
    except (InvalidSignature, ValueError) as exc:
        raise InvalidQuoteSignature(
            f"the {what} signature over TPMS_ATTEST does not verify with the AK"
        ) from exc


def _selected_values(
    selection: tuple[PcrSelection, ...], pcr_values: Mapping[int, Mapping[int, bytes]]
) -> list[tuple[int, list[tuple[int, bytes]]]]:
    out = []
    for sel in selection:
        bank = pcr_values.get(sel.hash_alg, {})
        size = HASH_DIGEST_SIZES[sel.hash_alg]
        values = []
        for pcr in sel.pcrs:
            value = bank.get(pcr)
            if value is None:
                raise VerificationError(
                    f"the quote selects {alg_name(sel.hash_alg)} PCR {pcr}, but no value was given"
                )
            if len(value) != size:
                raise VerificationError(
                    f"{alg_name(sel.hash_alg)} PCR {pcr} value has {len(value)} bytes, "
                    f"expected {size}"
                )
            values.append((pcr, bytes(value)))
        out.append((sel.hash_alg, values))
    return out
