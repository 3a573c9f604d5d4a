"""docs/API.md's signature check, run as written, against voxgate's own signatures."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from voxgate.bridge.control.signing import sign

DOC = Path(__file__).parents[3] / "docs" / "API.md"


def _documented_verify() -> Any:
    text = DOC.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    [code] = [block for block in blocks if "def verify(" in block]
    assert len(code.strip().splitlines()) <= 11  # the "ten lines" the docs promise
    scope: dict[str, Any] = {}
    exec(code, scope)  # the documentation's own code
    return scope["verify"]


def test_the_documented_check_accepts_voxgates_signatures_and_nothing_else() -> None:
    verify = _documented_verify()
    body = b'{"id":"evt_1","type":"call.completed"}'
    now = int(time.time())
    header = sign("whsec_abc", body, now)
    assert verify(header, body, "whsec_abc")
    assert not verify(header, body + b" ", "whsec_abc")
    assert not verify(header, body, "whsec_other")
    assert not verify(sign("whsec_abc", body, now - 3600), body, "whsec_abc")
    for garbage in ("", "t=", "v1=abc", "t=x,v1=y", "nonsense"):
        assert not verify(garbage, body, "whsec_abc")
