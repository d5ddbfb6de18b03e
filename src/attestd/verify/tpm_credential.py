"""TPM 2.0 ``MakeCredential`` off the TPM: the verifier's half of credential activation.

A verifier that trusts an endorsement key (EK, from its certificate) but not yet an attestation
key (AK) wraps a secret so that only the TPM holding that EK can recover it, and only into the
AK whose Name it was made for (``TPM2_ActivateCredential``, TPM 2.0 Library Part 3 §12.5). A
client that returns the secret has proved the AK lives next to the EK. :func:`make_credential`
computes what ``TPM2_MakeCredential`` (Part 3 §12.6) would, following Part 1 §24 ("Credential
Protection"):

1. A ``seed`` is shared with the EK (Part 1 "Secret Sharing", label ``"IDENTITY"``):

   * RSA EK (Part 1 Annex B, RSA secret sharing): ``seed`` is random, the size of the EK's ``nameAlg`` digest;
     ``encryptedSecret`` = RSAES-OAEP(EK, seed), hash and MGF1 with ``nameAlg``, OAEP label
     ``"IDENTITY\\0"``.
   * ECC EK (Part 1 Annex C, ECC secret sharing: one-pass Diffie-Hellman ``C(1e, 1s, ECC
     CDH)``): an ephemeral
     key pair on the EK's curve; ``Z`` = x-coordinate of ``d_e * Q_EK``; ``seed`` =
     ``KDFe(nameAlg, Z, "IDENTITY", x_e, x_EK, digest bits)``; ``encryptedSecret`` = the
     ephemeral public point as a marshalled ``TPMS_ECC_POINT``.

   The EK's own scheme is ignored: a restricted decryption key (every EK) has none, and the TPM
   uses OAEP/ECDH with ``nameAlg`` for secret sharing.

2. ``symKey`` = ``KDFa(nameAlg, seed, "STORAGE", akName, "", EK symmetric keyBits)`` and
   ``HMACkey`` = ``KDFa(nameAlg, seed, "INTEGRITY", "", "", digest bits)`` (Part 1 §24.4, §24.5).
3. ``encIdentity`` = ``AES-CFB(symKey, IV = 0)`` of the marshalled ``TPM2B_DIGEST`` credential
   (its size field is encrypted too).
4. ``outerHMAC`` = ``HMAC_nameAlg(HMACkey, encIdentity || akName)``.
5. ``credentialBlob`` (``TPM2B_ID_OBJECT``) = ``size || TPM2B_DIGEST(outerHMAC) || encIdentity``.

``KDFa`` is Part 1 §11.4.10.2 (SP 800-108 counter mode with HMAC), ``KDFe`` Part 1 §11.4.10.3
(SP 800-56A concatenation KDF with the hash); both take the label with its terminating NUL.

Only the EK *public* area is needed; the EK must be a restricted decryption (storage) key whose
symmetric definition is AES in CFB mode, as every TCG EK template is. The result is checked
nowhere here: the TPM checks it (integrity HMAC over the AK Name) when it activates.

tpm2-tools (``tpm2_makecredential`` / ``tpm2_activatecredential``, 4.x and 5.x) stores the pair
in its own file: the big-endian magic ``0xBADCC0DE``, a big-endian ``UINT32`` version 1, then the
marshalled ``TPM2B_ID_OBJECT`` and ``TPM2B_ENCRYPTED_SECRET``
(:func:`write_tpm2_tools_credential`, :func:`parse_tpm2_tools_credential`).

Errors: key material or a Name the client supplied that does not parse is
:class:`MalformedEvidence`; an EK that is not a credential protector is
:class:`VerificationError`; algorithms this module (or ``cryptography``) cannot compute are
:class:`UnsupportedEvidence`; the verifier's own inputs out of bounds (an empty or too long
secret, a seed of the wrong size, a KDF asked for no bits) are :class:`ConfigurationError`.
"""

from __future__ import annotations

import os

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from attestd._binary import Reader
from attestd.errors import (
    ConfigurationError,
    MalformedEvidence,
    UnsupportedEvidence,
    VerificationError,
)
from attestd.evidence.tpm import (
    HASH_DIGEST_SIZES,
    EccPoint,
    ObjectAttribute,
    Public,
    TpmAlg,
    alg_name,
    hash_algorithm,
)

__all__ = [
    "TPM2_TOOLS_CREDENTIAL_MAGIC",
    "TPM2_TOOLS_CREDENTIAL_VERSION",
    "kdfa",
    "kdfe",
    "make_credential",
    "parse_id_object",
    "parse_tpm2_tools_credential",
    "share_seed",
    "write_tpm2_tools_credential",
]

#: tpm2-tools' ``files_write_header`` magic (big-endian) at the start of its credential file.
TPM2_TOOLS_CREDENTIAL_MAGIC = 0xBADCC0DE
#: The only credential file version tpm2-tools writes and reads.
TPM2_TOOLS_CREDENTIAL_VERSION = 1

_IDENTITY = b"IDENTITY"
_STORAGE = b"STORAGE"
_INTEGRITY = b"INTEGRITY"

# Part 2 buffer maxima: TPM2B_DIGEST holds sizeof(TPMU_HA) = 64 bytes; TPM2B_ID_OBJECT holds a
# TPMS_ID_OBJECT (two TPM2B_DIGESTs, 2 x 66 bytes); TPM2B_ENCRYPTED_SECRET holds
# sizeof(TPMU_ENCRYPTED_SECRET), the largest of an RSA-4096 ciphertext (512 bytes) and a
# TPMS_ECC_POINT of the largest curve (2 x (2 + 80) bytes), as in attestd.evidence.tpm.
_MAX_DIGEST = 64
_MAX_ID_OBJECT = 2 * (2 + _MAX_DIGEST)
_MAX_ENCRYPTED_SECRET = 512
_MAX_KDF_BITS = 0xFFFF * 8  # every TPM2B the TPM derives into fits a UINT16 size

_AES_KEY_BITS = frozenset({128, 192, 256})


# --- KDFs ---


def _label(label: bytes | str) -> bytes:
    """The label as the KDFs hash it: with one terminating NUL (Part 1 §11.4.10.2: "if the
    label does not end in a 0, one is added")."""
    raw = label.encode("ascii") if isinstance(label, str) else bytes(label)
    return raw if raw.endswith(b"\x00") else raw + b"\x00"


def _check_bits(bits: int) -> None:
    if not 0 < bits <= _MAX_KDF_BITS:
        raise ConfigurationError(f"a KDF output of {bits} bits is outside 1..{_MAX_KDF_BITS}")


def _truncate(stream: bytes, bits: int) -> bytes:
    """The first ``ceil(bits / 8)`` bytes, the unused high bits of the first byte cleared (the
    TPM's convention: the value is right-aligned)."""
    out = bytearray(stream[: (bits + 7) // 8])
    if bits % 8:
        out[0] &= (1 << (bits % 8)) - 1
    return bytes(out)


def _hmac(hash_alg: int, key: bytes, *parts: bytes) -> bytes:
    try:
        h = hmac.HMAC(key, hash_algorithm(hash_alg))
    except UnsupportedAlgorithm as exc:
        raise UnsupportedEvidence(f"HMAC-{alg_name(hash_alg)} is not available here") from exc
    for part in parts:
        h.update(part)
    return h.finalize()


def _hash(hash_alg: int, *parts: bytes) -> bytes:
    try:
        h = hashes.Hash(hash_algorithm(hash_alg))
    except UnsupportedAlgorithm as exc:
        raise UnsupportedEvidence(f"TPM hash {alg_name(hash_alg)} is not available here") from exc
    for part in parts:
        h.update(part)
    return h.finalize()


def kdfa(
    hash_alg: int,
    key: bytes,
    label: bytes | str,
    context_u: bytes,
    context_v: bytes,
    bits: int,
) -> bytes:
    """``KDFa`` (TPM 2.0 Part 1 §11.4.10.2): SP 800-108 KDF in counter mode with
    ``HMAC_hash_alg(key, ...)`` as the PRF.

    Block ``i`` (from 1) is ``HMAC(key, [i]_32 || label || 0x00 || contextU || contextV ||
    [bits]_32)``; the result is the first ``ceil(bits / 8)`` bytes with the unused high bits of
    the first byte cleared.

    Raises:
        ConfigurationError: ``bits`` outside ``1..524280``.
        UnsupportedEvidence: ``hash_alg`` is no hash this platform computes.
    """
    _check_bits(bits)
    fixed = _label(label) + bytes(context_u) + bytes(context_v) + bits.to_bytes(4, "big")
    size = HASH_DIGEST_SIZES.get(hash_alg)
    if size is None:
        raise UnsupportedEvidence(f"KDFa with {alg_name(hash_alg)}: not a hash algorithm")
    blocks = (bits + 8 * size - 1) // (8 * size)
    stream = b"".join(
        _hmac(hash_alg, bytes(key), i.to_bytes(4, "big"), fixed) for i in range(1, blocks + 1)
    )
    return _truncate(stream, bits)


def kdfe(
    hash_alg: int,
    z: bytes,
    label: bytes | str,
    party_u: bytes,
    party_v: bytes,
    bits: int,
) -> bytes:
    """``KDFe`` (TPM 2.0 Part 1 §11.4.10.3): the SP 800-56A concatenation KDF.

    Block ``i`` (from 1) is ``H(i_32 || Z || label || 0x00 || PartyUInfo || PartyVInfo)``;
    truncated like :func:`kdfa`.

    Raises:
        ConfigurationError: ``bits`` outside ``1..524280``.
        UnsupportedEvidence: ``hash_alg`` is no hash this platform computes.
    """
    _check_bits(bits)
    size = HASH_DIGEST_SIZES.get(hash_alg)
    if size is None:
        raise UnsupportedEvidence(f"KDFe with {alg_name(hash_alg)}: not a hash algorithm")
    other = _label(label) + bytes(party_u) + bytes(party_v)
    blocks = (bits + 8 * size - 1) // (8 * size)
    stream = b"".join(
        _hash(hash_alg, i.to_bytes(4, "big"), bytes(z), other) for i in range(1, blocks + 1)
    )
    return _truncate(stream, bits)


# --- secret sharing (Part 1 §11.4.10, Annex B.10.3, Annex C.6.4) ---


def _name_alg(ek: Public) -> tuple[int, int]:
    """The EK's nameAlg and its digest size; UnsupportedEvidence if it has none."""
    size = HASH_DIGEST_SIZES.get(ek.name_alg)
    if size is None:
        raise UnsupportedEvidence(
            f"EK nameAlg is {alg_name(ek.name_alg)}: secret sharing needs a hash algorithm"
        )
    return ek.name_alg, size


def _check_protector(ek: Public) -> tuple[int, int, int]:
    """That ``ek`` can protect a credential, as ``TPM2_MakeCredential`` checks its ``handle``
    (an asymmetric, restricted decryption key) and as a storage key's symmetric definition must
    be (Part 2 ``TPMS_ASYM_PARMS``: a restricted decryption key has a symmetric algorithm in
    CFB mode). Returns (nameAlg, digest size, AES key bits)."""
    name_alg, size = _name_alg(ek)
    if not (ek.has(ObjectAttribute.RESTRICTED) and ek.has(ObjectAttribute.DECRYPT)):
        raise VerificationError(
            "EK public area is not a restricted decryption key "
            f"(objectAttributes 0x{ek.object_attributes:08x}): it cannot protect a credential"
        )
    if ek.has(ObjectAttribute.SIGN_ENCRYPT):
        raise VerificationError(
            "EK public area is a restricted key with both sign and decrypt set: "
            "it cannot protect a credential"
        )
    params = ek.parameters
    sym = params.symmetric
    if sym.algorithm == TpmAlg.NULL:
        raise VerificationError(
            "EK public area has no symmetric algorithm: a restricted decryption key must have one"
        )
    if sym.mode != TpmAlg.CFB:
        raise VerificationError(
            f"EK symmetric mode is {alg_name(sym.mode)}: a restricted decryption key uses CFB"
        )
    if sym.algorithm != TpmAlg.AES:
        raise UnsupportedEvidence(
            f"EK symmetric algorithm {alg_name(sym.algorithm)}-{sym.key_bits} is not supported "
            "(only AES)"
        )
    if sym.key_bits not in _AES_KEY_BITS:
        raise VerificationError(f"EK symmetric AES key size {sym.key_bits} is not 128, 192 or 256")
    return name_alg, size, sym.key_bits


def _rsa_share(ek: Public, key: rsa.RSAPublicKey, label: bytes, seed: bytes) -> bytes:
    name_alg, _ = _name_alg(ek)
    h = hash_algorithm(name_alg)
    try:
        return key.encrypt(seed, padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=label))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise UnsupportedEvidence(
            f"RSA-OAEP with {alg_name(name_alg)} to a {key.key_size}-bit EK: {exc}"
        ) from exc


def _ecc_point(x: bytes, y: bytes) -> bytes:
    """A marshalled ``TPMS_ECC_POINT`` (Part 2 §11.2.5.2)."""
    return len(x).to_bytes(2, "big") + x + len(y).to_bytes(2, "big") + y


def _ecc_share(
    ek: Public,
    key: ec.EllipticCurvePublicKey,
    label: bytes,
    ephemeral: ec.EllipticCurvePrivateKey | None,
) -> tuple[bytes, bytes]:
    name_alg, size = _name_alg(ek)
    unique = ek.unique
    if not isinstance(unique, EccPoint):  # pragma: no cover - public_key() checked the type
        raise UnsupportedEvidence("EK public area is not an ECC key")
    if ephemeral is None:
        ephemeral = ec.generate_private_key(key.curve)
    elif ephemeral.curve.name != key.curve.name:
        raise ConfigurationError(
            f"ephemeral key is on {ephemeral.curve.name}, the EK on {key.curve.name}"
        )
    coordinate = (key.curve.key_size + 7) // 8
    point = ephemeral.public_key().public_numbers()
    x_e = point.x.to_bytes(coordinate, "big")
    y_e = point.y.to_bytes(coordinate, "big")
    z = ephemeral.exchange(ec.ECDH(), key)  # the x-coordinate of d_e * Q_EK, field-size bytes
    seed = kdfe(name_alg, z, label, x_e, unique.x, 8 * size)
    return seed, _ecc_point(x_e, y_e)


def share_seed(
    ek_public: Public,
    label: bytes | str = _IDENTITY,
    *,
    seed: bytes | None = None,
    ephemeral_key: ec.EllipticCurvePrivateKey | None = None,
) -> tuple[bytes, bytes]:
    """Share a seed with the TPM holding ``ek_public`` (Part 1 "Secret Sharing", Annexes B and C).

    Returns ``(seed, secret)``: ``secret`` is the *content* of the ``TPM2B_ENCRYPTED_SECRET``
    (no size field), the OAEP ciphertext for RSA or the marshalled ephemeral
    ``TPMS_ECC_POINT`` for ECC. The seed is ``nameAlg``-digest sized.

    ``seed`` (RSA only) and ``ephemeral_key`` (ECC only) replace the randomness, for tests and
    known-answer vectors; RSA-OAEP still draws its own random padding.

    Raises:
        ConfigurationError: ``seed`` of the wrong size or given for an ECC EK;
            ``ephemeral_key`` given for an RSA EK or on another curve.
        UnsupportedEvidence: the EK's curve, hash or key size cannot be used here.
        MalformedEvidence: the EK's public key is not a valid key.
    """
    _, size = _name_alg(ek_public)
    key = ek_public.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if ephemeral_key is not None:
            raise ConfigurationError("an ephemeral ECDH key was given for an RSA EK")
        if seed is None:
            seed = os.urandom(size)
        elif len(seed) != size:
            raise ConfigurationError(
                f"seed has {len(seed)} bytes; the EK's nameAlg "
                f"{alg_name(ek_public.name_alg)} needs exactly {size}"
            )
        seed = bytes(seed)
        return seed, _rsa_share(ek_public, key, _label(label), seed)
    if seed is not None:
        raise ConfigurationError(
            "an ECC EK's seed comes from ECDH and cannot be chosen; pass ephemeral_key instead"
        )
    return _ecc_share(ek_public, key, _label(label), ephemeral_key)


# --- MakeCredential ---


def _check_name(ak_name: bytes) -> None:
    """``ak_name`` must be an object Name: ``nameAlg`` (UINT16) || ``H_nameAlg(TPMT_PUBLIC)``."""
    r = Reader(bytes(ak_name), "TPM2B_NAME")
    at = r.offset
    alg = int.from_bytes(r.take(2, "name.hashAlg"), "big")
    size = HASH_DIGEST_SIZES.get(alg)
    if size is None:
        raise r.fail(
            "name.hashAlg",
            f"{alg_name(alg)} is not a hash algorithm: not the Name of a key",
            offset=at,
        )
    r.take(size, "name.digest")
    r.expect_end("name.digest")


def _aes_cfb_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """AES in CFB mode with full-block (128-bit) feedback, the TPM's CFB.

    Built on the AES block function because ``cryptography`` moved its CFB mode to
    ``hazmat.decrepit`` (deprecated in ``primitives``; absent from ``decrepit`` in older
    releases). ``C_i = P_i XOR E_K(C_{i-1})``
    with ``C_0 = IV``; a short last block uses the leading bytes of its key stream.
    """
    block = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    out = bytearray()
    feedback = bytes(iv)
    for i in range(0, len(plaintext), 16):
        chunk = plaintext[i : i + 16]
        stream = block.update(feedback)
        feedback = bytes(p ^ k for p, k in zip(chunk, stream, strict=False))
        out += feedback
    return bytes(out)


def _tpm2b(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def make_credential(
    ek_public: Public,
    ak_name: bytes,
    secret: bytes,
    *,
    seed: bytes | None = None,
) -> tuple[bytes, bytes]:
    """``TPM2_MakeCredential`` computed off the TPM (Part 3 §12.6, Part 1 §24).

    ``ek_public`` is the protector (the EK, parsed from ``TPM2B_PUBLIC`` / ``TPMT_PUBLIC``),
    ``ak_name`` the Name of the key the credential is bound to (``Public.name()`` of the AK,
    as ``tpm2_createak -n`` writes it), ``secret`` the credential: 1 to ``nameAlg``-digest-size
    bytes (32 for the default SHA-256 EKs). ``seed`` fixes the seed of an RSA EK (tests); an
    ECC EK's seed always comes from a fresh ephemeral ECDH key.

    Returns ``(credentialBlob, encryptedSecret)``: the marshalled ``TPM2B_ID_OBJECT`` and
    ``TPM2B_ENCRYPTED_SECRET``, each with its UINT16 size, exactly what ``TPM2_ActivateCredential``
    takes and what :func:`write_tpm2_tools_credential` stores for ``tpm2_activatecredential``.

    Raises:
        MalformedEvidence: ``ak_name`` is not a digest Name (hash algorithm + digest), or the EK's
            key material is invalid.
        VerificationError: ``ek_public`` is not a restricted decryption key with an AES-CFB
            symmetric definition.
        UnsupportedEvidence: an algorithm (hash, curve, symmetric cipher) this module cannot use.
        ConfigurationError: ``secret`` empty or longer than the EK's nameAlg digest; ``seed`` of
            the wrong size or given for an ECC EK.
    """
    name_alg, size, sym_bits = _check_protector(ek_public)
    ak_name = bytes(ak_name)
    _check_name(ak_name)
    secret = bytes(secret)
    if not 0 < len(secret) <= size:
        raise ConfigurationError(
            f"credential secret has {len(secret)} bytes; it must have 1 to {size} "
            f"(the digest size of the EK's nameAlg {alg_name(name_alg)})"
        )
    seed, encrypted_secret = share_seed(ek_public, _IDENTITY, seed=seed)

    sym_key = kdfa(name_alg, seed, _STORAGE, ak_name, b"", sym_bits)
    hmac_key = kdfa(name_alg, seed, _INTEGRITY, b"", b"", 8 * size)
    enc_identity = _aes_cfb_encrypt(sym_key, bytes(16), _tpm2b(secret))
    outer_hmac = _hmac(name_alg, hmac_key, enc_identity, ak_name)

    credential_blob = _tpm2b(_tpm2b(outer_hmac) + enc_identity)
    return credential_blob, _tpm2b(encrypted_secret)


# --- wire formats ---


def _read_tpm2b(r: Reader, field: str, maximum: int) -> bytes:
    """A TPM2B (big-endian UINT16 size + bytes), returned *with* its size field."""
    at = r.offset
    size = int.from_bytes(r.take(2, f"{field}.size"), "big")
    if size > maximum:
        raise r.fail(f"{field}.size", f"{size} exceeds the maximum of {maximum}", offset=at)
    return size.to_bytes(2, "big") + r.take(size, f"{field}.buffer")


def parse_id_object(credential_blob: bytes) -> tuple[bytes, bytes]:
    """A marshalled ``TPM2B_ID_OBJECT`` (Part 2 §12.4.3), exactly: returns
    ``(integrityHMAC, encIdentity)``, the HMAC without and the encrypted ``TPM2B_DIGEST`` (whose
    size field is encrypted too) as it stands.

    Raises:
        MalformedEvidence: truncated, oversized or trailing bytes.
    """
    r = Reader(bytes(credential_blob), "TPM2B_ID_OBJECT")
    at = r.offset
    size = int.from_bytes(r.take(2, "size"), "big")
    if size > _MAX_ID_OBJECT:
        raise r.fail("size", f"{size} exceeds the maximum of {_MAX_ID_OBJECT}", offset=at)
    inner = r.sub(size, "TPM2B_ID_OBJECT", "credential")
    at = inner.offset
    hmac_size = int.from_bytes(inner.take(2, "integrityHMAC.size"), "big")
    if hmac_size > _MAX_DIGEST:
        raise inner.fail(
            "integrityHMAC.size", f"{hmac_size} exceeds the maximum of {_MAX_DIGEST}", offset=at
        )
    integrity = inner.take(hmac_size, "integrityHMAC.buffer")
    at = inner.offset
    enc_identity = inner.rest("encIdentity")
    if not 2 < len(enc_identity) <= 2 + _MAX_DIGEST:
        raise MalformedEvidence(
            "TPM2B_ID_OBJECT",
            "encIdentity",
            at,
            f"{len(enc_identity)} bytes; an encrypted TPM2B_DIGEST has 3 to {2 + _MAX_DIGEST}",
        )
    r.expect_end("trailing")
    return integrity, enc_identity


def parse_tpm2_tools_credential(data: bytes) -> tuple[bytes, bytes]:
    """The file ``tpm2_makecredential -o`` writes and ``tpm2_activatecredential -i`` reads:
    ``0xBADCC0DE`` (UINT32), version 1 (UINT32), ``TPM2B_ID_OBJECT``,
    ``TPM2B_ENCRYPTED_SECRET``, all big-endian, nothing after.

    Returns ``(credentialBlob, encryptedSecret)`` as :func:`make_credential` does (each with its
    size field); the ID object is checked with :func:`parse_id_object`.

    Raises:
        MalformedEvidence: wrong magic, truncated, oversized or trailing bytes.
        UnsupportedEvidence: a version other than 1.
    """
    data = bytes(data)
    r = Reader(data, "tpm2-tools credential")
    magic = int.from_bytes(r.take(4, "magic"), "big")
    if magic != TPM2_TOOLS_CREDENTIAL_MAGIC:
        raise r.fail(
            "magic",
            f"0x{magic:08x} is not 0x{TPM2_TOOLS_CREDENTIAL_MAGIC:08x}: "
            "not a tpm2-tools credential file",
            offset=0,
        )
    version = int.from_bytes(r.take(4, "version"), "big")
    if version != TPM2_TOOLS_CREDENTIAL_VERSION:
        raise UnsupportedEvidence(
            f"tpm2-tools credential file version {version} is not supported "
            f"(only {TPM2_TOOLS_CREDENTIAL_VERSION})"
        )
    blob = _read_tpm2b(r, "credentialBlob", _MAX_ID_OBJECT)
    secret = _read_tpm2b(r, "secret", _MAX_ENCRYPTED_SECRET)
    r.expect_end("trailing")
    parse_id_object(blob)
    return blob, secret


def write_tpm2_tools_credential(credential_blob: bytes, encrypted_secret: bytes) -> bytes:
    """The tpm2-tools credential file for a :func:`make_credential` result (the inverse of
    :func:`parse_tpm2_tools_credential`), for ``tpm2_activatecredential -i``.

    Raises:
        MalformedEvidence: either argument is not one well-formed TPM2B of its type.
    """
    out = (
        TPM2_TOOLS_CREDENTIAL_MAGIC.to_bytes(4, "big")
        + TPM2_TOOLS_CREDENTIAL_VERSION.to_bytes(4, "big")
        + bytes(credential_blob)
        + bytes(encrypted_secret)
    )
    parsed = parse_tpm2_tools_credential(out)
    if parsed != (bytes(credential_blob), bytes(encrypted_secret)):
        raise MalformedEvidence(
            "tpm2-tools credential",
            "credentialBlob",
            8,
            "the credential blob's size field does not match its length",
        )
    return out
