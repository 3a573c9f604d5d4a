"""voxgate serve as a process: it says it listens only once it does; a taken port is one error."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest


def _serve(port: int, workers: int = 1, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VOXGATE_")}
    command = [sys.executable, "-m", "voxgate", "serve", "--port", str(port)]
    command += ["--workers", str(workers)]
    return subprocess.run(
        command,
        env={**clean, "VOXGATE_LOG_FORMAT": "text"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_a_port_in_use_is_one_clear_error_and_nothing_claims_to_listen(workers: int) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _serve(port, workers)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"voxgate: server.port: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    assert "listening" not in result.stderr
    assert result.stdout == ""
