"""Azurite, the Azure Storage emulator (blob service only), started and stopped for tests.

`make install` puts it in .tools/azurite from npm; nothing is installed at test time.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rcm_assets.settings import REPO_ROOT

ACCOUNT = "devstoreaccount1"
# Azurite's documented, public development key (not a secret).
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
BINARY = REPO_ROOT / ".tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"


@dataclass(frozen=True)
class Azurite:
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    def env(self) -> dict[str, str]:
        """What points the project's storage resources at this emulator."""
        return {"AZURE_STORAGE_ACCOUNT_KEY": ACCOUNT_KEY, "AZURE_STORAGE_ENDPOINT": self.endpoint}

    def uri(self, container: str, path: str = "") -> str:
        return f"abfss://{container}@{ACCOUNT}.dfs.core.windows.net/{path}".rstrip("/")

    def create_container(self, name: str) -> None:
        from azure.storage.blob import BlobServiceClient

        credential = {"account_name": ACCOUNT, "account_key": ACCOUNT_KEY}
        BlobServiceClient(self.endpoint, credential=credential).create_container(name)


def azurite_binary() -> str | None:
    return str(BINARY) if BINARY.exists() else shutil.which("azurite-blob")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_listening(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Azurite exited with code {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"Azurite did not listen on port {port} within {timeout:.0f} s")


def run_azurite(data: Path) -> Iterator[Azurite]:
    """Start Azurite on a free port with its data in `data`; stop it (by process group)."""
    binary = azurite_binary()
    if binary is None:
        message = "Azurite is not installed (`make install` installs it from npm)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must have it")
        pytest.skip(message)
    port = _free_port()
    command = [
        binary,
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--location",
        str(data),
        "--skipApiVersionCheck",
        "--silent",
        "--loose",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        _wait_until_listening(port, process)
        yield Azurite(port)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
