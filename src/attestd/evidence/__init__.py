"""Evidence parsers: bytes -> frozen dataclasses. No crypto, no clock, no I/O, no judgement."""

from attestd.evidence.openenclave import OpenEnclaveReport, parse_openenclave_report
from attestd.evidence.quote import Quote, parse_quote

__all__ = ["OpenEnclaveReport", "Quote", "parse_openenclave_report", "parse_quote"]
