"""The bot dialect registry: names, aliases, errors, and lazy carrier imports."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from voxgate.bridge.botlink.dialects import (
    BOT_DIALECT_ALIASES,
    BOT_DIALECTS,
    canonical_bot_dialect,
    make_bot_dialect,
)
from voxgate.bridge.botlink.v1 import V1Dialect
from voxgate.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def test_registry_names() -> None:
    assert BOT_DIALECTS == ("voxgate.v1", "twilio", "telnyx")
    assert BOT_DIALECT_ALIASES == {"v1": "voxgate.v1", "voxgate": "voxgate.v1"}


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("voxgate.v1", "voxgate.v1"),
        ("v1", "voxgate.v1"),
        ("voxgate", "voxgate.v1"),
        (" VoxGate.V1 ", "voxgate.v1"),
        ("V1", "voxgate.v1"),
        ("twilio", "twilio"),
        ("Telnyx", "telnyx"),
    ],
)
def test_names_and_aliases_resolve(name: str, canonical: str) -> None:
    assert canonical_bot_dialect(name) == canonical


@pytest.mark.parametrize("name", ["voxgate.v1", "v1", "voxgate", "VOXGATE"])
def test_v1_names_make_a_v1_dialect_with_its_options(name: str) -> None:
    dialect = make_bot_dialect(name, binary_audio=True, carrier="telnyx")
    assert isinstance(dialect, V1Dialect)
    assert (dialect.name, dialect.binary_audio, dialect.carrier) == ("voxgate.v1", True, "telnyx")
    plain = make_bot_dialect(name)
    assert isinstance(plain, V1Dialect)
    assert (plain.binary_audio, plain.carrier) == (False, None)
    assert plain is not make_bot_dialect(name)  # one per socket


@pytest.mark.parametrize("name", ["twillio", "", "voxgate.v2", "v1.binary", "sip"])
def test_unknown_name_is_a_config_error_naming_the_valid_ones(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_bot_dialect(name)
    message = str(caught.value)
    assert repr(name) in message
    assert all(valid in message for valid in (*BOT_DIALECTS, *BOT_DIALECT_ALIASES))


def test_a_name_that_is_not_a_string_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not int"):
        make_bot_dialect(1)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["twilio", "telnyx"])
def test_carrier_dialects_have_no_binary_transport(name: str) -> None:
    with pytest.raises(ConfigError, match=f"{name} bot dialect has no binary"):
        make_bot_dialect(name, binary_audio=True)


@pytest.mark.parametrize(
    ("name", "module", "class_name"),
    [
        pytest.param(
            "twilio",
            "voxgate.bridge.carriers.twilio",
            "TwilioDialect",
            marks=pytest.mark.skipif(
                not _module_exists("voxgate.bridge.carriers.twilio"),
                reason="voxgate.bridge.carriers.twilio is not written yet",
            ),
        ),
        pytest.param(
            "telnyx",
            "voxgate.bridge.carriers.telnyx",
            "TelnyxDialect",
            marks=pytest.mark.skipif(
                not _module_exists("voxgate.bridge.carriers.telnyx"),
                reason="voxgate.bridge.carriers.telnyx is not written yet",
            ),
        ),
    ],
)
def test_carrier_names_make_that_carriers_dialect(name: str, module: str, class_name: str) -> None:
    dialect_class = getattr(importlib.import_module(module), class_name)
    dialect = make_bot_dialect(name.upper(), carrier="sip")
    assert type(dialect) is dialect_class
    assert make_bot_dialect(name) is not dialect
    for method in ("parse_upstream", "format_downstream", "format_upstream", "parse_downstream"):
        assert callable(getattr(dialect, method))


def test_the_registry_imports_no_carrier_module() -> None:
    program = (
        "import sys, voxgate.bridge.botlink\n"
        "print(sorted(m for m in sys.modules if m.startswith('voxgate.bridge.carriers.')))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", program],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    ).stdout.strip()
    assert loaded == "[]"
