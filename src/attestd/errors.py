"""The one exception tree of attestd.

Every class carries a stable ``code`` (a string that never changes once released); messages are for
humans and may change. Only the HTTP layer (and the CLI) map these to status codes / exit codes.

Our exception hierarchy::

    AttestdError
    ├── EvidenceError                      the evidence is at fault (client error)
    │   ├── MalformedEvidence              bytes do not parse (structure, field, offset)
    │   ├── UnsupportedEvidence            well-formed, but a version/type we do not verify
    │   └── VerificationError              parsed, but does not verify
    │       ├── UntrustedCertificateChain  chain does not lead to a configured trust anchor
    │       ├── InvalidCertificateChain    wrong shape, issuer/subject mismatch, bad signature
    │       ├── CertificateExpired         a certificate in the evidence is outside its validity
    │       ├── CertificateRevoked         PCK or intermediate listed in a CRL
    │       ├── InvalidQuoteSignature      attestation-key signature over header||body fails
    │       ├── InvalidQeReportSignature   PCK signature over the QE report fails
    │       ├── QeReportDataMismatch       QE report_data does not bind the attestation key
    │       ├── QeIdentityMismatch         QE report does not match the QE Identity
    │       ├── TcbInfoMismatch            FMSPC / PCE-ID / TEE type differ from the TCB Info
    │       ├── TdxModuleMismatch          TDX module identity not found or not matching
    │       ├── TcbNotSupported            no TCB level matches the platform
    │       ├── TcbRevoked                 the matched TCB level (platform, QE or module) is Revoked
    │       ├── TcbStatusUnrecognized      the collateral carries a status we do not know
    │       ├── AttestNotTpmGenerated      TPMS_ATTEST magic is not TPM_GENERATED_VALUE
    │       ├── AttestNotQuote             TPMS_ATTEST is not a quote
    │       ├── QualifyingDataMismatch     TPM quote extraData is not the nonce
    │       ├── KeyNotCertified            a TPM2_Certify result does not certify the key sent
    │       └── PcrDigestMismatch          PCR values do not hash to the signed pcrDigest
    ├── CollateralError                    the verifier's inputs are at fault (service error)
    │   ├── CollateralMalformed            collateral does not parse
    │   ├── CollateralSignatureInvalid     collateral or its issuer chain does not verify
    │   ├── CollateralUntrusted            collateral chain does not lead to the trust anchor
    │   ├── CollateralRevoked              collateral signing certificate is revoked
    │   ├── CollateralExpired              collateral (CRL, TCB Info, QE Identity, chain) outside its window
    │   └── CollateralUnavailable          no collateral for this platform (missing file, 404, network)
    ├── PolicyError                        an attestation policy is at fault (client error)
    │   ├── PolicyParsingError             text does not parse (line, column, caret excerpt)
    │   ├── PolicySemanticError            parses, but is wrong (unknown function, arity, types)
    │   ├── PolicyDocumentError            the policy JWS is malformed
    │   └── PolicySignatureInvalid         the policy JWS is not signed by a trusted signer
    └── ConfigurationError                 bad options or trust anchors

Policy evaluation never raises for an unauthorized result: that is a result, not an error.
"""

from __future__ import annotations

__all__ = [
    "AttestNotQuote",
    "AttestNotTpmGenerated",
    "AttestdError",
    "CertificateExpired",
    "CertificateRevoked",
    "CollateralError",
    "CollateralExpired",
    "CollateralMalformed",
    "CollateralRevoked",
    "CollateralSignatureInvalid",
    "CollateralUnavailable",
    "CollateralUntrusted",
    "ConfigurationError",
    "EvidenceError",
    "InvalidCertificateChain",
    "InvalidQeReportSignature",
    "InvalidQuoteSignature",
    "KeyNotCertified",
    "MalformedEvidence",
    "PcrDigestMismatch",
    "PolicyDocumentError",
    "PolicyError",
    "PolicyParsingError",
    "PolicySemanticError",
    "PolicySignatureInvalid",
    "QeIdentityMismatch",
    "QeReportDataMismatch",
    "QualifyingDataMismatch",
    "TcbInfoMismatch",
    "TcbNotSupported",
    "TcbRevoked",
    "TcbStatusUnrecognized",
    "TdxModuleMismatch",
    "UnsupportedEvidence",
    "UntrustedCertificateChain",
    "VerificationError",
]


class AttestdError(Exception):
    """Base of every error attestd raises on purpose."""

    code: str = "Error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class EvidenceError(AttestdError):
    code = "InvalidEvidence"


class MalformedEvidence(EvidenceError):
    """The evidence bytes do not parse. Names the structure, the field and the byte offset."""

    code = "MalformedEvidence"

    def __init__(self, structure: str, field: str, offset: int, reason: str) -> None:
        super().__init__(f"{structure}.{field} at offset {offset}: {reason}")
        self.structure = structure
        self.field = field
        self.offset = offset
        self.reason = reason


class UnsupportedEvidence(EvidenceError):
    code = "UnsupportedEvidence"


class VerificationError(EvidenceError):
    code = "VerificationFailed"


class UntrustedCertificateChain(VerificationError):
    code = "UntrustedCertificateChain"


class InvalidCertificateChain(VerificationError):
    code = "InvalidCertificateChain"


class CertificateExpired(VerificationError):
    code = "CertificateExpired"


class CertificateRevoked(VerificationError):
    code = "CertificateRevoked"


class InvalidQuoteSignature(VerificationError):
    code = "InvalidQuoteSignature"


class InvalidQeReportSignature(VerificationError):
    code = "InvalidQeReportSignature"


class QeReportDataMismatch(VerificationError):
    code = "QeReportDataMismatch"


class QeIdentityMismatch(VerificationError):
    code = "QeIdentityMismatch"


class TcbInfoMismatch(VerificationError):
    code = "TcbInfoMismatch"


class TdxModuleMismatch(VerificationError):
    code = "TdxModuleMismatch"


class TcbNotSupported(VerificationError):
    code = "TcbNotSupported"


class TcbRevoked(VerificationError):
    code = "TcbRevoked"


class TcbStatusUnrecognized(VerificationError):
    code = "TcbStatusUnrecognized"


class AttestNotTpmGenerated(VerificationError):
    """``TPMS_ATTEST.magic`` is not ``TPM_GENERATED_VALUE``: the TPM did not produce it."""

    code = "AttestNotTpmGenerated"


class AttestNotQuote(VerificationError):
    """``TPMS_ATTEST.type`` is not ``TPM_ST_ATTEST_QUOTE`` (e.g. a certify or creation
    attestation signed by the same AK)."""

    code = "AttestNotQuote"


class QualifyingDataMismatch(VerificationError):
    """``TPMS_ATTEST.extraData`` is not the verifier's qualifying data (nonce)."""

    code = "QualifyingDataMismatch"


class KeyNotCertified(VerificationError):
    """A ``TPM2_Certify`` result (``TPMS_ATTEST`` + signature) does not show that the AK
    certified the key sent with it: not TPM-generated, not a certification, or another Name."""

    code = "KeyNotCertified"


class PcrDigestMismatch(VerificationError):
    """The PCR values do not hash to the signed ``pcrDigest``, or an event log does not replay
    to them. ``selection`` names the banks and PCRs concerned (``sha256:0,1,2 sha1:0,1,2``);
    for a log, ``event`` is the index of the event the message names (``None``: none)."""

    code = "PcrDigestMismatch"

    def __init__(self, message: str, *, selection: str, event: int | None = None) -> None:
        super().__init__(message)
        self.selection = selection
        self.event = event


class CollateralError(AttestdError):
    code = "CollateralError"


class CollateralMalformed(CollateralError):
    code = "CollateralMalformed"


class CollateralSignatureInvalid(CollateralError):
    code = "CollateralSignatureInvalid"


class CollateralUntrusted(CollateralError):
    code = "CollateralUntrusted"


class CollateralRevoked(CollateralError):
    code = "CollateralRevoked"


class CollateralExpired(CollateralError):
    """Some collateral is outside its validity window at the verification time.

    ``item`` names it (``pck_crl``, ``root_ca_crl``, ``tcb_info``, ``qe_identity``, or a chain
    certificate such as ``tcb_info_issuer_chain:Intel SGX TCB Signing``).
    """

    code = "CollateralExpired"

    def __init__(self, item: str, message: str) -> None:
        super().__init__(message)
        self.item = item


class CollateralUnavailable(CollateralError):
    code = "CollateralUnavailable"


class PolicyError(AttestdError):
    code = "PolicyError"


class PolicyParsingError(PolicyError):
    """A policy that does not parse. ``line`` and ``column`` are 1-based; ``excerpt`` is the
    offending source line with a caret under the column."""

    code = "PolicyParsingError"

    def __init__(self, message: str, *, line: int, column: int, source: str = "") -> None:
        self.line = line
        self.column = column
        lines = source.splitlines() or [""]
        text = lines[line - 1] if 0 < line <= len(lines) else ""
        self.excerpt = f"{text}\n{' ' * (column - 1)}^" if source else ""
        super().__init__(f"line {line}, column {column}: {message}")

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "line": str(self.line), "column": str(self.column)}


class PolicySemanticError(PolicyParsingError):
    """Parses, but cannot run: unknown function, wrong arity, type mismatch, an action in the
    wrong section. Caught when the policy is compiled, never at evaluation."""

    code = "PolicySemanticError"


class PolicyDocumentError(PolicyError):
    code = "InvalidPolicyDocument"


class PolicySignatureInvalid(PolicyError):
    code = "PolicySignatureInvalid"


class ConfigurationError(AttestdError):
    code = "ConfigurationError"
