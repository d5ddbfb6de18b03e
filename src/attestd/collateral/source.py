"""Where DCAP collateral comes from, behind one interface.

A :class:`CollateralSource` answers "the collateral for this platform": the FMSPC and the PCK CA
type (``processor`` or ``platform``) come from the PCK certificate, the TEE from the quote. Three
sources ship:

- :class:`BundleDirectory`: one folder in the layout of the test vectors (``pck_crl.der``,
  ``pck_crl_issuer_chain.pem``, ``root_ca_crl.der``, ``tcb_info.json``,
  ``tcb_info_issuer_chain.pem``, ``qe_identity.json``, ``qe_identity_issuer_chain.pem``);
- :class:`BundleStore`: many such folders, indexed by (TEE, FMSPC, CA type) read from their contents;
- :class:`attestd.collateral.pcs.PcsClient`: Intel PCS v4 or a PCCS over HTTP, cached.

Sources return bytes exactly as received; all checking happens in :mod:`attestd.verify`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from attestd._json import parse_json
from attestd.errors import CollateralMalformed, CollateralUnavailable

__all__ = [
    "BUNDLE_FILES",
    "BundleDirectory",
    "BundleStore",
    "CaType",
    "CollateralSource",
    "DcapCollateral",
    "Tee",
]

Tee = Literal["sgx", "tdx"]
CaType = Literal["processor", "platform"]

BUNDLE_FILES = {
    "pck_crl": "pck_crl.der",
    "pck_crl_issuer_chain": "pck_crl_issuer_chain.pem",
    "root_ca_crl": "root_ca_crl.der",
    "tcb_info": "tcb_info.json",
    "tcb_info_issuer_chain": "tcb_info_issuer_chain.pem",
    "qe_identity": "qe_identity.json",
    "qe_identity_issuer_chain": "qe_identity_issuer_chain.pem",
}


@dataclass(frozen=True, slots=True)
class DcapCollateral:
    """The seven pieces of Intel collateral, bytes exactly as received (QvE's
    ``sgx_ql_qve_collateral_t``). CRLs may be PEM, DER or hex-encoded DER."""

    pck_crl: bytes
    pck_crl_issuer_chain: bytes
    root_ca_crl: bytes
    tcb_info: bytes
    tcb_info_issuer_chain: bytes
    qe_identity: bytes
    qe_identity_issuer_chain: bytes

    @classmethod
    def from_directory(cls, path: str | Path) -> DcapCollateral:
        p = Path(path)
        parts: dict[str, bytes] = {}
        for field, name in BUNDLE_FILES.items():
            f = p / name
            try:
                parts[field] = f.read_bytes()
            except OSError as exc:
                raise CollateralUnavailable(f"collateral bundle {p}: cannot read {name}") from exc
        return cls(**parts)


class CollateralSource(Protocol):
    """Anything that can hand out DCAP collateral for a platform."""

    def dcap_collateral(self, *, tee: Tee, fmspc: bytes, ca: CaType) -> DcapCollateral:
        """The collateral for this TEE, FMSPC (6 bytes) and PCK CA type; raises
        :class:`CollateralUnavailable` when there is none."""
        ...


class BundleDirectory:
    """A single bundle folder, returned for every platform (verification checks that it fits)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._bundle: DcapCollateral | None = None

    def dcap_collateral(self, *, tee: Tee, fmspc: bytes, ca: CaType) -> DcapCollateral:
        if self._bundle is None:
            self._bundle = DcapCollateral.from_directory(self.path)
        return self._bundle


def _bundle_key(bundle: DcapCollateral, where: str) -> tuple[tuple[Tee, bytes, CaType], str]:
    """((tee, fmspc, ca), issueDate) of a bundle, read from its TCB Info and PCK CRL issuer
    chain."""
    from cryptography import x509

    try:
        info = parse_json(bundle.tcb_info)["tcbInfo"]
        fmspc = bytes.fromhex(info["fmspc"])
        tee: Tee = "tdx" if info.get("id") == "TDX" else "sgx"
        issued = info.get("issueDate", "")
        if not isinstance(issued, str):
            raise TypeError(f"issueDate is {type(issued).__name__}, not a string")
        first = x509.load_pem_x509_certificates(bundle.pck_crl_issuer_chain)[0]
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise CollateralMalformed(f"{where}: cannot index bundle ({exc})") from exc
    cn = first.subject.rfc4514_string()
    ca: CaType = "platform" if "Platform" in cn else "processor"
    return (tee, fmspc, ca), issued


class BundleStore:
    """Many bundle folders (each a direct subfolder of ``root``, any depth), indexed by
    (TEE, FMSPC, CA type). When two bundles share a key, the one whose TCB Info is issued last wins."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._index: dict[tuple[Tee, bytes, CaType], tuple[str, DcapCollateral]] | None = None

    def _load(self) -> dict[tuple[Tee, bytes, CaType], tuple[str, DcapCollateral]]:
        index: dict[tuple[Tee, bytes, CaType], tuple[str, DcapCollateral]] = {}
        for info in sorted(self.root.rglob(BUNDLE_FILES["tcb_info"])):
            bundle = DcapCollateral.from_directory(info.parent)
            key, issued = _bundle_key(bundle, str(info.parent))
            if key not in index or issued > index[key][0]:
                index[key] = (issued, bundle)
        return index

    def keys(self) -> list[tuple[Tee, bytes, CaType]]:
        if self._index is None:
            self._index = self._load()
        return sorted(self._index)

    def dcap_collateral(self, *, tee: Tee, fmspc: bytes, ca: CaType) -> DcapCollateral:
        if self._index is None:
            self._index = self._load()
        hit = self._index.get((tee, bytes(fmspc), ca))
        if hit is None:
            raise CollateralUnavailable(
                f"no collateral bundle under {self.root} for {tee.upper()} FMSPC {fmspc.hex()} "
                f"({ca} CA)"
            )
        return hit[1]
