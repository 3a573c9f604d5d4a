"""Running one async test scenario: a fresh event loop in debug mode, bounded in time."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any


def run(scenario: Coroutine[Any, Any, None], timeout: float = 60.0) -> None:
    """Run one async scenario in a fresh event loop, in asyncio debug mode, bounded in time.

    What earlier tests left on the heap is frozen first, as ``voxgate serve`` does
    after start-up, so that a garbage collection pass does not stall the clock.
    """
    gc.collect()
    gc.freeze()
    try:
        asyncio.run(asyncio.wait_for(scenario, timeout), debug=True)
    finally:
        gc.unfreeze()
