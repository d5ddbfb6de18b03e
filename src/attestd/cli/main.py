"""The ``attestd`` command line.

``attestd verify {sgx,openenclave,tdx} EVIDENCE --collateral DIR|URL [--trust-anchor PEM]
[--pck-chain PEM] [--at ISO8601|UNIX] [--allow-expired-collateral] [--json]``
    Exit status: 0 when the evidence verified, 1 when it was rejected (or could not be judged:
    fail closed), 2 on usage errors.

``attestd policy check FILE`` / ``attestd policy hash FILE`` /
``attestd policy eval FILE --claims CLAIMS.json [--json]``
    FILE holds policy text or a policy JWS. Exit status: 0 when the policy compiles (check) or
    authorizes (eval), 1 when it does not authorize, 2 on a policy or usage error.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from attestd._json import parse_json
from attestd.claims.dcap import dcap_claims
from attestd.collateral.source import BUNDLE_FILES, BundleDirectory, BundleStore, CollateralSource
from attestd.errors import AttestdError, ConfigurationError, PolicyError, PolicyParsingError
from attestd.evidence.openenclave import parse_openenclave_report
from attestd.evidence.quote import TeeType, parse_quote
from attestd.pki.certs import TrustAnchors
from attestd.verify.dcap import DcapResult, DcapVerifier

__all__ = ["main"]

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def parse_time(text: str) -> datetime:
    """``--at``: Unix seconds, or ISO 8601 (``Z`` or an offset; naive means UTC)."""
    if re.fullmatch(r"\d+(\.\d+)?", text.strip()):
        return datetime.fromtimestamp(float(text), UTC)
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"--at {text!r}: not Unix seconds or ISO 8601") from exc
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def read_evidence(path: str) -> bytes:
    """Raw binary, or the same as hex (``0x`` prefix allowed) or base64/base64url text."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read evidence file {path}: {exc.strerror}") from exc
    if data[:1] in (b"\x01", b"\x03", b"\x04", b"\x05"):
        return data
    text = b"".join(data.split())
    if text[:2].lower() == b"0x":
        text = text[2:]
    if re.fullmatch(rb"[0-9a-fA-F]+", text) and len(text) % 2 == 0:
        return binascii.unhexlify(text)
    if re.fullmatch(rb"[A-Za-z0-9+/_=-]+", text):
        try:
            return base64.urlsafe_b64decode(
                text.replace(b"+", b"-").replace(b"/", b"_") + b"=" * (-len(text) % 4)
            )
        except (binascii.Error, ValueError):
            pass
    return data


def collateral_source(spec: str) -> CollateralSource:
    if spec.startswith(("http://", "https://")):
        from attestd.collateral.pcs import PcsClient

        return PcsClient(base_url=spec.rstrip("/"))
    path = Path(spec)
    if not path.is_dir():
        raise UsageError(f"--collateral {spec}: not a directory or an http(s) URL")
    if (path / BUNDLE_FILES["tcb_info"]).is_file():
        return BundleDirectory(path)
    return BundleStore(path)


def _verify(args: argparse.Namespace) -> tuple[DcapResult, dict[str, Any]]:
    evidence = read_evidence(args.evidence)
    anchors = None
    if args.trust_anchor:
        try:
            anchors = TrustAnchors.from_pem(Path(args.trust_anchor).read_bytes(), args.trust_anchor)
        except OSError as exc:
            raise UsageError(f"cannot read --trust-anchor {args.trust_anchor}") from exc
    pck_chain = None
    if args.pck_chain:
        try:
            pck_chain = Path(args.pck_chain).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read --pck-chain {args.pck_chain}") from exc
    at = parse_time(args.at) if args.at else None
    verifier = DcapVerifier(
        collateral=collateral_source(args.collateral),
        trust_anchors=anchors,
        allow_expired_collateral=args.allow_expired_collateral,
    )
    if args.kind == "openenclave":
        quote = parse_openenclave_report(evidence).quote
    else:
        quote = parse_quote(evidence)
    want = TeeType.TDX if args.kind == "tdx" else TeeType.SGX
    if quote.tee != want:
        raise UsageError(f"the evidence is a {quote.tee.name} quote, not {args.kind}")
    result = verifier.verify(quote, at=at, pck_chain=pck_chain)
    return result, dcap_claims(result, evidence=evidence)


def _report(
    result: DcapResult | None, claims: dict[str, Any], error: AttestdError | None
) -> dict[str, Any]:
    return {
        "ok": error is None,
        "tcb_status": result.tcb_status if result else None,
        "advisory_ids": list(result.advisory_ids) if result else [],
        "collateral_expired": result.collateral_expired if result else None,
        "expired_items": list(result.expired_items) if result else [],
        "verification_time": result.verification_time.isoformat() if result else None,
        "claims": claims,
        "error": error.to_dict() if error else None,
    }


def _print_text(report: dict[str, Any]) -> None:
    if not report["ok"]:
        err = report["error"]
        print(f"REJECTED [{err['code']}] {err['message']}")
        return
    print(f"VERIFIED at {report['verification_time']}")
    print(f"  TCB status:   {report['tcb_status']}")
    print(f"  advisory IDs: {', '.join(report['advisory_ids']) or '(none)'}")
    if report["collateral_expired"]:
        print(f"  WARNING: evaluated with expired collateral: {', '.join(report['expired_items'])}")
    print("  claims:")
    for k, v in report["claims"].items():
        print(f"    {k}: {json.dumps(v)}")


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        result, claims = _verify(args)
    except AttestdError as exc:
        if isinstance(exc, ConfigurationError):
            print(f"attestd verify: {exc.message}", file=sys.stderr)
            return EXIT_USAGE
        report = _report(None, {}, exc)
        code = EXIT_REJECTED
    else:
        report = _report(result, claims, None)
        code = EXIT_OK
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_text(report)
    return code


def read_policy(path: str) -> str:
    """Policy text from a file holding the text itself or a policy JWS (MAA's upload form)."""
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read policy file {path}: {exc}") from exc
    stripped = raw.strip()
    if re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*", stripped):
        from attestd.policy.document import parse_policy_document

        return parse_policy_document(stripped).policy_text
    return raw


def _policy_error(exc: AttestdError) -> dict[str, Any]:
    out: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if isinstance(exc, PolicyParsingError):
        out.update(line=exc.line, column=exc.column)
    return out


def cmd_policy(args: argparse.Namespace) -> int:
    from attestd.policy import claims_from_json, compile_policy, evaluate

    try:
        text = read_policy(args.file)
        compiled = compile_policy(text)
    except PolicyError as exc:
        if getattr(args, "json", False):
            report = {
                "authorized": False,
                "issued": {},
                "properties": {},
                "trace": [],
                "error": _policy_error(exc),
            }
            print(json.dumps(report, indent=2))
        else:
            excerpt = getattr(exc, "excerpt", "")
            print(f"{args.file}: {exc.code}: {exc.message}", file=sys.stderr)
            if excerpt:
                print(excerpt, file=sys.stderr)
        return EXIT_USAGE
    if args.policy_command == "check":
        rules = len(compiled.rules)
        print(f"{args.file}: OK (version {compiled.version}, {rules} rule{'s' * (rules != 1)})")
        return EXIT_OK
    if args.policy_command == "hash":
        from attestd.policy.document import policy_hash

        print(policy_hash(text))
        return EXIT_OK
    try:
        data = parse_json(Path(args.claims).read_text(encoding="utf-8"))
        claims = claims_from_json(data)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"--claims {args.claims}: {exc}") from exc
    result = evaluate(compiled, claims)
    if args.json:
        print(
            json.dumps(
                {
                    "authorized": result.authorized,
                    "issued": result.issued,
                    "properties": result.properties,
                    "trace": result.trace,
                    "reason": result.reason,
                    "error": None,
                },
                indent=2,
            )
        )
    else:
        print("AUTHORIZED" if result.authorized else f"NOT AUTHORIZED: {result.reason}")
        for line in result.trace:
            print(f"  {line}")
        if result.issued:
            print("issued claims:")
            for k, v in result.issued.items():
                print(f"  {k}: {json.dumps(v)}")
        if result.properties:
            print("properties:")
            for k, v in result.properties.items():
                print(f"  {k}: {json.dumps(v)}")
    return EXIT_OK if result.authorized else EXIT_REJECTED


def _service(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from attestd.config import Settings, load_settings
    from attestd.service import AttestationService

    settings = load_settings(getattr(args, "config", None))
    url = getattr(args, "instance_url", None)
    if url is None and hasattr(args, "port") and settings.instance_url == Settings.instance_url:
        url = f"http://{args.host}:{args.port}"  # not configured: the address being served
    if url:
        settings = replace(settings, instance_url=url.rstrip("/"))
    return AttestationService(settings)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the service on uvicorn (uvloop/httptools when installed)."""
    import uvicorn

    from attestd.api.app import create_app

    service = _service(args)
    settings = service.settings
    if not service.store.list_api_keys():
        secret = service.store.create_api_key("admin", at=service.clock())
        print(
            f"attestd: created the first administrator key (shown once): {secret}",
            file=sys.stderr,
        )
    print(
        f"attestd: serving {settings.instance_url} ({settings.mode} mode, "
        f"database {settings.database}) on http://{args.host}:{args.port}",
        file=sys.stderr,
    )
    if args.workers > 1:
        print(
            "attestd: --workers > 1 runs one service per process on a shared database",
            file=sys.stderr,
        )
        uvicorn.run(
            "attestd.api.asgi:app",
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
            access_log=not args.no_access_log,
        )
    else:
        uvicorn.run(
            create_app(service),
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            access_log=not args.no_access_log,
        )
    return EXIT_OK


def cmd_apikey(args: argparse.Namespace) -> int:
    service = _service(args)
    store = service.store
    if args.apikey_command == "create":
        print(store.create_api_key(args.name, at=service.clock()))
    elif args.apikey_command == "revoke":
        if not store.revoke_api_key(args.name):
            raise UsageError(f"no API key named {args.name!r}")
    else:
        for name in store.list_api_keys():
            print(name)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attestd", description="Open attestation service")
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="verify evidence offline against collateral")
    v.add_argument("kind", choices=["sgx", "openenclave", "tdx"])
    v.add_argument("evidence", help="quote (binary, hex or base64) or Open Enclave report")
    v.add_argument(
        "--collateral",
        required=True,
        help="a bundle folder, a folder of bundles, or an Intel PCS/PCCS base URL",
    )
    v.add_argument("--trust-anchor", help="PEM root certificate(s) (default: Intel SGX Root CA)")
    v.add_argument("--pck-chain", help="PEM PCK chain for quotes without one (cert types 1-4)")
    v.add_argument("--at", help="verification time: ISO 8601 or Unix seconds (default: now)")
    v.add_argument(
        "--allow-expired-collateral",
        action="store_true",
        help="audit mode: evaluate with expired collateral and say so",
    )
    v.add_argument("--json", action="store_true", help="print one JSON object")
    v.set_defaults(func=cmd_verify)

    srv = sub.add_parser("serve", help="run the attestation service")
    srv.add_argument("--config", help="TOML settings file (default: $ATTESTD_CONFIG)")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8080)
    srv.add_argument("--workers", type=int, default=1)
    srv.add_argument(
        "--instance-url",
        help="the public URL (token issuer); default: settings, else http://HOST:PORT",
    )
    srv.add_argument("--log-level", default="info")
    srv.add_argument("--no-access-log", action="store_true", help="do not log each request")
    srv.set_defaults(func=cmd_serve)

    ak = sub.add_parser("apikey", help="administrator API keys of the embedded store")
    ak.add_argument("--config", help="TOML settings file (default: $ATTESTD_CONFIG)")
    aks = ak.add_subparsers(dest="apikey_command", required=True)
    for name in ("create", "revoke"):
        p = aks.add_parser(name)
        p.add_argument("name")
        p.set_defaults(func=cmd_apikey)
    aks.add_parser("list").set_defaults(func=cmd_apikey)

    pol = sub.add_parser("policy", help="check, hash and evaluate attestation policies offline")
    psub = pol.add_subparsers(dest="policy_command", required=True)
    for name, what in (
        ("check", "compile a policy; errors name line:column"),
        ("hash", "print the policy's x-ms-policy-hash"),
        ("eval", "evaluate a policy over claims and explain the outcome"),
    ):
        sp = psub.add_parser(name, help=what)
        sp.add_argument("file", help="policy text or policy JWS")
        if name == "eval":
            sp.add_argument("--claims", required=True, help="claims JSON (object or list)")
            sp.add_argument("--json", action="store_true", help="print one JSON object")
        sp.set_defaults(func=cmd_policy)

    from attestd.cli.online import add_online_commands

    add_online_commands(sub, psub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    try:
        code: int = args.func(args)
    except UsageError as exc:
        print(f"attestd {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AttestdError as exc:
        print(f"attestd {args.command}: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ConfigurationError) else EXIT_REJECTED
    return code


if __name__ == "__main__":
    sys.exit(main())
