"""TCB level matching and status merging, as Intel QVL (DCAP 1.21) does it.

Sources: QVL ``Verifiers/Checks/TcbLevelCheck.cpp``, ``TdxModuleCheck.cpp``, ``TDRelaunchCheck.cpp``
(dcap.md §1.E steps 23, 25-28). Statuses are the TCB Info strings; two more come out of the TD
relaunch rule (``TDRelaunchAdvised``, ``TDRelaunchAdvisedConfigurationNeeded``). This module only
computes statuses; :mod:`attestd.verify.dcap` turns the fatal ones into errors.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from dataclasses import dataclass

from attestd.collateral.intel import EnclaveTcbLevel, TcbInfo, TcbLevel, TdxModuleIdentity
from attestd.errors import CollateralMalformed

__all__ = [
    "NOT_SUPPORTED",
    "TcbMatch",
    "converge_with_module",
    "converge_with_qe",
    "match_enclave_level",
    "match_tcb_levels",
    "module_identity",
    "relaunch_check",
    "sorted_levels",
]

NOT_SUPPORTED = "NotSupported"
TDX_MODULE_MISMATCH = "TdxModuleMismatch"
UP_TO_DATE = "UpToDate"
OUT_OF_DATE = "OutOfDate"
REVOKED = "Revoked"
_OK_OR_SWH = frozenset({UP_TO_DATE, "SWHardeningNeeded"})
_CONFIG = frozenset({"ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded"})
_CONFIG_ANY = frozenset(
    {
        "ConfigurationNeeded",
        "OutOfDateConfigurationNeeded",
        "ConfigurationAndSWHardeningNeeded",
        "TDRelaunchAdvisedConfigurationNeeded",
    }
)
FINAL_STATUSES = frozenset(
    {
        UP_TO_DATE,
        "SWHardeningNeeded",
        "ConfigurationNeeded",
        "ConfigurationAndSWHardeningNeeded",
        OUT_OF_DATE,
        "OutOfDateConfigurationNeeded",
        REVOKED,
        "TDRelaunchAdvised",
        "TDRelaunchAdvisedConfigurationNeeded",
        NOT_SUPPORTED,
    }
)


def sorted_levels(info: TcbInfo) -> tuple[TcbLevel, ...]:
    """QVL keeps levels in a ``std::set`` ordered descending by (SGX components, PCESVN, TDX
    components); two equal levels are an error."""
    levels = sorted(
        info.tcb_levels,
        key=lambda lv: (lv.sgx_components, lv.pcesvn, lv.tdx_components or ()),
        reverse=True,
    )
    for a, b in itertools.pairwise(levels):
        if (a.sgx_components, a.pcesvn, a.tdx_components) == (
            b.sgx_components,
            b.pcesvn,
            b.tdx_components,
        ):
            raise CollateralMalformed("tcbInfo.tcbLevels: duplicate TCB level")
    return tuple(levels)


@dataclass(frozen=True, slots=True)
class TcbMatch:
    sgx_level: TcbLevel | None
    tdx_level: TcbLevel | None


def match_tcb_levels(
    levels: Sequence[TcbLevel],
    pck_components: Sequence[int],
    pck_pcesvn: int,
    tee_tcb_svn: bytes | None,
) -> TcbMatch:
    """QVL ``matchTcbLevels`` [4.1.2.4.17.1-3]: the first level whose every SGX component SVN and
    PCESVN the PCK certificate meets; for TDX, also every TEE TCB SVN (indices 0 and 1 skipped
    when ``tee_tcb_svn[1] > 0``: the module is judged by its identity instead)."""
    sgx_level: TcbLevel | None = None
    for lv in levels:
        if pck_pcesvn < lv.pcesvn or min(map(operator.sub, pck_components, lv.sgx_components)) < 0:
            continue
        if tee_tcb_svn is None:
            return TcbMatch(lv, None)
        if sgx_level is None:
            sgx_level = lv
        tdx = lv.tdx_components or (0,) * 16
        start = 2 if tee_tcb_svn[1] > 0 else 0
        if min(map(operator.sub, tee_tcb_svn[start:], tdx[start:])) >= 0:
            return TcbMatch(sgx_level, lv)
    return TcbMatch(sgx_level, None)


def match_enclave_level(levels: Sequence[EnclaveTcbLevel], isvsvn: int) -> EnclaveTcbLevel | None:
    """QE identity / TDX module identity: the first level (JSON order) with isvsvn <= the report's."""
    for lv in levels:
        if isvsvn >= lv.isvsvn:
            return lv
    return None


def module_identity(info: TcbInfo, major: int) -> TdxModuleIdentity | None:
    """The ``tdxModuleIdentities`` entry ``TDX_%02X`` for a module major version (upper-case
    comparison, as QVL ``findTdxModuleIdentity``)."""
    wanted = f"TDX_{major:02X}"
    for ident in info.tdx_module_identities:
        if ident.id.upper() == wanted:
            return ident
    return None


def converge_with_module(level_status: str, module_status: str) -> str:
    """QVL ``convergeTcbStatusWithTdxModuleStatus``."""
    if module_status == OUT_OF_DATE:
        if level_status in _OK_OR_SWH:
            return OUT_OF_DATE
        if level_status in _CONFIG:
            return "OutOfDateConfigurationNeeded"
    if module_status == REVOKED:
        return REVOKED
    return level_status


def converge_with_qe(level_status: str, qe_status: str) -> str:
    """QVL ``convergeTcbStatusWithQeTcbStatus`` [4.1.2.4.17.5]."""
    if qe_status == OUT_OF_DATE:
        if level_status in _OK_OR_SWH:
            return OUT_OF_DATE
        if level_status in _CONFIG:
            return "OutOfDateConfigurationNeeded"
    if qe_status == REVOKED:
        return REVOKED
    if qe_status == NOT_SUPPORTED:
        return NOT_SUPPORTED
    return level_status


def relaunch_check(
    info: TcbInfo,
    levels: Sequence[TcbLevel],
    tee_tcb_svn2: bytes,
    *,
    sgx_status: str,
    tdx_status: str,
    module_status: str,
    qe_status: str,
) -> str:
    """QVL ``checkForRelaunch`` [4.1.2.4.17.4.3] for TD 1.5 reports: a TD whose platform is out of
    date only because of the module, and whose ``tee_tcb_svn2`` shows the newest module is already
    loaded, is advised to relaunch rather than judged out of date."""
    if qe_status in (OUT_OF_DATE, REVOKED, NOT_SUPPORTED):
        return tdx_status
    if sgx_status not in _OK_OR_SWH | _CONFIG:
        return tdx_status
    if tdx_status not in (OUT_OF_DATE, "OutOfDateConfigurationNeeded"):
        return tdx_status
    if module_status != OUT_OF_DATE:
        return tdx_status
    if not levels:
        return NOT_SUPPORTED
    latest = levels[0].tdx_components or (0,) * 16
    if tee_tcb_svn2[1] == 0:
        needed_module = latest[0]
    else:
        ident = module_identity(info, tee_tcb_svn2[1])
        if ident is None:
            return TDX_MODULE_MISMATCH
        if not ident.tcb_levels:
            return NOT_SUPPORTED
        needed_module = ident.tcb_levels[0].isvsvn
    if tee_tcb_svn2[0] >= needed_module and tee_tcb_svn2[2] >= latest[2]:
        if sgx_status in _CONFIG_ANY or tdx_status in _CONFIG_ANY:
            return "TDRelaunchAdvisedConfigurationNeeded"
        return "TDRelaunchAdvised"
    return tdx_status
