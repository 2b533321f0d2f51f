"""Start `probeguard serve` as a child process on a free loopback port and wait until /readyz answers 200; read a
process's resident memory."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx


def rss_mb(pid: int | str = "self") -> float:
    """Resident set size of a process (Linux /proc), in MiB; NaN where it cannot be read."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return float("nan")
    for line in lines:
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_ready(proc: subprocess.Popen, url: str, timeout_s: float, name: str, poll_s: float = 0.1) -> None:
    """Poll `url` until it answers 200; RuntimeError if the process exits first or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode} before it was ready")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not become ready in time")
        time.sleep(poll_s)


@contextlib.contextmanager
def running_server(
    env: dict[str, str] | None = None,
    log: Path | None = None,
    timeout_s: float = 900.0,
    command: Sequence[str] = (sys.executable, "-m", "probeguard"),
    cwd: Path | None = None,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run `<command> serve --host 127.0.0.1 --port <free port>`; yield (base URL, process) once /readyz answers 200.
    The process is terminated (SIGTERM) on exit if it still runs."""
    port = free_port()
    full_env = {**os.environ, **(env or {})}
    out = log.open("w") if log else subprocess.DEVNULL
    argv = [*command, "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(argv, env=full_env, stdout=out, stderr=out, cwd=cwd)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(proc, f"{base}/readyz", timeout_s, "probeguard serve")
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        if log:
            out.close()  # type: ignore[union-attr]
