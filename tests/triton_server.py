"""A `python cli.py serve` process for tests: started on free loopback ports (the server picks them for port 0 and
names them in its ready line), stopped by a signal, every wait bounded."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
START_DEADLINE_S = 120.0
STOP_DEADLINE_S = 60.0


def skip_without_pytriton() -> None:
    pytest.importorskip("pytriton.triton", reason="PyTriton (nvidia-pytriton) is not installed: no server to test")


class ServeProcess:
    """`cli.py serve ARTIFACT --http-port 0 --grpc-port 0 --metrics-port 0 ARGS`, ready once constructed."""

    def __init__(self, artifact: Path, cwd: Path, *args: str):
        command = [sys.executable, str(ROOT / "cli.py"), "serve", str(artifact)]
        command += ["--http-port", "0", "--grpc-port", "0", "--metrics-port", "0", *args]
        self.proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr))
        ]
        for reader in self._readers:
            reader.start()
        self.http, self.grpc = self._wait_until_ready()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def _wait_until_ready(self) -> tuple[str, str]:
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline and self.proc.poll() is None:
            ready = [line for line in self.stderr if line.startswith("serving ")]
            if ready:
                http = re.search(r"http://127\.0\.0\.1:\d+", ready[0])
                grpc = re.search(r"grpc://127\.0\.0\.1:\d+", ready[0])
                assert http and grpc, ready[0]
                return http.group(0), grpc.group(0)
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"cli.py serve did not get ready (exit {self.proc.returncode}): {self.stderr}")

    def stop(self, sig: int) -> int:
        """Sends `sig` and returns the exit status once the process and its output have ended."""
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"cli.py serve did not stop within {STOP_DEADLINE_S} s of signal {sig}") from None
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_DEADLINE_S)


def serving(artifact: Path, tmp_path_factory, *args: str) -> Iterator[ServeProcess]:
    """A module fixture's body (`yield from serving(...)`): a ServeProcess in a fresh folder, killed afterwards."""
    server = ServeProcess(artifact, tmp_path_factory.mktemp("serve"), *args)
    yield server
    server.kill()
