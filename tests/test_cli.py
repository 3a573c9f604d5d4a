from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import voxgate
from voxgate.cli import main


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("voxgate")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "voxgate"]
    return subprocess.run([*command, *args], capture_output=True, text=True, check=False)


def test_console_script_reports_its_version() -> None:
    done = _run("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"voxgate {voxgate.__version__}"


def test_console_script_help() -> None:
    done = _run("--help")
    assert done.returncode == 0
    assert "usage: voxgate" in done.stdout
    assert "AI voice bots" in done.stdout


def test_module_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "voxgate", "--version"], capture_output=True, text=True, check=False
    )
    assert done.stdout.strip() == f"voxgate {voxgate.__version__}"


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--frobnicate"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --frobnicate" in capsys.readouterr().err
