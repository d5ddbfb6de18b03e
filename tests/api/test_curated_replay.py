"""Every curated MAA recording (``vectors/maa/curated``, see ``vectors/maa/README.md``) replayed
against attestd, and the answer compared with what Microsoft Azure Attestation answered.

Each Python SDK recording holds one exchange with the real service; each C++ one the calls of one
test (two for the draft-policy test, one otherwise). For each exchange, an attestd instance is set up as the recording implies: AAD or isolated mode, the isolated
instance's recorded signers, and the policy state before the call, reached by replaying other
recorded requests first. The recorded request is then sent byte for byte: bodies signed by keys
we do not have are valid JWS all the same, and our isolated instance trusts the recorded signers.
The C++ recordings kept no request bodies; theirs are rebuilt from the C++ SDK test that made
them and checked against what the recorded tokens say about them (quote hash, policy hash).

All quotes are verified with the 2023-05 collateral of ``maa-offline/sets/pysdk_b779_nondebug``
at its ``verification_time`` (the C++ quotes come from the same platform, FMSPC 00906ED50000;
``cppsdk_b779_nondebug__2023-05`` holds the same seven collateral files).

What the table below states per recording, and how a reply is compared with MAA's:

- ``status`` and, for errors, ``error`` (the CloudError ``code``, and ``innererror.code``) and a
  text both messages contain (MAA's messages are its own otherwise).
- ``same``: claims whose values must equal MAA's. For ``x-ms-sgx-collateral`` and
  ``maa-attestationcollateral`` that is the member names and ``quotehash``,
  ``tcbinfocertshash`` and ``qeidcertshash``; the other four members hash MAA's own (2021 or
  2022) collateral, which is not public.
- ``present``: claims MAA sent whose values depend on time (``exp``, ``iat``, ``nbf``), chance
  (``jti``) or the instance URL (``iss``). They must be present, and what does not depend on
  those must hold as in MAA's token: ``exp - iat`` equal to MAA's, ``nbf == iat``, ``jti`` 64
  hex digits, ``iss`` the instance URL and the header's ``jku`` that URL + ``/certs``.
- ``extras``: the only claims attestd may add to MAA's set. ``same | present`` must be exactly
  the claim names of MAA's token (checked against the recording first, so the table cannot
  drift from it).
- The header has MAA's member names and ``alg``. Our signature is checked with our ``/certs``
  (``kid`` and ``x5c`` are our key's), an ``alg: none`` token has an empty signature, as MAA's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from starlette.testclient import TestClient

from api.tls import mint_signer
from attestd.api.app import create_app
from attestd.config import Settings
from attestd.policy.document import (
    certificate_thumbprint,
    policy_hash,
    sign_policy_certificate_document,
)
from attestd.service import AttestationService
from attestd.store.sqlite import SQLiteStore
from conftest import MAA_OFFLINE, VECTORS

CURATED = VECTORS / "maa/curated"
SET = MAA_OFFLINE / "pysdk_b779_nondebug__2023-05"
AT = datetime.fromtimestamp(
    json.loads((SET / "meta.json").read_text())["verification_time_unix"], UTC
)
URL = "https://attestd.test"


def _recording(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CURATED / name).read_text())
    return data


# -- the reconstructed C++ requests -------------------------------------------------------------

# AttestationCollateral::OpenEnclaveQuote of Azure/azure-sdk-for-cpp
# sdk/attestation/azure-security-attestation/test/ut/attestation_collateral.cpp (MIT): a debug
# enclave (mrsigner 4aea5f9a...). SgxQuote() is this report without its 16-byte OE header, and its
# SHA-256 is the quotehash in the recorded token (checked below).
CPP_DEBUG_OE_REPORT = base64.urlsafe_b64decode(
    "AQAAAAIAAADoEQAAAAAAAAMAAgAAAAAABQAKAJOacjP3nEyplAoNs5V_Bgfl_L18zrEJejtqk6RDB0IzAAAAABERAw"
    "X_gAYAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAcAAAAAAAAABwAAAAAAAAApKh9LUZ5G"
    "Yn6yR4o9mFFAVlPFtLCmkl3oQ4NNkhaFDgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAASupfmg7QSxH4ia"
    "rf5qHTdiE6Kalahc5zN65vf-zmYQwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABAAEAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAKFQuRP5-c_ZhD2sxrnV2kl8JzNu0"
    "xWRlg-zBVhM3qP8AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAADQQAACJx8e27oQ0pijs3lXQ9HfKWP9NMq"
    "VHQFL9SOjC_KGDcbv-I2fCafTHJ__AmNqVXy7XTXnzmLp1HhUCy1_9AORSATqGZ1PtvBf4Q2NfNxqVkNrGJAjYuqMP"
    "Stdg0MuM21nN-Qc9BWNycRMMsU7YfHSzmw7eGjBb_Ewfb3k6N4ZYRhERAwX_gAYAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAABUAAAAAAAAABwAAAAAAAAA_sKzghp0uMPKOhtcMdmQDpU-7zWWO7ODhuUipFVkX"
    "QAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAjE9XddeWUD6WE393xoqCmgBWrI3tcBQLCBsJRJDFe_8AAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABAAUAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAH_mzVQFF8XbJCRGdNkA3SPx9ZUPgtx3874VyDYQnFRIAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAEUP2-pxe7LoyevtN5BdE4KKikxKK6-hwG0xCDmxmfLphcnrVskSbKmiKUfzkWUBeh"
    "rF8gHCGNGIPX3QQDwmtZ4gAAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fBQDMDQAALS0tLS1CRUdJTiBD"
    "RVJUSUZJQ0FURS0tLS0tCk1JSUVnVENDQkNhZ0F3SUJBZ0lVU3I5VmRiSnFWbzVyZzRadUpCRWo2SjNoak9jd0NnWU"
    "lLb1pJemowRUF3SXcKY1RFak1DRUdBMVVFQXd3YVNXNTBaV3dnVTBkWUlGQkRTeUJRY205alpYTnpiM0lnUTBFeEdq"
    "QVlCZ05WQkFvTQpFVWx1ZEdWc0lFTnZjbkJ2Y21GMGFXOXVNUlF3RWdZRFZRUUhEQXRUWVc1MFlTQkRiR0Z5WVRFTE"
    "1Ba0dBMVVFCkNBd0NRMEV4Q3pBSkJnTlZCQVlUQWxWVE1CNFhEVEl4TURNeE9UQTBOVEl3T0ZvWERUSTRNRE14T1RB"
    "ME5USXcKT0Zvd2NERWlNQ0FHQTFVRUF3d1pTVzUwWld3Z1UwZFlJRkJEU3lCRFpYSjBhV1pwWTJGMFpURWFNQmdHQT"
    "FVRQpDZ3dSU1c1MFpXd2dRMjl5Y0c5eVlYUnBiMjR4RkRBU0JnTlZCQWNNQzFOaGJuUmhJRU5zWVhKaE1Rc3dDUVlE"
    "ClZRUUlEQUpEUVRFTE1Ba0dBMVVFQmhNQ1ZWTXdXVEFUQmdjcWhrak9QUUlCQmdncWhrak9QUU1CQndOQ0FBUlQKVG"
    "RNNVhTMGFiRTA2ZUdVTVU3S1JOQXJlRGRtTWJHK25KVHlucDZXankyeXJ6NmlEa3h1R1F3WGZ1b25uUVBuZApjdHgw"
    "bHIyR3I0WjF1YXNsQjM2Vm80SUNtekNDQXBjd0h3WURWUjBqQkJnd0ZvQVUwT2lxMm5YWCtTNUpGNWc4CmV4UmwwTl"
    "h5V1Uwd1h3WURWUjBmQkZnd1ZqQlVvRktnVUlaT2FIUjBjSE02THk5aGNHa3VkSEoxYzNSbFpITmwKY25acFkyVnpM"
    "bWx1ZEdWc0xtTnZiUzl6WjNndlkyVnlkR2xtYVdOaGRHbHZiaTkyTWk5d1kydGpjbXcvWTJFOQpjSEp2WTJWemMyOX"
    "lNQjBHQTFVZERnUVdCQlRMejZNQ3VHcVZobFYrR2Q0ZGtacmx4YndCV2pBT0JnTlZIUThCCkFmOEVCQU1DQnNBd0RB"
    "WURWUjBUQVFIL0JBSXdBRENDQWRRR0NTcUdTSWI0VFFFTkFRU0NBY1V3Z2dIQk1CNEcKQ2lxR1NJYjRUUUVOQVFFRU"
    "VMOEhhRExXWWdVUFUzU3c3Tm1Ibkhrd2dnRmtCZ29xaGtpRytFMEJEUUVDTUlJQgpWREFRQmdzcWhraUcrRTBCRFFF"
    "Q0FRSUJFVEFRQmdzcWhraUcrRTBCRFFFQ0FnSUJFVEFRQmdzcWhraUcrRTBCCkRRRUNBd0lCQWpBUUJnc3Foa2lHK0"
    "UwQkRRRUNCQUlCQkRBUUJnc3Foa2lHK0UwQkRRRUNCUUlCQVRBUkJnc3EKaGtpRytFMEJEUUVDQmdJQ0FJQXdFQVlM"
    "S29aSWh2aE5BUTBCQWdjQ0FRWXdFQVlMS29aSWh2aE5BUTBCQWdnQwpBUUF3RUFZTEtvWklodmhOQVEwQkFna0NBUU"
    "F3RUFZTEtvWklodmhOQVEwQkFnb0NBUUF3RUFZTEtvWklodmhOCkFRMEJBZ3NDQVFBd0VBWUxLb1pJaHZoTkFRMEJB"
    "Z3dDQVFBd0VBWUxLb1pJaHZoTkFRMEJBZzBDQVFBd0VBWUwKS29aSWh2aE5BUTBCQWc0Q0FRQXdFQVlMS29aSWh2aE"
    "5BUTBCQWc4Q0FRQXdFQVlMS29aSWh2aE5BUTBCQWhBQwpBUUF3RUFZTEtvWklodmhOQVEwQkFoRUNBUW93SHdZTEtv"
    "WklodmhOQVEwQkFoSUVFQkVSQWdRQmdBWUFBQUFBCkFBQUFBQUF3RUFZS0tvWklodmhOQVEwQkF3UUNBQUF3RkFZS0"
    "tvWklodmhOQVEwQkJBUUdBSkJ1MVFBQU1BOEcKQ2lxR1NJYjRUUUVOQVFVS0FRQXdDZ1lJS29aSXpqMEVBd0lEU1FB"
    "d1JnSWhBSzZPMS9GNy80NFprcWhUN2FhNgp5QVh6QlltRWxUVHRvL25rVUd4N1BtUktBaUVBMXliSWt6SjVwcXR1L2"
    "1jOW5DUWNwRUJOdk5KZFNIcW1jc04rCkV2dWJ3WlU9Ci0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0KLS0tLS1CRUdJ"
    "TiBDRVJUSUZJQ0FURS0tLS0tCk1JSUNsekNDQWo2Z0F3SUJBZ0lWQU5Eb3F0cDExL2t1U1JlWVBIc1VaZERWOGxsTk"
    "1Bb0dDQ3FHU000OUJBTUMKTUdneEdqQVlCZ05WQkFNTUVVbHVkR1ZzSUZOSFdDQlNiMjkwSUVOQk1Sb3dHQVlEVlFR"
    "S0RCRkpiblJsYkNCRApiM0p3YjNKaGRHbHZiakVVTUJJR0ExVUVCd3dMVTJGdWRHRWdRMnhoY21FeEN6QUpCZ05WQk"
    "FnTUFrTkJNUXN3CkNRWURWUVFHRXdKVlV6QWVGdzB4T0RBMU1qRXhNRFExTURoYUZ3MHpNekExTWpFeE1EUTFNRGhh"
    "TUhFeEl6QWgKQmdOVkJBTU1Ha2x1ZEdWc0lGTkhXQ0JRUTBzZ1VISnZZMlZ6YzI5eUlFTkJNUm93R0FZRFZRUUtEQk"
    "ZKYm5SbApiQ0JEYjNKd2IzSmhkR2x2YmpFVU1CSUdBMVVFQnd3TFUyRnVkR0VnUTJ4aGNtRXhDekFKQmdOVkJBZ01B"
    "a05CCk1Rc3dDUVlEVlFRR0V3SlZVekJaTUJNR0J5cUdTTTQ5QWdFR0NDcUdTTTQ5QXdFSEEwSUFCTDlxK05NcDJJT2"
    "cKdGRsMWJrL3VXWjUrVEdRbThhQ2k4ejc4ZnMrZktDUTNkK3VEelhuVlRBVDJaaERDaWZ5SXVKd3ZOM3dOQnA5aQpI"
    "QlNTTUpNSnJCT2pnYnN3Z2Jnd0h3WURWUjBqQkJnd0ZvQVVJbVVNMWxxZE5JbnpnN1NWVXI5UUd6a25CcXd3ClVnWU"
    "RWUjBmQkVzd1NUQkhvRVdnUTRaQmFIUjBjSE02THk5alpYSjBhV1pwWTJGMFpYTXVkSEoxYzNSbFpITmwKY25acFky"
    "VnpMbWx1ZEdWc0xtTnZiUzlKYm5SbGJGTkhXRkp2YjNSRFFTNWpjbXd3SFFZRFZSME9CQllFRk5EbwpxdHAxMS9rdV"
    "NSZVlQSHNVWmREVjhsbE5NQTRHQTFVZER3RUIvd1FFQXdJQkJqQVNCZ05WSFJNQkFmOEVDREFHCkFRSC9BZ0VBTUFv"
    "R0NDcUdTTTQ5QkFNQ0EwY0FNRVFDSUMvOWorODRUK0h6dFZPL3NPUUJXSmJTZCsvMnVleEsKNCthQTBqY0ZCTGNwQW"
    "lBM2RoTXJGNWNENTJ0NkZxTXZBSXBqOFhkR215MmJlZWxqTEpLK3B6cGNSQT09Ci0tLS0tRU5EIENFUlRJRklDQVRF"
    "LS0tLS0KLS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUNqakNDQWpTZ0F3SUJBZ0lVSW1VTTFscWROSW56Zz"
    "dTVlVyOVFHemtuQnF3d0NnWUlLb1pJemowRUF3SXcKYURFYU1CZ0dBMVVFQXd3UlNXNTBaV3dnVTBkWUlGSnZiM1Fn"
    "UTBFeEdqQVlCZ05WQkFvTUVVbHVkR1ZzSUVOdgpjbkJ2Y21GMGFXOXVNUlF3RWdZRFZRUUhEQXRUWVc1MFlTQkRiR0"
    "Z5WVRFTE1Ba0dBMVVFQ0F3Q1EwRXhDekFKCkJnTlZCQVlUQWxWVE1CNFhEVEU0TURVeU1URXdOREV4TVZvWERUTXpN"
    "RFV5TVRFd05ERXhNRm93YURFYU1CZ0cKQTFVRUF3d1JTVzUwWld3Z1UwZFlJRkp2YjNRZ1EwRXhHakFZQmdOVkJBb0"
    "1FVWx1ZEdWc0lFTnZjbkJ2Y21GMAphVzl1TVJRd0VnWURWUVFIREF0VFlXNTBZU0JEYkdGeVlURUxNQWtHQTFVRUNB"
    "d0NRMEV4Q3pBSkJnTlZCQVlUCkFsVlRNRmt3RXdZSEtvWkl6ajBDQVFZSUtvWkl6ajBEQVFjRFFnQUVDNm5Fd01ESV"
    "laT2ovaVBXc0N6YUVLaTcKMU9pT1NMUkZoV0dqYm5CVkpmVm5rWTR1M0lqa0RZWUwwTXhPNG1xc3lZamxCYWxUVll4"
    "RlAyc0pCSzV6bEtPQgp1ekNCdURBZkJnTlZIU01FR0RBV2dCUWlaUXpXV3AwMGlmT0R0SlZTdjFBYk9TY0dyREJTQm"
    "dOVkhSOEVTekJKCk1FZWdSYUJEaGtGb2RIUndjem92TDJObGNuUnBabWxqWVhSbGN5NTBjblZ6ZEdWa2MyVnlkbWxq"
    "WlhNdWFXNTAKWld3dVkyOXRMMGx1ZEdWc1UwZFlVbTl2ZEVOQkxtTnliREFkQmdOVkhRNEVGZ1FVSW1VTTFscWROSW"
    "56ZzdTVgpVcjlRR3prbkJxd3dEZ1lEVlIwUEFRSC9CQVFEQWdFR01CSUdBMVVkRXdFQi93UUlNQVlCQWY4Q0FRRXdD"
    "Z1lJCktvWkl6ajBFQXdJRFNBQXdSUUlnUVFzLzA4cnljZFBhdUNGazhVUFFYQ01BbHNsb0JlN053YVFHVGNkcGEwRU"
    "MKSVFDVXQ4U0d2eEttanBjTS96MFdQOUR2bzhoMms1ZHUxaVdEZEJrQW4rMGlpQT09Ci0tLS0tRU5EIENFUlRJRklD"
    "QVRFLS0tLS0KAA" + "=="
)
CPP_SGX_QUOTE = CPP_DEBUG_OE_REPORT[16:]

# The two draft policies of AttestationTests.AttestWithDraftPolicy (attestation_test.cpp): the
# first permits that enclave and issues "custom-name" (its hash is the recorded
# x-ms-policy-hash), the second asks for a non-debuggable enclave with product id 0.
CPP_DRAFT_PERMIT = """version= 1.0;
authorizationrules
{
    [ type=="x-ms-sgx-is-debuggable", value==true] &&
    [ type=="x-ms-sgx-product-id", value!=0 ] &&
    [ type=="x-ms-sgx-svn", value>= 0 ] &&
    [ type=="x-ms-sgx-mrsigner", value == "4aea5f9a0ed04b11f889aadfe6a1d376213a29a95a85ce7337ae6f7fece6610c"]
        => permit();
};
issuancerules {
    c:[type=="x-ms-sgx-mrsigner"] => issue(type="custom-name", value=c.value);
};"""
CPP_DRAFT_DENY = """version= 1.0;
authorizationrules
{
    [ type=="x-ms-sgx-is-debuggable", value==false ] &&
    [ type=="x-ms-sgx-product-id", value==0 ] &&
    [ type=="x-ms-sgx-svn", value>= 0 ]
        => permit();
};
issuancerules {
    c:[type=="x-ms-sgx-mrsigner"] => issue(type="custom-name", value=c.value);
};"""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _cpp_draft_permit() -> bytes:
    body = {"quote": _b64url(CPP_SGX_QUOTE), "draftPolicyForAttestation": CPP_DRAFT_PERMIT}
    return json.dumps(body).encode()


def _cpp_draft_deny() -> bytes:
    body = {"quote": _b64url(CPP_SGX_QUOTE), "draftPolicyForAttestation": CPP_DRAFT_DENY}
    return json.dumps(body).encode()


def _cpp_fake_certificate_add() -> bytes:
    """CertificateTests.VerifyFailedAddCertificate (policycertmgmt_test.cpp): a fresh
    self-signed "CN=FakeIsolatedKey" key signs the addition of another fresh one, sent to an AAD
    instance (the body is the JWS as a JSON string, as the SDKs send it)."""
    signer, added = mint_signer("FakeIsolatedKey"), mint_signer("FakeIsolatedKey")
    key = load_pem_private_key(signer.key_pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    jws = sign_policy_certificate_document(
        added.certificate,
        key=key,
        signer_certificate=signer.certificate,
        algorithm="RS256",
    )
    return json.dumps(jws).encode()


# -- the table ----------------------------------------------------------------------------------

ATTEST_TIMES = ("exp", "iat", "iss", "jti", "nbf")
MANAGEMENT_TIMES = ("exp", "iat", "iss", "nbf")  # MAA's management responses carry no jti
SGX_QUOTE = (
    "x-ms-attestation-type",
    "x-ms-sgx-is-debuggable",
    "x-ms-sgx-mrenclave",
    "x-ms-sgx-mrsigner",
    "x-ms-sgx-product-id",
    "x-ms-sgx-report-data",
    "x-ms-sgx-svn",
    "x-ms-ver",
)
COLLATERAL = ("x-ms-sgx-collateral", "maa-attestationcollateral")
EHD = ("x-ms-sgx-ehd", "maa-ehd", "aas-ehd")  # runtimeData of dataType Binary
# What the default SGX/OpenEnclave policy issues (its 2021 aliases).
DEFAULT_POLICY_ISSUED = (
    "is-debuggable",
    "product-id",
    "sgx-mrenclave",
    "sgx-mrsigner",
    "svn",
    "tee",
)
# attestd's own claims in every attestation token: the TCB verdict MAA does not expose, and the
# fixed verification time of an archival instance.
ATTESTD_CLAIMS = frozenset(
    {
        "x-attestd-advisory-ids",
        "x-attestd-collateral-expired",
        "x-attestd-fmspc",
        "x-attestd-pck-ca",
        "x-attestd-qe-tcb-status",
        "x-attestd-tcb-date",
        "x-attestd-tcb-evaluation-data-number",
        "x-attestd-tcb-status",
        "x-attestd-verification-time",
    }
)
# The 2022 service also puts the policy-issued claims in an "x-ms-policy" object (the C++
# recording shows it); attestd does, the 2021 service did not.
POLICY_OBJECT = "x-ms-policy"
# Members of MAA's collateral claims that hash MAA's own collateral.
MAA_COLLATERAL_HASHES = frozenset({"tcbinfohash", "qeidhash", "tcbinfocrlhash", "qeidcrlhash"})
# Our JWKS members beyond MAA's {"x5c", "kid", "kty"}: the public key itself and its use.
JWKS_EXTRAS = frozenset({"alg", "use", "n", "e"})

AAD_INSTANCE = "pylarryoattestationaad.wus (AAD mode)"
AAD_ISSUER = "https://pylarryoattestationaad.wus.attest.azure.net"  # iss of its tokens
ISO_INSTANCE = "pylarryoattestationiso.wus (isolated mode)"
SHARED_INSTANCE = "sharedwus.wus (shared: AAD mode, default policies)"
SHARED_2022 = "sharedwus.wus, 2022 (shared: AAD mode, default policies)"
AAD_2022 = "an AAD-mode instance, 2022"

# The isolated instance's signers before certificates_add.json added AttestationCertificate0
# (357E7DA4...): its GET /certificates, recorded after that addition, lists these two, then it.
ISOLATED_SIGNERS = (
    "B23E06608E27AEF3EB34E28BCB70ACE1E9177E3E",  # CN=AttestationIsolatedManagementCertificate
    "072FC13D6577061BE70160539AAEE09CBDF2CF2F",  # CN=NewCertificateName
)


@dataclass(frozen=True)
class Before:
    """A recorded request replayed first, to reach the state the recording implies: the recorded
    body of ``recording`` sent to ``method path``."""

    method: str
    path: str
    recording: str


# The recorded permit-all uploads: unsigned on the AAD instance, signed by
# AttestationIsolatedManagementCertificate on the isolated one. The text of both is
# "version=1.0; authorizationrules{=> permit();}; issuancerules{};", hash z0FRjKS0... .
UNSIGNED_PERMIT_ALL = "policy_set_unsigned_aad.json"
SIGNED_PERMIT_ALL = "policy_set_signed_isolated.json"


@dataclass(frozen=True)
class Replay:
    recording: str
    instance: str
    mode: str
    status: int
    shape: str  # "token", "error", "jwks", "openid" or "tpm" (what a 200 body holds)
    alg: str | None = None
    same: tuple[str, ...] = ()
    present: tuple[str, ...] = ()
    extras: frozenset[str] = frozenset()
    error: str | None = None
    message: str | None = None
    before: tuple[Before, ...] = ()
    call: int | None = None  # the C++ recordings: which of their calls
    body: Callable[[], bytes] | None = None  # rebuilt request body (C++ recordings)
    note: str = field(default="", compare=False)

    @property
    def id(self) -> str:
        stem = self.recording.removesuffix(".json")
        return stem if self.call is None else f"{stem}[{self.call}]"


TABLE = (
    Replay(
        "attest_openenclave_binary_runtime_aad.json",
        AAD_INSTANCE,
        "aad",
        200,
        "token",
        alg="RS256",
        same=(*SGX_QUOTE, *COLLATERAL, *EHD, "x-ms-policy-hash"),
        present=ATTEST_TIMES,
        extras=ATTESTD_CLAIMS,
        before=(Before("PUT", "/policies/OpenEnclave", UNSIGNED_PERMIT_ALL),),
        note="policy hash z0FR... and no x-ms-policy-signer: the unsigned permit-all policy",
    ),
    Replay(
        "attest_openenclave_draft_policy_unsigned_token.json",
        AAD_INSTANCE,
        "aad",
        200,
        "token",
        alg="none",
        same=(*SGX_QUOTE, *COLLATERAL, "x-ms-runtime", "x-ms-policy-hash"),
        present=ATTEST_TIMES,
        extras=ATTESTD_CLAIMS,
        before=(Before("PUT", "/policies/OpenEnclave", UNSIGNED_PERMIT_ALL),),
        note="draft policy: unsigned token; runtimeData as JSON gives x-ms-runtime, no ehd",
    ),
    Replay(
        "attest_openenclave_json_runtime_isolated_signedpolicy.json",
        ISO_INSTANCE,
        "isolated",
        200,
        "token",
        alg="RS256",
        same=(*SGX_QUOTE, *COLLATERAL, "x-ms-runtime", "x-ms-policy-hash", "x-ms-policy-signer"),
        present=ATTEST_TIMES,
        extras=ATTESTD_CLAIMS,
        before=(Before("PUT", "/policies/OpenEnclave", SIGNED_PERMIT_ALL),),
        note="x-ms-policy-signer names the signer of the recorded signed permit-all upload",
    ),
    Replay(
        "attest_sgx_binary_shared_default_policy.json",
        SHARED_INSTANCE,
        "aad",
        200,
        "token",
        alg="RS256",
        same=(*SGX_QUOTE, *COLLATERAL, *EHD, "x-ms-policy-hash", *DEFAULT_POLICY_ISSUED),
        present=ATTEST_TIMES,
        extras=ATTESTD_CLAIMS | {POLICY_OBJECT},
        note="the default policy (hash bROrN897...) issues the 2021 aliases",
    ),
    Replay(
        "attest_sgx_draft_policy_custom_claim_and_deny_400_2022.json",
        SHARED_2022,
        "aad",
        200,
        "token",
        alg="none",
        same=(*SGX_QUOTE, *COLLATERAL, "x-ms-policy-hash", "custom-name", POLICY_OBJECT),
        present=ATTEST_TIMES,
        extras=ATTESTD_CLAIMS,
        call=0,
        body=_cpp_draft_permit,
        note="request rebuilt: C++ SDK debug quote + the permitting draft policy",
    ),
    Replay(
        "attest_sgx_draft_policy_custom_claim_and_deny_400_2022.json",
        SHARED_2022,
        "aad",
        400,
        "error",
        error="PolicyEvaluationError",
        message=(
            "Policy Engine Exception: No Permit claim was issued in the authorizationrules "
            "section, authorization failed."
        ),
        call=1,
        body=_cpp_draft_deny,
        note="request rebuilt: the same quote + the denying draft policy",
    ),
    Replay(
        "attest_tpm_init_aikcert.json",
        AAD_INSTANCE,
        "aad",
        200,
        "tpm",
        note="TPM protocol step 1 (aikcert): MAA answers a challenge in {'data': ...}",
    ),
    Replay(
        "certificates_add.json",
        ISO_INSTANCE,
        "isolated",
        200,
        "token",
        alg="RS256",
        same=("x-ms-certificate-thumbprint", "x-ms-policycertificates-result"),
        present=MANAGEMENT_TIMES,
        note="IsPresent, thumbprint 357E7DA4... (AttestationCertificate0)",
    ),
    Replay(
        "certificates_get_isolated.json",
        ISO_INSTANCE,
        "isolated",
        200,
        "token",
        alg="RS256",
        same=("x-ms-policy-certificates",),
        present=MANAGEMENT_TIMES,
        before=(Before("POST", "/certificates:add", "certificates_add.json"),),
        note="the three signers, in order, as {alg, kty, use, x5c}",
    ),
    Replay(
        "certificates_remove.json",
        ISO_INSTANCE,
        "isolated",
        200,
        "token",
        alg="RS256",
        same=("x-ms-certificate-thumbprint", "x-ms-policycertificates-result"),
        present=MANAGEMENT_TIMES,
        before=(Before("POST", "/certificates:add", "certificates_add.json"),),
        note="IsAbsent, after the recorded addition of the same certificate",
    ),
    Replay(
        "certs_jwks.json",
        AAD_INSTANCE,
        "aad",
        200,
        "jwks",
        note="keys of {x5c, kid, kty}, RSA, one whose leaf is CN=<instance URL>",
    ),
    Replay(
        "error_certificates_add_aad_400.json",
        AAD_2022,
        "aad",
        400,
        "error",
        error="InvalidOperation",
        message="the operation is disallowed",
        body=_cpp_fake_certificate_add,
        call=0,
        note="request rebuilt: a fake signer adds a fake certificate on an AAD instance",
    ),
    Replay(
        "openid_configuration_shared_2022.json",
        SHARED_2022,
        "aad",
        200,
        "openid",
        call=0,
        note="the same members and lists; issuer, jwks_uri and revocation_endpoint on our URL",
    ),
    Replay(
        "policy_get_shared_default_sgx.json",
        SHARED_INSTANCE,
        "aad",
        200,
        "token",
        alg="RS256",
        same=("x-ms-policy",),
        present=MANAGEMENT_TIMES,
        note="the default SGX policy as an unsigned JWS, byte for byte",
    ),
    Replay(
        "policy_get_shared_tpm_none.json",
        SHARED_INSTANCE,
        "aad",
        200,
        "token",
        alg="RS256",
        same=("x-ms-policy",),
        present=MANAGEMENT_TIMES,
        note="no TPM policy: eyJhbGciOiJub25lIn0..",
    ),
    Replay(
        "policy_reset_signed.json",
        AAD_INSTANCE,
        "aad",
        200,
        "token",
        alg="RS256",
        same=("x-ms-policy-result",),
        present=MANAGEMENT_TIMES,
        before=(Before("PUT", "/policies/SgxEnclave", UNSIGNED_PERMIT_ALL),),
        note="signed (AttestationCertificate0) empty-payload reset on an AAD instance: Removed",
    ),
    Replay(
        "policy_reset_unsigned.json",
        AAD_INSTANCE,
        "aad",
        200,
        "token",
        alg="RS256",
        same=("x-ms-policy-result",),
        present=MANAGEMENT_TIMES,
        before=(Before("PUT", "/policies/SgxEnclave", UNSIGNED_PERMIT_ALL),),
        note="eyJhbGciOiJub25lIn0.. reset: Removed",
    ),
    Replay(
        "policy_set_signed_isolated.json",
        ISO_INSTANCE,
        "isolated",
        200,
        "token",
        alg="RS256",
        same=("x-ms-policy-result", "x-ms-policy-signer", "x-ms-policy-token-hash"),
        present=MANAGEMENT_TIMES,
        note="Updated; the signer as {alg, kty, use, x5c}; the hash of the JWS as sent",
    ),
    Replay(
        "policy_set_unsigned_aad.json",
        AAD_INSTANCE,
        "aad",
        200,
        "token",
        alg="RS256",
        same=("x-ms-policy-result", "x-ms-policy-token-hash"),
        present=MANAGEMENT_TIMES,
        note="Updated; no signer",
    ),
)

CASES = [pytest.param(case, id=case.id) for case in TABLE]


# -- MAA's side ---------------------------------------------------------------------------------


class Exchange(NamedTuple):
    method: str
    target: str  # path and query
    content_type: str | None
    body: bytes | None
    status: int
    response: Any  # the JSON body
    headers: dict[str, str] | None  # the C++ recordings kept the response headers


def recorded(case: Replay) -> Exchange:
    data = _recording(case.recording)
    if case.call is None:
        content_type = data["request_headers"].get("Content-Type", [None])[0]
        body = data["request_body"]
        return Exchange(
            data["method"],
            data["path"] + (f"?{data['query']}" if data["query"] else ""),
            content_type,
            None if body is None else body.encode("utf-8"),
            data["response_status"],
            json.loads(data["response_body"]),
            None,
        )
    call = data["calls"][case.call]
    url = urlsplit(call["Url"])
    response = call["Response"]
    return Exchange(
        call["Method"],
        url.path + (f"?{url.query}" if url.query else ""),
        call["Headers"].get("content-type") if case.body is not None else None,
        case.body() if case.body is not None else None,
        int(response["STATUS_CODE"]),
        json.loads(response["BODY"]),
        {k: v for k, v in response.items() if k.islower()},
    )


def _segment(text: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    return value


def split_token(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return _segment(header), _segment(payload), signature


# -- our side -----------------------------------------------------------------------------------


def _isolated_signers() -> list[x509.Certificate]:
    keys = _recording("certificates_get_isolated.json")["token_claims"]["x-ms-policy-certificates"]
    certs = {}
    for key in keys["keys"]:
        cert = x509.load_der_x509_certificate(base64.b64decode(key["x5c"][0]))
        certs[certificate_thumbprint(cert)] = cert
    return [certs[t] for t in ISOLATED_SIGNERS]


@dataclass
class Instance:
    client: TestClient
    service: AttestationService
    auth: dict[str, str]

    def send(self, method: str, target: str, content_type: str | None, body: bytes | None) -> Any:
        headers = dict(self.auth)
        if content_type is not None:
            headers["Content-Type"] = content_type
        return self.client.request(method, target, content=body, headers=headers)


@pytest.fixture
def make_instance(tmp_path: Path) -> Iterator[Callable[[str], Instance]]:
    made: list[Instance] = []

    def make(mode: str) -> Instance:
        signers: list[str] = []
        if mode == "isolated":
            for i, cert in enumerate(_isolated_signers()):
                pem = tmp_path / f"signer{i}.pem"
                pem.write_bytes(cert.public_bytes(Encoding.PEM))
                signers.append(str(pem))
        settings = Settings(
            instance_url=URL,
            database=str(tmp_path / f"attestd{len(made)}.sqlite3"),
            mode=mode,
            collateral_bundle=str(SET),
            verification_time=AT,
            isolated_signers=tuple(signers),
        )
        service = AttestationService(
            settings, store=SQLiteStore(settings.database), clock=lambda: AT
        )
        key = service.store.create_api_key("replay-admin", at=AT)
        instance = Instance(
            TestClient(create_app(service)), service, {"Authorization": f"Bearer {key}"}
        )
        made.append(instance)
        return instance

    yield make
    for instance in made:
        instance.client.close()
        instance.service.store.close()


TPM_POLICY = "version=1.0; authorizationrules{=> permit();}; issuancerules{};"


def replay(case: Replay, make: Callable[[str], Instance]) -> tuple[Instance, Exchange, Any]:
    maa = recorded(case)
    ours = make(case.mode)
    if case.shape == "tpm":
        # MAA answers the TPM init only once a TPM policy is set (maa-compat §1.4); the SDK
        # test that recorded it had set one. Set a permit-all TPM policy the same way.
        from attestd.policy.document import unsigned_policy

        r = ours.send(
            "PUT",
            "/policies/Tpm?api-version=2020-10-01",
            "text/plain",
            unsigned_policy(TPM_POLICY).encode(),
        )
        assert r.status_code == 200, r.text
    for step in case.before:
        data = _recording(step.recording)
        content_type = data["request_headers"]["Content-Type"][0]
        r = ours.send(step.method, step.path, content_type, data["request_body"].encode())
        assert r.status_code == 200, (step, r.text)
    return ours, maa, ours.send(maa.method, maa.target, maa.content_type, maa.body)


# -- comparisons --------------------------------------------------------------------------------


def compare_collateral(name: str, ours: Any, theirs: Any) -> None:
    assert isinstance(ours, dict) and set(ours) == set(theirs), name
    for member, value in theirs.items():
        if member not in MAA_COLLATERAL_HASHES:
            assert ours[member] == value, f"{name}.{member}"


def compare_token(case: Replay, instance: Instance, ours_token: str, maa_token: str) -> None:
    maa_header, maa, maa_signature = split_token(maa_token)
    header, claims, signature = split_token(ours_token)

    # The table states MAA's claim set; it must be the recording's.
    assert set(case.same) | set(case.present) == set(maa), "the table does not match the recording"
    assert not set(case.same) & set(case.present)

    assert set(header) == set(maa_header)
    assert header["alg"] == maa_header["alg"] == case.alg
    assert header["typ"] == maa_header["typ"]
    assert maa_header["jku"] == f"{maa['iss']}/certs"
    assert header["jku"] == f"{URL}/certs"
    if case.alg == "none":
        assert signature == maa_signature == ""
    else:
        jwks = instance.client.get("/certs").json()
        key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
        verified = jwt.decode(
            ours_token, key=key, algorithms=[header["alg"]], options={"verify_exp": False}
        )
        assert verified == claims

    missing = set(maa) - set(claims)
    assert not missing, f"MAA's claims missing from ours: {sorted(missing)}"
    unexpected = set(claims) - set(maa) - case.extras
    assert not unexpected, f"claims MAA does not send: {sorted(unexpected)}"

    for name in case.same:
        if name in COLLATERAL:
            compare_collateral(name, claims[name], maa[name])
        else:
            assert claims[name] == maa[name], name
    for name in case.present:
        assert name in claims, name
    assert claims["exp"] - claims["iat"] == maa["exp"] - maa["iat"]
    assert claims["nbf"] == claims["iat"] and maa["nbf"] == maa["iat"]
    assert claims["iss"] == URL
    if "jti" in case.present:
        assert re.fullmatch("[0-9a-f]{64}", claims["jti"]) and re.fullmatch(
            "[0-9a-f]{64}", maa["jti"]
        )
    if POLICY_OBJECT in case.extras:  # the 2022 form: the issued claims, again, in one object
        assert claims[POLICY_OBJECT] == {k: claims[k] for k in DEFAULT_POLICY_ISSUED}


def compare_jwks(ours: Any, maa: Any, maa_issuer: str) -> None:
    def leaf_cn(key: dict[str, Any]) -> str:
        cert = x509.load_der_x509_certificate(base64.b64decode(key["x5c"][0]))
        return str(cert.subject.rfc4514_string())

    maa_names = {name for key in maa["keys"] for name in key}
    assert maa_names == {"x5c", "kid", "kty"}
    assert {key["kty"] for key in maa["keys"]} == {"RSA"}
    assert f"CN={maa_issuer}" in {leaf_cn(key) for key in maa["keys"]}
    assert ours["keys"]
    for key in ours["keys"]:
        assert maa_names <= set(key) <= maa_names | JWKS_EXTRAS, sorted(key)
        assert key["kty"] == "RSA"
    assert f"CN={URL}" in {leaf_cn(key) for key in ours["keys"]}


def compare_openid(ours: Any, maa: Any) -> None:
    maa_base = maa["issuer"]
    assert set(ours) == set(maa)
    for name in (
        "claims_supported",
        "id_token_signing_alg_values_supported",
        "response_types_supported",
    ):
        assert ours[name] == maa[name], name
    for name, path in (("issuer", ""), ("jwks_uri", "/certs"), ("revocation_endpoint", "/revoke")):
        assert maa[name] == maa_base + path
        assert ours[name] == URL + path


def compare_headers(ours: Any, maa: dict[str, str]) -> None:
    """The C++ recordings kept MAA's response headers."""
    assert ours.headers["content-type"] == maa["content-type"]
    assert "x-ms-maa-service-version" in ours.headers
    request_id = re.compile("00-[0-9a-f]{32}-0{16}-00")
    assert request_id.fullmatch(maa["x-ms-request-id"])
    assert request_id.fullmatch(ours.headers["x-ms-request-id"])


# -- the tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_replay(case: Replay, make_instance: Callable[[str], Instance]) -> None:
    instance, maa, r = replay(case, make_instance)
    assert maa.status == case.status, "the table does not match the recording"
    assert r.status_code == maa.status, r.text
    body = r.json()
    if maa.headers is not None:
        compare_headers(r, maa.headers)

    if case.shape == "error":
        assert maa.response["error"]["code"] == maa.response["error"]["innererror"]["code"]
        assert maa.response["error"]["code"] == case.error
        assert body["error"]["code"] == body["error"]["innererror"]["code"] == case.error
        assert case.message is not None
        assert case.message.casefold() in maa.response["error"]["message"].casefold()
        assert case.message.casefold() in body["error"]["message"].casefold()
    elif case.shape == "token":
        assert set(body) == set(maa.response) == {"token"}
        compare_token(case, instance, body["token"], maa.response["token"])
    elif case.shape == "jwks":
        compare_jwks(body, maa.response, AAD_ISSUER)
    elif case.shape == "openid":
        compare_openid(body, maa.response)
    elif case.shape == "tpm":
        assert set(body) == set(maa.response) == {"data"}
        ours_msg, maa_msg = _tpm_message(body["data"]), _tpm_message(maa.response["data"])
        assert set(ours_msg) == set(maa_msg) == {"payload"}
        assert (
            set(ours_msg["payload"]) == set(maa_msg["payload"]) == {"challenge", "service_context"}
        )
        assert (
            len(_b64u(ours_msg["payload"]["challenge"]))
            == len(_b64u(maa_msg["payload"]["challenge"]))
            == 16
        )
        ours_ctx = json.loads(_b64u(ours_msg["payload"]["service_context"]))
        maa_ctx = json.loads(_b64u(maa_msg["payload"]["service_context"]))
        assert set(ours_ctx) == set(maa_ctx) == {"ProtectionKeyName", "ProtectedContext"}
        assert len(ours_ctx["ProtectionKeyName"]) == len(maa_ctx["ProtectionKeyName"]) == 64
        opened = instance.service.open_service_context(ours_msg["payload"]["service_context"])
        assert opened["challenge"] == ours_msg["payload"]["challenge"]
    else:  # pragma: no cover - a typo in the table
        raise AssertionError(case.shape)


def _b64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _tpm_message(data: str) -> Any:
    return json.loads(_b64u(data))


def test_tpm_init_without_a_tpm_policy_is_refused(make_instance: Callable[[str], Instance]) -> None:
    """MAA: 'A VBS attestation policy has not been set on the attestation provider.'"""
    (case,) = [c for c in TABLE if c.shape == "tpm"]
    maa = recorded(case)
    ours = make_instance(case.mode)
    r = ours.send(maa.method, maa.target, maa.content_type, maa.body)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "InvalidOperation"
    assert "policy has not been set" in error["message"]


def test_tpm_service_context_is_authenticated(make_instance: Callable[[str], Instance]) -> None:
    from attestd.service import InvalidRequest

    (case,) = [c for c in TABLE if c.shape == "tpm"]
    ours, _, r = replay(case, make_instance)
    context = _tpm_message(r.json()["data"])["payload"]["service_context"]
    outer = json.loads(_b64u(context))
    sealed = bytearray(_b64u(outer["ProtectedContext"]))
    sealed[-1] ^= 1
    outer["ProtectedContext"] = base64.urlsafe_b64encode(bytes(sealed)).rstrip(b"=").decode()
    forged = base64.urlsafe_b64encode(json.dumps(outer).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidRequest):
        ours.service.open_service_context(forged)
    ours.service.rotate_signing_key()  # a rotation retires outstanding contexts
    with pytest.raises(InvalidRequest):
        ours.service.open_service_context(context)


def test_the_table_covers_every_curated_recording() -> None:
    replayed: dict[str, set[int | None]] = {}
    for case in TABLE:
        replayed.setdefault(case.recording, set()).add(case.call)
    expected: dict[str, set[int | None]] = {}
    for path in CURATED.glob("*.json"):
        data = json.loads(path.read_text())
        expected[path.name] = set(range(len(data["calls"]))) if "calls" in data else {None}
    assert replayed == expected


def test_the_rebuilt_cpp_requests_are_the_recorded_ones() -> None:
    """What the recorded draft-policy token says about its request: the quote (by its hash) and
    the draft policy (by its hash). The denying policy and the fake certificates leave no trace
    in MAA's error answers; they are the C++ tests' own."""
    _, maa, _ = split_token(
        json.loads(
            _recording("attest_sgx_draft_policy_custom_claim_and_deny_400_2022.json")["calls"][0][
                "Response"
            ]["BODY"]
        )["token"]
    )
    assert hashlib.sha256(CPP_SGX_QUOTE).hexdigest() == maa["x-ms-sgx-collateral"]["quotehash"]
    assert policy_hash(CPP_DRAFT_PERMIT) == maa["x-ms-policy-hash"]
    # The OE header: format 1, type 2 (remote), then the size of the quote that follows.
    assert CPP_DEBUG_OE_REPORT[:8] == bytes.fromhex("0100000002000000")
    assert int.from_bytes(CPP_DEBUG_OE_REPORT[8:16], "little") == len(CPP_SGX_QUOTE)
