"""CLI commands that talk to a running service (and key management on the local store):
``attest``, ``token verify``, ``policy get|set|reset|sign``, ``signers list|add|remove``,
``keys list|rotate``."""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from attestd.errors import AttestdError

__all__ = ["add_online_commands"]

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return data


def _client(args: argparse.Namespace) -> Any:
    from attestd.client import AttestdClient

    key = getattr(args, "admin_key", None) or os.environ.get("ATTESTD_ADMIN_KEY")
    return AttestdClient(args.endpoint, admin_key=key)


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SystemExit(f"attestd: cannot read {path}: {exc.strerror}") from exc


def cmd_attest(args: argparse.Namespace) -> int:
    from attestd.cli.main import read_evidence

    if args.kind == "tpm":
        if args.eventlog is None:
            from attestd.tpm_client import DEFAULT_EVENTLOG

            args.eventlog = DEFAULT_EVENTLOG
        return cmd_attest_tpm(args)
    if args.evidence is None:
        raise SystemExit(f"attestd attest {args.kind}: the EVIDENCE file is required")
    options: dict[str, Any] = {}
    if args.runtime_data:
        options["runtime_data"] = _read(args.runtime_data)
    if args.runtime_json:
        options["runtime_json"] = _read(args.runtime_json)
    if args.nonce:
        options["nonce"] = args.nonce
    with _client(args) as c:
        token = c.attest(args.kind, read_evidence(args.evidence), **options)
    print(token)
    print(json.dumps(_claims(token), indent=2, sort_keys=True), file=sys.stderr)
    return EXIT_OK


def _certificates(path: str) -> list[x509.Certificate]:
    """A PEM chain or one DER certificate."""
    data = _read(path)
    try:
        return (
            x509.load_pem_x509_certificates(data)
            if b"-----BEGIN" in data
            else [x509.load_der_x509_certificate(data)]
        )
    except ValueError as exc:
        raise SystemExit(f"attestd: {path}: not a PEM or DER certificate") from exc


def cmd_attest_tpm(args: argparse.Namespace) -> int:
    from attestd.tpm_client import (
        PytssTpm,
        TpmClientError,
        attest_tpm,
        enroll_aik,
        parse_pcr_list,
    )

    if args.evidence is not None:
        raise SystemExit("attestd attest tpm: takes no EVIDENCE argument (the TPM is read)")
    chain = _certificates(args.aik_cert) if args.aik_cert else []
    ek_chain = _certificates(args.ek_chain) if args.ek_chain else []
    try:
        pcrs = parse_pcr_list(args.pcrs)
    except TpmClientError as exc:
        raise SystemExit(f"attestd: {exc.message}") from exc
    log = _read(args.eventlog)
    with _client(args) as c, PytssTpm(args.tcti) as tpm:
        if not chain:
            chain = enroll_aik(c, tpm, ek_chain=ek_chain)
            if args.save_aik_cert:
                pem = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in chain)
                try:
                    Path(args.save_aik_cert).write_bytes(pem)
                except OSError as exc:
                    raise SystemExit(
                        f"attestd: cannot write {args.save_aik_cert}: {exc.strerror}"
                    ) from exc
        token = attest_tpm(c, tpm, log=log, aik_chain=chain, pcrs=pcrs)
    print(token)
    print(json.dumps(_claims(token), indent=2, sort_keys=True), file=sys.stderr)
    return EXIT_OK


def cmd_token_verify(args: argparse.Namespace) -> int:
    from attestd.relying_party import TokenVerifier

    token = args.token
    if token.count(".") != 2:  # not a JWS: a file holding one
        token = _read(token).decode().strip()
    verifier = TokenVerifier(args.endpoint)
    try:
        claims = verifier.verify(token)
    finally:
        verifier.close()
    print(json.dumps(claims, indent=2, sort_keys=True))
    return EXIT_OK


def _load_signer(args: argparse.Namespace) -> tuple[Any, x509.Certificate]:
    key = serialization.load_pem_private_key(_read(args.key), password=None)
    cert = x509.load_pem_x509_certificate(_read(args.certificate))
    return key, cert


def cmd_policy_online(args: argparse.Namespace) -> int:
    from attestd.policy.document import sign_policy, unsigned_policy

    with _client(args) as c:
        if args.policy_command == "get":
            jws = _claims(c.get_policy(args.type))["x-ms-policy"]
            from attestd.policy.document import parse_policy_document

            print(parse_policy_document(jws).policy_text)
            return EXIT_OK
        if args.policy_command == "reset":
            print(json.dumps(_claims(c.reset_policy(args.type)), indent=2, sort_keys=True))
            return EXIT_OK
        text = _read(args.file).decode("utf-8")
        if args.key:
            key, cert = _load_signer(args)
            jws = sign_policy(text, key=key, certificate=cert)
        else:
            jws = unsigned_policy(text)
        print(json.dumps(_claims(c.set_policy(args.type, jws)), indent=2, sort_keys=True))
    return EXIT_OK


def cmd_policy_sign(args: argparse.Namespace) -> int:
    from attestd.policy.document import sign_policy

    key, cert = _load_signer(args)
    print(sign_policy(_read(args.file).decode("utf-8"), key=key, certificate=cert))
    return EXIT_OK


def cmd_signers(args: argparse.Namespace) -> int:
    from attestd.policy.document import sign_policy_certificate_document

    with _client(args) as c:
        if args.signers_command == "list":
            keys = _claims(c.get_signers())["x-ms-policy-certificates"]["keys"]
            for k in keys:
                cert = x509.load_der_x509_certificate(base64.b64decode(k["x5c"][0]))
                print(cert.subject.rfc4514_string())
            return EXIT_OK
        key, signer = _load_signer(args)
        target = x509.load_pem_x509_certificate(_read(args.target))
        body = sign_policy_certificate_document(target, key=key, signer_certificate=signer)
        token = c.add_signer(body) if args.signers_command == "add" else c.remove_signer(body)
    print(json.dumps(_claims(token), indent=2, sort_keys=True))
    return EXIT_OK


def cmd_keys(args: argparse.Namespace) -> int:
    from attestd.config import load_settings
    from attestd.service import AttestationService

    service = AttestationService(load_settings(args.config))
    if args.keys_command == "rotate":
        kid = service.rotate_signing_key()
        print(f"active signing key is now {kid}")
    for rec in service.store.signing_keys():
        state = "active" if rec.active else f"retired {rec.retired_at:%Y-%m-%dT%H:%M:%SZ}"
        print(f"{rec.kid}  {rec.algorithm}  created {rec.created_at:%Y-%m-%dT%H:%M:%SZ}  {state}")
    return EXIT_OK


def add_online_commands(sub: Any, policy_sub: Any) -> None:
    def endpoint(p: argparse.ArgumentParser, admin: bool = False) -> None:
        p.add_argument("--endpoint", required=True, help="the service URL")
        if admin:
            p.add_argument("--admin-key", help="administrator key (default: $ATTESTD_ADMIN_KEY)")

    a = sub.add_parser("attest", help="send evidence to a service; print the token")
    a.add_argument("kind", choices=["sgx", "openenclave", "tdx", "tpm"])
    a.add_argument("evidence", nargs="?", help="the evidence file (not for tpm)")
    endpoint(a)
    tpm = a.add_argument_group("tpm (needs attestd[tpm])")
    tpm.add_argument("--tcti", help="TPM TCTI, e.g. device:/dev/tpmrm0 (default: tss2's)")
    tpm.add_argument("--eventlog", default=None, help="TCG event log (default: the kernel's)")
    aik = tpm.add_mutually_exclusive_group()
    aik.add_argument(
        "--aik-cert",
        help="AIK certificate (PEM chain, leaf first, or DER); "
        "default: enroll the AK with the service (POST /enroll/Tpm)",
    )
    aik.add_argument(
        "--save-aik-cert", metavar="PATH", help="write the enrolled AIK chain here (PEM)"
    )
    tpm.add_argument(
        "--ek-chain",
        help="EK certificate intermediates for enrollment (PEM, the EK's issuer first)",
    )
    tpm.add_argument("--pcrs", default="0-23", help="PCRs to quote (default 0-23)")
    group = a.add_mutually_exclusive_group()
    group.add_argument("--runtime-data", help="file: runtime data bound as Binary")
    group.add_argument("--runtime-json", help="file: runtime data bound as JSON")
    a.add_argument("--nonce")
    a.set_defaults(func=cmd_attest)

    t = sub.add_parser("token", help="relying party: verify a token")
    tsub = t.add_subparsers(dest="token_command", required=True)
    tv = tsub.add_parser("verify", help="verify a token against the issuer's /certs")
    tv.add_argument("token", help="the token, or a file holding it")
    endpoint(tv)
    tv.set_defaults(func=cmd_token_verify)

    for name, what in (
        ("get", "print the active policy"),
        ("set", "set a policy"),
        ("reset", "reset"),
    ):
        p = policy_sub.add_parser(name, help=what)
        p.add_argument("type", help="SgxEnclave, OpenEnclave, TdxVm, Tpm")
        if name == "set":
            p.add_argument("file", help="policy text")
            p.add_argument("--key", help="PEM private key to sign with")
            p.add_argument("--certificate", help="PEM signer certificate")
        endpoint(p, admin=True)
        p.set_defaults(func=cmd_policy_online)
    ps = policy_sub.add_parser("sign", help="sign policy text into MAA's JWS form")
    ps.add_argument("file")
    ps.add_argument("--key", required=True)
    ps.add_argument("--certificate", required=True)
    ps.set_defaults(func=cmd_policy_sign)

    s = sub.add_parser("signers", help="policy signer certificates (isolated instances)")
    ssub = s.add_subparsers(dest="signers_command", required=True)
    sl = ssub.add_parser("list")
    endpoint(sl, admin=True)
    sl.set_defaults(func=cmd_signers)
    for name in ("add", "remove"):
        p = ssub.add_parser(name)
        p.add_argument("target", help="PEM certificate to add or remove")
        p.add_argument("--key", required=True, help="PEM key of a current signer")
        p.add_argument("--certificate", required=True, help="PEM certificate of that signer")
        endpoint(p, admin=True)
        p.set_defaults(func=cmd_signers)

    k = sub.add_parser("keys", help="token signing keys of the local instance")
    k.add_argument("--config", help="TOML settings file (default: $ATTESTD_CONFIG)")
    ksub = k.add_subparsers(dest="keys_command", required=True)
    ksub.add_parser("list").set_defaults(func=cmd_keys)
    ksub.add_parser("rotate").set_defaults(func=cmd_keys)


def handle_errors(exc: AttestdError) -> int:
    print(f"attestd: {exc.code}: {exc.message}", file=sys.stderr)
    return EXIT_REJECTED
