"""MAA's attestation policy language (versions 1.0, 1.1, 1.2): parse, check, compile once,
evaluate per request, and explain the outcome."""

from attestd.policy.compile import CompiledPolicy, compile_policy
from attestd.policy.evaluate import Claim, Evaluation, claims_from_json, evaluate

__all__ = [
    "Claim",
    "CompiledPolicy",
    "Evaluation",
    "claims_from_json",
    "compile_policy",
    "evaluate",
]
