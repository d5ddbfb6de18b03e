"""The PCK certificate SGX extension on real Processor and Platform CA certificates."""

from __future__ import annotations

import pytest
from cryptography import x509

from attestd.errors import MalformedEvidence
from attestd.pki.sgx_extension import SGX_EXTENSION_OID, parse_pck_extension
from conftest import DCAP


def _ext(sample: str) -> bytes:
    leaf = x509.load_pem_x509_certificates((DCAP / sample / "pck_chain.pem").read_bytes())[0]
    value = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXTENSION_OID)).value
    assert isinstance(value, x509.UnrecognizedExtension)
    return value.value


def test_processor_ca_leaf_has_five_entries() -> None:
    ext = parse_pck_extension(_ext("phala-dcap-qvl/sgx_v3"))
    assert ext.fmspc.hex() == "00a067110000"
    assert len(ext.tcb_components) == 16 and len(ext.cpusvn) == 16
    assert ext.platform_instance_id is None and ext.dynamic_platform is None


def test_platform_ca_leaf_has_seven_entries() -> None:
    ext = parse_pck_extension(_ext("phala-dcap-qvl/tdx_v4"))
    assert ext.platform_instance_id is not None and len(ext.platform_instance_id) == 16
    assert ext.dynamic_platform is not None
    assert ext.pce_id == b"\x00\x00"


def test_pck_tcb_of_maa_quote() -> None:
    ext = parse_pck_extension(_ext("../maa-offline/sets/pysdk_b779_nondebug__2023-05"))
    assert list(ext.tcb_components) == [17, 17, 2, 4, 1, 128, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert ext.pcesvn == 10


@pytest.mark.parametrize("cut", [0, 1, 2, 10, 100, 300])
def test_truncated_extension(cut: int) -> None:
    raw = _ext("phala-dcap-qvl/sgx_v3")
    with pytest.raises(MalformedEvidence):
        parse_pck_extension(raw[:cut])
