"""TPM2_MakeCredential off the TPM: what :mod:`attestd.verify.tpm_credential` makes, a real TPM
activates.

A real software TPM (swtpm 0.7.1, manufactured per test module with EK certificates from a
private swtpm_localca; ``tests/fakes/swtpm.py``) and tpm2-tools 5.4 decide, with no mocks:

* RSA-2048 EK (``tpm2_createek -G rsa``, SHA-256, AES-128) with an RSA AK
  (``tpm2_createak``): ``tpm2_activatecredential`` recovers our secret, with a random and a
  fixed seed, for 1- to 32-byte secrets, through the endorsement PolicySecret session.
* ECC P-256 EK (``tpm2_createek -G ecc``) and the ECC P-384 EK swtpm_setup persists at
  0x81010016 (SHA-384 nameAlg, AES-256, userWithAuth; 48-byte secrets): the same.
* Binding: a credential made for another Name, or with any byte of the blob or the encrypted
  seed changed, does not activate (``TPM_RC_INTEGRITY`` or a failed seed decryption).
* tpm2-tools' own ``tpm2_makecredential -T none`` output, and the committed real
  ``swtpm-flow/tools/cred.out``, parse with our parser, have our sizes and re-serialize to the
  same bytes.

Known answers (no TPM): KDFa against the TCG reference implementation's self-test vector
(``KdfTestData.h``: SHA-1, SHA-256, SHA-384, SHA-512) and the tpm-test-vectors README example;
KDFe against tpm-test-vectors ``vectors/kdfe.json``; ECC secret sharing against its
``ecc_labeled_encaps.json`` case 12 (label IDENTITY, validated there with
``TPM2_ActivateCredential``); AES-CFB against NIST SP 800-38A F.3.13. tpm-test-vectors is
github.com/chrisfenner/tpm-test-vectors (generated with go-tpm, validated against a TPM
simulator).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from attestd.errors import (
    ConfigurationError,
    MalformedEvidence,
    UnsupportedEvidence,
    VerificationError,
)
from attestd.evidence.tpm import (
    EccCurve,
    EccParms,
    Public,
    SymDef,
    TpmAlg,
    parse_public,
    parse_tpm2b_public,
)
from attestd.verify.tpm_credential import (
    _aes_cfb_encrypt,
    kdfa,
    kdfe,
    make_credential,
    parse_id_object,
    parse_tpm2_tools_credential,
    share_seed,
    write_tpm2_tools_credential,
)
from conftest import VECTORS
from fakes.swtpm import Swtpm, start_swtpm

pytestmark = pytest.mark.timeout(120)

TOOLS = VECTORS / "tpm" / "swtpm-flow" / "tools"

# tpm-test-vectors rsa_labeled_encaps "09_2048_SHA256_128_restricted": a TPMT_PUBLIC of an
# RSA-2048 restricted decryption key (SHA-256, AES-128-CFB), i.e. shaped like a TCG EK.
RSA_STORAGE_KEY = parse_public(
    bytes.fromhex(
        "0001000b000304600000000600800043001008000000000001008054bc2c75a670a0d6372d5d37944609"
        "a79e94865c48c16c46e9354912f4aab3213c2cb204f104329de5a6e21fd459ad7e5e6e9afbbd8ee14d22"
        "ebd23821815be7b3e225ffd06c0097b91b0e0d71c27d5eee235ea37ae1d6ff84ffca71ea9926103ab5da"
        "58befeaad5df0de20662cc05096706aeafaaa5b231e6bd0fddbb26c1fa1c9f05861e11525360373789f9"
        "e07c96d65f8a9f3483bb7d95e5286ed66b4ae5588e5ed38ab15d40059b5c7d8d9ef0a67d7ab9e0b923f6"
        "18e5a2cddad5b644080391196d0214d6d4bef749cb8228b947ea0a1feb305414e0023ec6022e1b8098f9"
        "6a53c1e878ddb85a3dc39dbbfc600bffaa34ace17465825ddccd7796dbaf"
    )
)
# ecc_labeled_encaps "12_P256_SHA256_256_restricted": P-256 restricted decryption key
# (SHA-256, AES-256-CFB).
ECC_STORAGE_KEY = parse_public(
    bytes.fromhex(
        "0023000b0003046000000006010000430010000300100020fe4cf1f3e8f583c19e1af6190a7c20751658"
        "914a93cd77efb871cb1557377560002007b6b7c55bea1d17b1a9d96f367cf315b2942d517fd8642e9d91"
        "57036831c4d5"
    )
)
AK_NAME = bytes.fromhex("000b") + bytes(range(32))


# --- a real TPM ---


@dataclasses.dataclass(frozen=True)
class Keys:
    """An EK and an AK on the TPM, as tpm2-tools left them in ``work``."""

    work: Path
    ek: Public
    ek_ref: str  # -C argument: a context file or a persistent handle
    ak_ref: str
    ak_name: bytes
    ek_policy: bool  # the EK needs the PolicySecret(TPM_RH_ENDORSEMENT) session


@pytest.fixture(scope="module")
def tpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swtpm]:
    with start_swtpm(tmp_path_factory.mktemp("tpm")) as running:
        yield running


def _created_keys(tpm: Swtpm, work: Path, ek_alg: str, ak_args: list[str]) -> Keys:
    tpm.run("tpm2_createek", "-c", "ek.ctx", "-G", ek_alg, "-u", "ek.pub", cwd=work)
    tpm.run(
        "tpm2_createak", "-C", "ek.ctx", "-c", "ak.ctx", *ak_args, "-u", "ak.pub",
        "-n", "ak.name", cwd=work,
    )  # fmt: skip
    ak_name = (work / "ak.name").read_bytes()
    # tpm2_createak's Name is the TPM's; ours, from the TPM2B_PUBLIC it wrote, must agree.
    assert parse_tpm2b_public((work / "ak.pub").read_bytes()).name() == ak_name
    ek = parse_tpm2b_public((work / "ek.pub").read_bytes())
    return Keys(work, ek, "ek.ctx", "ak.ctx", ak_name, ek_policy=True)


@pytest.fixture(scope="module")
def rsa_keys(tpm: Swtpm, tmp_path_factory: pytest.TempPathFactory) -> Keys:
    work = tmp_path_factory.mktemp("rsa")
    keys = _created_keys(tpm, work, "rsa", ["-G", "rsa", "-g", "sha256", "-s", "rsassa"])
    # The EK read back as a bare TPMT_PUBLIC (`tpm2_readpublic -f tpmt -o`) is the same key.
    tpm.run("tpm2_readpublic", "-c", "ek.ctx", "-f", "tpmt", "-o", "ek.tpmt", cwd=work)
    assert parse_public((work / "ek.tpmt").read_bytes()) == keys.ek
    return keys


@pytest.fixture(scope="module")
def ecc_keys(tpm: Swtpm, tmp_path_factory: pytest.TempPathFactory) -> Keys:
    work = tmp_path_factory.mktemp("ecc")
    return _created_keys(tpm, work, "ecc", ["-G", "ecc", "-g", "sha256", "-s", "ecdsa"])


@pytest.fixture(scope="module")
def p384_keys(tpm: Swtpm, tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """swtpm_setup's persisted ECC P-384 EK (high-range template: userWithAuth, so plain
    password authorization) with an ECC AK created and loaded under it."""
    work = tmp_path_factory.mktemp("p384")
    ek = "0x81010016"
    tpm.run("tpm2_readpublic", "-c", ek, "-o", "ek.pub", cwd=work)
    tpm.run(
        "tpm2_create", "-C", ek, "-G", "ecc256:ecdsa-sha256:null",
        "-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign",
        "-u", "ak.pub", "-r", "ak.priv", cwd=work,
    )  # fmt: skip
    tpm.run(
        "tpm2_load", "-C", ek, "-u", "ak.pub", "-r", "ak.priv", "-c", "ak.ctx", "-n", "ak.name",
        cwd=work,
    )  # fmt: skip
    ak_name = (work / "ak.name").read_bytes()
    assert parse_tpm2b_public((work / "ak.pub").read_bytes()).name() == ak_name
    return Keys(
        work, parse_tpm2b_public((work / "ek.pub").read_bytes()), ek, "ak.ctx", ak_name, False
    )


def activate(tpm: Swtpm, keys: Keys, credential_file: bytes) -> tuple[int, bytes, str]:
    """``tpm2_activatecredential`` on ``credential_file``: (exit code, recovered secret,
    stderr). The TCG EK templates' authPolicy is PolicySecret(TPM_RH_ENDORSEMENT), satisfied by
    a policy session, as tpm2-tools documents."""
    work = keys.work
    (work / "cred.in").write_bytes(credential_file)
    (work / "secret.out").unlink(missing_ok=True)
    auth: list[str] = []
    if keys.ek_policy:
        tpm.run("tpm2_startauthsession", "--policy-session", "-S", "session.ctx", cwd=work)
        tpm.run("tpm2_policysecret", "-S", "session.ctx", "-c", "e", cwd=work)
        auth = ["-P", "session:session.ctx"]
    result = tpm.run(
        "tpm2_activatecredential", "-c", keys.ak_ref, "-C", keys.ek_ref, "-i", "cred.in",
        "-o", "secret.out", *auth, cwd=work, check=False,
    )  # fmt: skip
    if keys.ek_policy:
        tpm.run("tpm2_flushcontext", "session.ctx", cwd=work, check=False)
    out = work / "secret.out"
    recovered = out.read_bytes() if result.returncode == 0 else b""
    return result.returncode, recovered, result.stderr.decode(errors="replace")


def our_credential(keys: Keys, secret: bytes, *, ak_name: bytes | None = None) -> bytes:
    blob, encrypted = make_credential(keys.ek, keys.ak_name if ak_name is None else ak_name, secret)
    return write_tpm2_tools_credential(blob, encrypted)


@pytest.mark.parametrize("size", [1, 16, 32])
def test_rsa_ek_activates_our_credential(tpm: Swtpm, rsa_keys: Keys, size: int) -> None:
    secret = os.urandom(size)
    rc, recovered, err = activate(tpm, rsa_keys, our_credential(rsa_keys, secret))
    assert rc == 0, err
    assert recovered == secret


def test_rsa_fixed_seed_is_deterministic_and_activates(tpm: Swtpm, rsa_keys: Keys) -> None:
    secret, seed = os.urandom(32), bytes(range(32))
    blob, encrypted = make_credential(rsa_keys.ek, rsa_keys.ak_name, secret, seed=seed)
    again, encrypted_again = make_credential(rsa_keys.ek, rsa_keys.ak_name, secret, seed=seed)
    assert blob == again  # the blob depends only on seed, Name and secret
    assert encrypted != encrypted_again  # OAEP padding is still random
    other, _ = make_credential(rsa_keys.ek, rsa_keys.ak_name, secret, seed=bytes(32))
    assert other != blob
    for enc in (encrypted, encrypted_again):
        rc, recovered, err = activate(tpm, rsa_keys, write_tpm2_tools_credential(blob, enc))
        assert rc == 0, err
        assert recovered == secret


def test_ek_is_the_certified_one(tpm: Swtpm, rsa_keys: Keys) -> None:
    """The key we encrypt to is the one swtpm_localca certified (NV 0x1c00002)."""
    tpm.run("tpm2_nvread", "0x1c00002", "-o", "ekcert.der", cwd=rsa_keys.work)
    cert = x509.load_der_x509_certificate((rsa_keys.work / "ekcert.der").read_bytes())
    assert cert.public_key() == rsa_keys.ek.public_key()
    _, issuer_pem = tpm.ca_certificates
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(issuer_pem.read_bytes()))


def test_ecc_p256_ek_activates_our_credential(tpm: Swtpm, ecc_keys: Keys) -> None:
    params = ecc_keys.ek.parameters
    assert isinstance(params, EccParms)
    assert params.curve_id == EccCurve.NIST_P256
    secret = os.urandom(32)
    rc, recovered, err = activate(tpm, ecc_keys, our_credential(ecc_keys, secret))
    assert rc == 0, err
    assert recovered == secret


def test_ecc_p384_sha384_ek_activates_a_48_byte_secret(tpm: Swtpm, p384_keys: Keys) -> None:
    ek = p384_keys.ek
    assert (ek.name_alg, ek.parameters.symmetric.key_bits) == (TpmAlg.SHA384, 256)
    secret = os.urandom(48)
    rc, recovered, err = activate(tpm, p384_keys, our_credential(p384_keys, secret))
    assert rc == 0, err
    assert recovered == secret
    with pytest.raises(ConfigurationError, match="1 to 48"):
        make_credential(ek, p384_keys.ak_name, os.urandom(49))


def test_credential_for_another_name_does_not_activate(tpm: Swtpm, rsa_keys: Keys) -> None:
    secret = os.urandom(32)
    wrong_names = [
        rsa_keys.ek.name(),  # a real Name, of another object
        rsa_keys.ak_name[:-1] + bytes([rsa_keys.ak_name[-1] ^ 1]),
    ]
    for name in wrong_names:
        rc, recovered, err = activate(tpm, rsa_keys, our_credential(rsa_keys, secret, ak_name=name))
        assert rc != 0
        assert recovered == b""
        assert "integrity check failed" in err  # TPM_RC_INTEGRITY (0x1DF)


@pytest.mark.parametrize("where", ["integrityHMAC", "encIdentity", "encryptedSecret"])
def test_tampered_credential_does_not_activate(tpm: Swtpm, rsa_keys: Keys, where: str) -> None:
    secret = os.urandom(32)
    blob, encrypted = make_credential(rsa_keys.ek, rsa_keys.ak_name, secret)
    # blob: size(2) TPM2B(outerHMAC: 2 + 32) encIdentity(34); flip one bit in the chosen part.
    if where == "integrityHMAC":
        blob = blob[:10] + bytes([blob[10] ^ 0x80]) + blob[11:]
    elif where == "encIdentity":
        blob = blob[:-1] + bytes([blob[-1] ^ 0x01])
    else:
        encrypted = encrypted[:100] + bytes([encrypted[100] ^ 0x01]) + encrypted[101:]
    rc, recovered, err = activate(tpm, rsa_keys, write_tpm2_tools_credential(blob, encrypted))
    assert rc != 0, "a tampered credential activated"
    assert recovered == b""
    assert "Esys_ActivateCredential" in err  # the TPM refused it, not the tool's file parser


@pytest.mark.parametrize("which", ["rsa", "ecc"])
def test_tpm2_makecredential_output_matches_ours(
    tpm: Swtpm, rsa_keys: Keys, ecc_keys: Keys, which: str
) -> None:
    keys = rsa_keys if which == "rsa" else ecc_keys
    secret = os.urandom(32)
    (keys.work / "secret.bin").write_bytes(secret)
    tpm.run(
        "tpm2_makecredential", "-T", "none", "-e", "ek.pub", "-s", "secret.bin",
        "-n", keys.ak_name.hex(), "-o", "cred2.out", cwd=keys.work,
    )  # fmt: skip
    theirs = (keys.work / "cred2.out").read_bytes()
    blob, encrypted = parse_tpm2_tools_credential(theirs)
    assert write_tpm2_tools_credential(blob, encrypted) == theirs
    our_blob, our_encrypted = make_credential(keys.ek, keys.ak_name, secret)
    assert len(blob) == len(our_blob) == 2 + 2 + 32 + 2 + 32
    if which == "rsa":
        assert len(encrypted) == len(our_encrypted) == 2 + 256
    else:
        # TPMS_ECC_POINT of the ephemeral key: we write both coordinates 32 bytes wide;
        # tpm2-tools drops their leading zero bytes (about 1 point in 128 has one), and the TPM
        # takes both forms (it activates theirs below).
        assert len(our_encrypted) == 2 + 68
        x_len = int.from_bytes(encrypted[2:4], "big")
        y_len = int.from_bytes(encrypted[4 + x_len : 6 + x_len], "big")
        assert 28 <= x_len <= 32 and 28 <= y_len <= 32
        assert len(encrypted) == 2 + 2 + x_len + 2 + y_len == 2 + int.from_bytes(encrypted[:2])
    hmac_theirs, enc_theirs = parse_id_object(blob)
    hmac_ours, enc_ours = parse_id_object(our_blob)
    assert (len(hmac_theirs), len(enc_theirs)) == (len(hmac_ours), len(enc_ours)) == (32, 34)
    # and the TPM activates theirs too, so both sides agree on the format
    rc, recovered, err = activate(tpm, keys, theirs)
    assert rc == 0, err
    assert recovered == secret


# --- the committed tpm2-tools vector (its EK is gone: parse only) ---


def test_vector_cred_out_parses_and_round_trips() -> None:
    data = (TOOLS / "cred.out").read_bytes()
    secret = (TOOLS / "secret.data").read_bytes()
    blob, encrypted = parse_tpm2_tools_credential(data)
    assert write_tpm2_tools_credential(blob, encrypted) == data
    integrity, enc_identity = parse_id_object(blob)
    assert len(integrity) == 32  # HMAC-SHA256: the swtpm RSA EK's nameAlg
    assert len(enc_identity) == 2 + len(secret)  # the encrypted TPM2B_DIGEST(secret)
    assert len(encrypted) == 2 + 256  # RSA-2048 OAEP ciphertext


# --- known answers ---

# TCG reference implementation self-test (libtpms src/tpm2/KdfTestData.h): key, label
# "KDFSELFTESTLABEL\0", contextU, contextV, 160 bits, one result per hash.
KDFA_SELFTEST_KEY = bytes.fromhex("271FA08BBDC5060EC3DFA928FF9B73123A12DA0C")
KDFA_SELFTEST_U = bytes.fromhex("CE244F395DCA7391")
KDFA_SELFTEST_V = bytes.fromhex("DA504031DDF12E83")


@pytest.mark.parametrize(
    ("hash_alg", "expected"),
    [
        (TpmAlg.SHA1, "55b5a7184aa07423c47dae766c26a2377d7cf851"),
        (TpmAlg.SHA256, "bb0259e1c8ba607e6a2cd704b69a902e9ade84c4"),
        (TpmAlg.SHA384, "1dce70c9113eb2dba47bd9cfc72bf46f45b09312"),
        (TpmAlg.SHA512, "8be2c1b85b78569b9fa759f5857c56d684810fd3"),
    ],
)
def test_kdfa_tcg_reference_self_test(hash_alg: int, expected: str) -> None:
    for label in ("KDFSELFTESTLABEL", b"KDFSELFTESTLABEL\x00"):  # the NUL is added once
        out = kdfa(hash_alg, KDFA_SELFTEST_KEY, label, KDFA_SELFTEST_U, KDFA_SELFTEST_V, 160)
        assert out.hex() == expected


def test_kdfa_tpm_test_vectors_odd_bit_count() -> None:
    # tpm-test-vectors README, "27_SHA256_116": 116 bits, the top 4 bits of 15 bytes cleared.
    out = kdfa(
        TpmAlg.SHA256,
        bytes.fromhex("aff14e568afc0ea51eea748c8915df067c7700"),
        "IDENTITY",
        bytes.fromhex("ce4edfb881540700e300"),
        bytes.fromhex("68ddb4a0e59d74cd34dfe631d91e1ea3fbc95865440adedff7e9d011890fba"),
        116,
    )
    assert out.hex() == "019ed5e0956338ddda4413ecee5cf2"


@pytest.mark.parametrize(
    ("hash_alg", "z", "label", "u", "v", "bits", "expected"),
    [
        # tpm-test-vectors vectors/kdfe.json: 02_SHA1_252, 04_SHA1_253, 33_SHA256_215,
        # 60_SHA384_277, 79_SHA512_255
        (4, "6a139d0b0d0f", "STORAGE", "ffa447ad80e0e47020a60c19d20533bdf4",
         "00996ffa45a47c067c87183c7711f486d785", 252,
         "0c51610804d2cf7c9ef588a96ae69b1a6e82bc10a67c829b219e37f65f18007b"),
        (4, "", "STORAGE", "", "c0227aff", 253,
         "0f10d821af67e1ec776b390f3b4572bb433efd2b94fa7842d879d24d825ed2f9"),
        (11, "ffcead5817fa51", "OBFUSCATE", "3a25c7420a6ea094aff570c12fd40d2b8eff",
         "8505ad0684d7196c4153860ece58c62c20fa07f18fff", 215,
         "7e20d953e93f3760753b0aeba83c1114c440493bd8101f12665868"),
        (12, "ff579d6435f18a86383d9cb1dd06ca2ff965573938d14c", "STORAGE",
         "9379d63712039945f4d468f909ef", "690bf9eac27256312e21e27d26f9df46", 277,
         "18ced4710410a646d3e577ba4353078ba0bbfa8ef2c3df28faa70abc135378de904023"),
        (13, "002024653ef084", "ATH", "25e4ff", "ff1c8addecb73b1fce8b03e6ffb0b149455a", 255,
         "408051eb79531af1d85d5bc85953cf05a6b5e9a695afdca513c4275fb8e4b35f"),
    ],
)  # fmt: skip
def test_kdfe_tpm_test_vectors(
    hash_alg: int, z: str, label: str, u: str, v: str, bits: int, expected: str
) -> None:
    out = kdfe(hash_alg, bytes.fromhex(z), label, bytes.fromhex(u), bytes.fromhex(v), bits)
    assert out.hex() == expected


def test_ecc_identity_secret_sharing_vector() -> None:
    # ecc_labeled_encaps.json "12_P256_SHA256_256_restricted", label IDENTITY, validated there
    # with TPM2_ActivateCredential: the ephemeral key gives the seed and the TPMS_ECC_POINT.
    ephemeral = ec.derive_private_key(
        int("9efafbaf83563f8ac5a27815eae1017ca78c92f9cde976b1a2e0ad95b8a19bc1", 16),
        ec.SECP256R1(),
    )
    seed, point = share_seed(ECC_STORAGE_KEY, "IDENTITY", ephemeral_key=ephemeral)
    assert seed.hex() == "2a03ff2b874e44d36a567e67a0bf08227b9e65a0e9ca5215d4a9e573c23159a1"
    assert point.hex() == (
        "002017ca41bd94c7f12436cf135ff1852408ef6a1ee1989e4e6250ef73c348dd6fa9"
        "0020346f6016d6f6a2ef8e07df6d7b53b362005fc21cda1e1ab25e61f38a87e017b8"
    )


def test_aes_cfb_nist_sp800_38a() -> None:
    # NIST SP 800-38A F.3.13 CFB128-AES128.Encrypt, plus a short last block.
    key = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    iv = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
    plaintext = bytes.fromhex(
        "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
        "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
    )
    ciphertext = bytes.fromhex(
        "3b3fd92eb72dad20333449f8e83cfb4ac8a64537a0b3a93fcde3cdad9f1ce58b"
        "26751f67a3cbb140b1808cf187a4f4dfc04b05357c5d1c0eeac4c66f9ff7f2e6"
    )
    assert _aes_cfb_encrypt(key, iv, plaintext) == ciphertext
    assert _aes_cfb_encrypt(key, iv, plaintext[:34]) == ciphertext[:34]


# --- bounds and validation (no TPM) ---


def test_credential_shape_without_tpm() -> None:
    for ek, encrypted_size in ((RSA_STORAGE_KEY, 2 + 256), (ECC_STORAGE_KEY, 2 + 68)):
        blob, encrypted = make_credential(ek, AK_NAME, b"\x01" * 20)
        assert len(encrypted) == encrypted_size
        integrity, enc_identity = parse_id_object(blob)
        assert (len(integrity), len(enc_identity)) == (32, 22)


@pytest.mark.parametrize("secret", [b"", bytes(33)])
def test_secret_size_bounds(secret: bytes) -> None:
    with pytest.raises(ConfigurationError, match="1 to 32"):
        make_credential(RSA_STORAGE_KEY, AK_NAME, secret)


def test_seed_bounds() -> None:
    with pytest.raises(ConfigurationError, match="exactly 32"):
        make_credential(RSA_STORAGE_KEY, AK_NAME, b"s", seed=bytes(20))
    with pytest.raises(ConfigurationError, match="ECDH"):
        make_credential(ECC_STORAGE_KEY, AK_NAME, b"s", seed=bytes(32))
    with pytest.raises(ConfigurationError, match="RSA EK"):
        share_seed(RSA_STORAGE_KEY, ephemeral_key=ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ConfigurationError, match="secp384r1"):
        share_seed(ECC_STORAGE_KEY, ephemeral_key=ec.generate_private_key(ec.SECP384R1()))


@pytest.mark.parametrize(
    ("name", "field"),
    [
        (b"", "name.hashAlg"),
        (b"\x40\x00\x00\x0b", "name.hashAlg"),  # a handle, not an object's digest Name
        (bytes.fromhex("0010") + bytes(32), "name.hashAlg"),  # TPM_ALG_NULL
        (AK_NAME[:-1], "name.digest"),
        (AK_NAME + b"\x00", "name.digest"),
    ],
)
def test_ak_name_must_be_a_digest_name(name: bytes, field: str) -> None:
    with pytest.raises(MalformedEvidence) as info:
        make_credential(RSA_STORAGE_KEY, name, b"s")
    assert info.value.field == field


def test_protector_must_be_a_restricted_aes_cfb_decryption_key() -> None:
    ek = RSA_STORAGE_KEY
    not_restricted = dataclasses.replace(ek, object_attributes=ek.object_attributes & ~(1 << 16))
    sign_too = dataclasses.replace(ek, object_attributes=ek.object_attributes | 1 << 18)
    params = ek.parameters
    cases: list[tuple[Public, type[Exception], str]] = [
        (not_restricted, VerificationError, "restricted decryption"),
        (sign_too, VerificationError, "sign and decrypt"),
        (
            dataclasses.replace(
                ek, parameters=dataclasses.replace(params, symmetric=SymDef(TpmAlg.NULL))
            ),
            VerificationError,
            "no symmetric",
        ),
        (
            dataclasses.replace(
                ek,
                parameters=dataclasses.replace(
                    params, symmetric=SymDef(TpmAlg.AES, 128, TpmAlg.CBC)
                ),
            ),
            VerificationError,
            "CFB",
        ),
        (
            dataclasses.replace(
                ek,
                parameters=dataclasses.replace(
                    params, symmetric=SymDef(TpmAlg.CAMELLIA, 128, TpmAlg.CFB)
                ),
            ),
            UnsupportedEvidence,
            "only AES",
        ),
        (dataclasses.replace(ek, name_alg=TpmAlg.NULL), UnsupportedEvidence, "nameAlg"),
    ]
    for key, error, message in cases:
        with pytest.raises(error, match=message):
            make_credential(key, AK_NAME, b"s")


def test_tpm2_tools_file_errors() -> None:
    good = (TOOLS / "cred.out").read_bytes()
    with pytest.raises(MalformedEvidence) as info:
        parse_tpm2_tools_credential(b"\x00" + good[1:])
    assert info.value.field == "magic"
    with pytest.raises(UnsupportedEvidence, match="version 2"):
        parse_tpm2_tools_credential(good[:4] + (2).to_bytes(4, "big") + good[8:])
    with pytest.raises(MalformedEvidence) as info:
        parse_tpm2_tools_credential(good[:-1])
    assert info.value.field == "secret.buffer"
    with pytest.raises(MalformedEvidence) as info:
        parse_tpm2_tools_credential(good + b"\x00")
    assert info.value.field == "trailing"
    with pytest.raises(MalformedEvidence) as info:  # a credentialBlob size over 132
        parse_tpm2_tools_credential(good[:8] + (133).to_bytes(2, "big") + good[10:])
    assert info.value.field == "credentialBlob.size"
    blob, encrypted = parse_tpm2_tools_credential(good)
    with pytest.raises(MalformedEvidence):  # sizes that do not frame the TPM2Bs
        write_tpm2_tools_credential(blob[:-1], encrypted)
    with pytest.raises(MalformedEvidence) as info:  # an HMAC size running past the blob
        parse_id_object(blob[:2] + (100).to_bytes(2, "big") + blob[4:])
    assert info.value.field == "integrityHMAC.size"


def test_kdf_bounds() -> None:
    with pytest.raises(ConfigurationError):
        kdfa(TpmAlg.SHA256, b"k", "L", b"", b"", 0)
    with pytest.raises(ConfigurationError):
        kdfe(TpmAlg.SHA256, b"z", "L", b"", b"", 0xFFFF * 8 + 1)
    with pytest.raises(UnsupportedEvidence):
        kdfa(TpmAlg.NULL, b"k", "L", b"", b"", 128)
