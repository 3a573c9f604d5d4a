"""Headless Chromium for the tests that open a page (scripts/setup-browser installs it)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

CHROMIUM: Final = Path("/usr/bin/chromium")


def headless_argv(profile: Path, *args: str) -> list[str]:
    """Chromium with no window, no sandbox (root in CI), no background traffic, its own
    profile directory, and 5 s of virtual time for the page to settle; then ``args``."""
    assert CHROMIUM.exists(), "no /usr/bin/chromium: run scripts/setup-browser"
    return [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        *args,
    ]
