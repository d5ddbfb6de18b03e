"""A real software TPM 2.0 (swtpm) for tests, driven by tpm2-tools.

:func:`start_swtpm` manufactures a fresh TPM in a directory of the test's own (``tmp_path``):
``swtpm_setup --tpm2 --create-ek-cert --create-platform-cert`` with a private ``swtpm_localca``
(its own root and issuer, created on first use, in the same directory; see
``shared/docs/tpm.md`` §1), so the TPM has an RSA-2048 EK at ``0x81010001`` with its
certificate in NV ``0x1c00002``, an ECC P-384 EK at ``0x81010016`` (certificate ``0x1c00016``)
and a platform certificate (``0x1c08000``). It then runs ``swtpm socket`` on two consecutive
free loopback ports (command port ``N``, control port ``N + 1``, as the libtss2 swtpm TCTI
expects) and yields a :class:`Swtpm` whose :attr:`Swtpm.tcti` is
``swtpm:host=127.0.0.1,port=N`` for tpm2-tools (``TPM2TOOLS_TCTI`` / ``-T``).
:func:`swtpm_tcti` yields just that string.

On exit the TPM is shut down in order (``tpm2_shutdown -c``, so the dictionary-attack counter
does not move), the process is stopped (``swtpm_ioctl -s``, then terminate/kill if it lingers)
and its directory is removed.

Nothing is skipped: CI installs swtpm, swtpm-tools and tpm2-tools, so a missing program fails
the test, naming the package to install.

The swtpm TCTI has no resource manager: :meth:`Swtpm.run` flushes transient objects and loaded
sessions after every tool, or the TPM runs out of object slots after a few commands (saved
sessions, such as a policy session from ``tpm2_startauthsession``, survive).
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import socket
import subprocess
import threading
import time
import tty
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["Swtpm", "as_device", "require_programs", "start_swtpm", "swtpm_tcti"]

_SWTPM_PROGRAMS = {
    "swtpm": "swtpm",
    "swtpm_setup": "swtpm-tools",
    "swtpm_localca": "swtpm-tools",
    "swtpm_ioctl": "swtpm-tools",
    "tpm2_shutdown": "tpm2-tools",
    "tpm2_flushcontext": "tpm2-tools",
}
_HOST = "127.0.0.1"
_START_ATTEMPTS = 5
_READY_TIMEOUT = 10.0
_TOOL_TIMEOUT = 60.0


def require_programs(programs: dict[str, str]) -> None:
    """Fail (never skip) the calling test if a program is missing; ``programs`` maps each
    program to the Debian package that provides it."""
    missing = sorted(
        f"{p} (apt-get install {pkg})" for p, pkg in programs.items() if not shutil.which(p)
    )
    if missing:
        pytest.fail(
            "a real software TPM is required and these programs are not on PATH: "
            + ", ".join(missing)
            + ". CI installs swtpm, swtpm-tools and tpm2-tools; install them locally too.",
            pytrace=False,
        )


def _free_port_pair() -> int:
    """A port ``N`` with ``N`` and ``N + 1`` free on the loopback interface right now."""
    for _ in range(100):
        with socket.socket() as a:
            a.bind((_HOST, 0))
            port = int(a.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket() as b:
                try:
                    b.bind((_HOST, port + 1))
                except OSError:
                    continue
        return port
    pytest.fail("no two consecutive free loopback ports for swtpm", pytrace=False)


def _run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [os.fspath(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        timeout=_TOOL_TIMEOUT,
        check=False,
    )


def _describe(result: subprocess.CompletedProcess[bytes]) -> str:
    argv = result.args if isinstance(result.args, list) else [result.args]
    return (
        f"`{' '.join(map(str, argv))}` exited {result.returncode}\n"
        f"stdout: {result.stdout.decode(errors='replace').strip()}\n"
        f"stderr: {result.stderr.decode(errors='replace').strip()}"
    )


@dataclass(frozen=True)
class Swtpm:
    """A running swtpm. ``tcti`` is the tpm2-tools TCTI string; ``directory`` holds its state
    (``state/``) and its private local CA (``localca/``, with ``swtpm-localca-rootca-cert.pem``
    and ``issuercert.pem``)."""

    tcti: str
    port: int
    ctrl_port: int
    directory: Path
    process: subprocess.Popen[bytes]
    ca_directory: Path | None = None  # a shared local CA (``start_swtpm(ca=...)``)

    @property
    def env(self) -> dict[str, str]:
        """The environment for tpm2-tools with ``TPM2TOOLS_TCTI`` set to this TPM."""
        return {**os.environ, "TPM2TOOLS_TCTI": self.tcti}

    @property
    def ca_certificates(self) -> tuple[Path, Path]:
        """(root, issuer) PEM certificates of the local CA that signed the EK certificates."""
        ca = self.ca_directory or self.directory / "localca"
        return ca / "swtpm-localca-rootca-cert.pem", ca / "issuercert.pem"

    def run(
        self,
        *argv: str | os.PathLike[str],
        cwd: Path,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run one tpm2-tools command against this TPM in ``cwd``, then flush transient
        objects and loaded sessions. With ``check`` a non-zero exit fails the test with the
        command's output."""
        result = _run(argv, env=self.env, cwd=cwd)
        for what in ("-t", "-l"):
            _run(["tpm2_flushcontext", what], env=self.env, cwd=cwd)
        if check and result.returncode != 0:
            pytest.fail(_describe(result), pytrace=False)
        return result

    def reboot(self, *, locality: int = 0) -> None:
        """A TPM Reset, as a reboot does: ``TPM2_Shutdown(CLEAR)``, ``_TPM_Init`` on the
        control channel, then ``TPM2_Startup(CLEAR)`` at ``locality``. Startup at locality 3
        starts PCR 0 at ``00..03`` (TPM 2.0 Part 3 TPM2_Startup; the PFP's StartupLocality event);
        later commands run at locality 0. ``resetCount`` goes up by one, PCRs are at their
        reset values, and transient objects and saved contexts are gone (keep keys persistent).

        The startup is sent on the command socket directly: the libtss2 swtpm TCTI sets
        locality 0 itself, so ``swtpm_ioctl -l 3`` before ``tpm2_startup`` would have no
        effect (``shared/docs/tpm.md`` §1, gotcha 3)."""
        ioctl = ["swtpm_ioctl", "--tcp", f"{_HOST}:{self.ctrl_port}"]
        for argv, env in (
            (["tpm2_shutdown", "-c"], self.env),
            ([*ioctl, "-i"], None),
            ([*ioctl, "-l", str(locality)], None),
        ):
            result = _run(argv, env=env)
            if result.returncode != 0:
                pytest.fail(_describe(result), pytrace=False)
        # TPM2_Startup(SU_CLEAR): tag ST_NO_SESSIONS, size 12, TPM_CC_Startup, TPM_SU_CLEAR.
        with socket.create_connection((_HOST, self.port), timeout=_TOOL_TIMEOUT) as conn:
            conn.sendall(bytes.fromhex("80010000000c000001440000"))
            reply = conn.recv(64)
        result = _run([*ioctl, "-l", "0"])
        if reply[6:10] != bytes(4) or result.returncode != 0:
            pytest.fail(f"TPM2_Startup at locality {locality} failed: {reply.hex()}", pytrace=False)


def _write_ca_config(root: Path, ca: Path | None = None) -> Path:
    """swtpm_setup.conf pointing at swtpm_localca with a CA in ``ca`` (default ``root/localca``;
    created by swtpm_localca on first use: root CA + signing key + issuer certificate)."""
    ca = ca or root / "localca"
    ca.mkdir(exist_ok=True)
    localca_conf = ca / "swtpm-localca.conf"
    localca_conf.write_text(
        f"statedir = {ca}\n"
        f"signingkey = {ca / 'signkey.pem'}\n"
        f"issuercert = {ca / 'issuercert.pem'}\n"
        f"certserial = {ca / 'certserial'}\n"
    )
    localca_options = ca / "swtpm-localca.options"
    localca_options.write_text(
        "--platform-manufacturer attestd-tests\n--platform-version 2.1\n--platform-model swtpm\n"
    )
    setup_conf = ca / "swtpm_setup.conf"
    setup_conf.write_text(
        f"create_certs_tool = {shutil.which('swtpm_localca')}\n"
        f"create_certs_tool_config = {localca_conf}\n"
        f"create_certs_tool_options = {localca_options}\n"
    )
    return setup_conf


def _manufacture(root: Path, ca: Path | None = None) -> Path:
    state = root / "state"
    state.mkdir()
    setup_conf = _write_ca_config(root, ca)
    tmp = root / "tmp"
    tmp.mkdir()
    result = _run(
        [
            "swtpm_setup",
            "--tpm2",
            "--tpmstate",
            state,
            "--create-ek-cert",
            "--create-platform-cert",
            "--overwrite",
            "--config",
            setup_conf,
            "--pcr-banks",
            "sha1,sha256",
        ],
        env={**os.environ, "TMPDIR": str(tmp)},
        cwd=root,
    )
    if result.returncode != 0:
        pytest.fail("swtpm_setup failed: " + _describe(result), pytrace=False)
    return state


def _wait_ready(process: subprocess.Popen[bytes], port: int, ctrl_port: int) -> bool:
    """True once both ports accept connections; False if swtpm exited (e.g. a port was taken
    between choosing and binding it)."""
    deadline = time.monotonic() + _READY_TIMEOUT
    pending = [ctrl_port, port]
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection((_HOST, pending[0]), timeout=0.2):
                pass
        except OSError:
            time.sleep(0.02)
            continue
        pending.pop(0)
        if not pending:
            return True
    return False


def _stop(tpm: Swtpm) -> None:
    try:
        _run(["tpm2_shutdown", "-c"], env=tpm.env)
        _run(["swtpm_ioctl", "--tcp", f"{_HOST}:{tpm.ctrl_port}", "-s"])
        tpm.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if tpm.process.poll() is None:
            tpm.process.terminate()
            try:
                tpm.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                tpm.process.kill()
                tpm.process.wait(timeout=5)


@contextmanager
def start_swtpm(directory: Path, *, ca: Path | None = None) -> Iterator[Swtpm]:
    """Manufacture and run a fresh swtpm under ``directory/swtpm`` (``directory`` is typically
    ``tmp_path``); stop it and remove ``directory/swtpm`` on exit. ``ca``: a local-CA directory
    to keep outside ``directory`` and share between TPMs (one EK root for many TPMs)."""
    require_programs(_SWTPM_PROGRAMS)
    root = Path(directory) / "swtpm"
    root.mkdir()
    try:
        state = _manufacture(root, ca)
        log = root / "swtpm.log"
        for _ in range(_START_ATTEMPTS):
            port = _free_port_pair()
            with log.open("ab") as out:
                process = subprocess.Popen(
                    [
                        "swtpm",
                        "socket",
                        "--tpm2",
                        "--server",
                        f"type=tcp,port={port},bindaddr={_HOST}",
                        "--ctrl",
                        f"type=tcp,port={port + 1},bindaddr={_HOST}",
                        "--tpmstate",
                        f"dir={state}",
                        "--flags",
                        "not-need-init,startup-clear",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            tcti = f"swtpm:host={_HOST},port={port}"
            tpm = Swtpm(tcti, port, port + 1, root, process, ca)
            if _wait_ready(process, port, port + 1):
                break
            _stop(tpm)
        else:
            pytest.fail(
                f"swtpm did not start after {_START_ATTEMPTS} attempts; its log:\n"
                + log.read_text(errors="replace"),
                pytrace=False,
            )
        try:
            yield tpm
        finally:
            _stop(tpm)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def swtpm_tcti(directory: Path) -> Iterator[str]:
    """:func:`start_swtpm`, yielding only the TCTI string (``swtpm:host=127.0.0.1,port=N``)."""
    with start_swtpm(directory) as tpm:
        yield tpm.tcti


@contextmanager
def as_device(tpm: Swtpm) -> Iterator[str]:
    """``tpm`` behind a character device, for the libtss2 **device** TCTI (``device:<path>``,
    the TCTI of ``/dev/tpmrm0``): a pseudo-terminal in raw mode whose other end a thread
    forwards, one whole TPM command at a time, to the swtpm command port, writing each whole
    response back, as the kernel's TPM driver does. Yields the device path (``/dev/pts/N``).
    No kernel module or privilege is needed (CUSE and vtpm-proxy need both)."""
    master, slave = pty.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    stop = threading.Event()

    def forward() -> None:
        with socket.create_connection((_HOST, tpm.port), timeout=_TOOL_TIMEOUT) as conn:
            pending = b""
            while not stop.is_set():
                if not select.select([master], [], [], 0.05)[0]:
                    continue
                try:
                    pending += os.read(master, 8192)
                except OSError:
                    return
                # TPM command header: tag (2), commandSize (4, big-endian, whole command).
                while len(pending) >= 10 and len(pending) >= int.from_bytes(pending[2:6], "big"):
                    size = int.from_bytes(pending[2:6], "big")
                    command, pending = pending[:size], pending[size:]
                    conn.sendall(command)
                    response = b""
                    while len(response) < 10 or len(response) < int.from_bytes(
                        response[2:6], "big"
                    ):
                        chunk = conn.recv(8192)
                        if not chunk:
                            return
                        response += chunk
                    os.write(master, response)

    thread = threading.Thread(target=forward, name="swtpm-device", daemon=True)
    thread.start()
    try:
        yield os.ttyname(slave)
    finally:
        stop.set()
        thread.join(timeout=5)
        os.close(slave)
        os.close(master)
