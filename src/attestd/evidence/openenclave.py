"""Open Enclave remote report: a 16-byte ``oe_report_header_t`` followed by the SGX quote.

Layout (openenclave ``include/openenclave/bits/report.h``, ``oe_report_header_t``):
``version`` u32 (1), ``report_type`` u32 (2 = OE_REPORT_TYPE_SGX_REMOTE), ``report_size`` u64.
"""

from __future__ import annotations

from dataclasses import dataclass

from attestd._binary import Reader
from attestd.errors import UnsupportedEvidence
from attestd.evidence.quote import Quote, parse_quote

__all__ = ["OE_HEADER_SIZE", "OpenEnclaveReport", "parse_openenclave_report"]

OE_HEADER_SIZE = 16
OE_REPORT_HEADER_VERSION = 1
OE_REPORT_TYPE_SGX_REMOTE = 2


@dataclass(frozen=True, slots=True)
class OpenEnclaveReport:
    version: int
    report_type: int
    report_size: int
    quote: Quote
    raw: bytes


def parse_openenclave_report(data: bytes) -> OpenEnclaveReport:
    """Parse an OE remote report; the declared ``report_size`` must cover exactly the quote."""
    data = bytes(data)
    r = Reader(data, "OpenEnclaveReportHeader")
    version = r.u32("version")
    if version != OE_REPORT_HEADER_VERSION:
        raise r.fail("version", f"{version} (expected {OE_REPORT_HEADER_VERSION})", offset=0)
    report_type = r.u32("report_type")
    if report_type != OE_REPORT_TYPE_SGX_REMOTE:
        raise UnsupportedEvidence(
            f"Open Enclave report_type {report_type} at offset 4 (only 2, SGX remote, is verifiable)"
        )
    size = int.from_bytes(r.take(8, "report_size"), "little")
    if size != r.remaining:
        raise r.fail("report_size", f"declares {size} bytes, {r.remaining} follow", offset=8)
    return OpenEnclaveReport(version, report_type, size, parse_quote(data[OE_HEADER_SIZE:]), data)
