"""``voxgate bot NAME|PATH``: loading a bot module and its options (command line and
``<BOT>_BOT_<OPTION>`` environment variables).

Bots are small ``.py`` files written into the test's own directory; the bundled bots are
tested as far as they exist (some are being written).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest
from fake_bridge import bot_call, run

from voxgate.bots.sdk.runner import (
    BUNDLED,
    BotLoadError,
    build_parser,
    default_options,
    env_prefix,
    load_bot,
    parse_options,
    summary,
)
from voxgate.cli import main

GREETER = '''\
"""Greets the caller with a line of its own.

More text, for whoever reads the file.
"""

import argparse

from voxgate.bots.sdk import Call


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--greeting", default="hello", help="what to say")
    parser.add_argument("--count", type=int, default=3, help="how many times")
    parser.add_argument("--loud", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--voice", choices=["alice", "bob"], default="alice")


async def handle(call: Call) -> None:
    await call.transcript("bot", f"{call.options.greeting} x{call.options.count}")
'''


def write_bot(name: str, source: str) -> str:
    path = Path(name)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return str(path.resolve())


@pytest.fixture
def greeter() -> str:
    return write_bot("greeter.py", GREETER)


# --- loading -------------------------------------------------------------------------------


def test_a_bot_file_is_loaded_as_a_module_of_its_own(greeter: str) -> None:
    module = load_bot(greeter)
    assert callable(module.handle)
    assert module.__name__ == "voxgate_user_bot_greeter"
    assert summary(module) == "Greets the caller with a line of its own."
    assert build_parser(greeter, module).description == "Greets the caller with a line of its own."


def test_a_relative_path_is_a_file_too(greeter: str) -> None:
    assert callable(load_bot("./greeter.py").handle)
    Path("bots").mkdir()
    Path("bots/greeter2.py").write_text(GREETER, encoding="utf-8")
    assert callable(load_bot("bots/greeter2.py").handle)
    with pytest.raises(BotLoadError, match="no such file"):
        load_bot("bots/echo")  # a "/" makes it a path, not a bundled name


LOAD_ERRORS = [
    pytest.param("nohandle.py", "async def serve(call): pass\n", "no handle", id="no-handle"),
    pytest.param("notcallable.py", "handle = 42\n", "no handle", id="handle-not-callable"),
    pytest.param(
        "broken.py", "x = 1 / 0\n", "broken.py failed to load: ZeroDivisionError", id="raises"
    ),
    pytest.param(
        "missing_dep.py", "import no_such_module_here\n", "ModuleNotFoundError", id="bad-import"
    ),
    pytest.param(
        "syntax.py", "def handle(:\n", "syntax.py failed to load: SyntaxError", id="syntax"
    ),
]


@pytest.mark.parametrize(("name", "source", "message"), LOAD_ERRORS)
def test_a_bot_file_that_is_not_a_bot_is_refused(name: str, source: str, message: str) -> None:
    path = write_bot(name, source)
    with pytest.raises(BotLoadError, match=message):
        load_bot(path)


def test_a_bot_file_that_fails_to_import_leaves_no_module_behind() -> None:
    with pytest.raises(BotLoadError, match=r"half\.py failed to load: RuntimeError: no"):
        load_bot(write_bot("half.py", "async def handle(call): pass\nraise RuntimeError('no')\n"))
    assert "voxgate_user_bot_half" not in sys.modules


def test_a_missing_file_is_refused() -> None:
    with pytest.raises(BotLoadError, match=r"no such file: \./absent\.py"):
        load_bot("./absent.py")


def test_an_unknown_name_lists_the_bundled_bots() -> None:
    with pytest.raises(BotLoadError) as refused:
        load_bot("nosuchbot")
    text = str(refused.value)
    assert "'nosuchbot'" in text
    for name in ("echo", "receptionist", "relay"):
        assert name in text


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_a_bundled_name_loads_its_module(name: str) -> None:
    if importlib.util.find_spec(BUNDLED[name]) is None:
        pytest.skip(f"{BUNDLED[name]} does not exist yet")
    try:
        module = importlib.import_module(BUNDLED[name])
    except Exception as error:
        pytest.skip(f"{BUNDLED[name]} does not import yet: {error}")
    if callable(getattr(module, "handle", None)):
        assert load_bot(name) is module
    else:
        with pytest.raises(BotLoadError, match="no handle"):
            load_bot(name)


# --- options -------------------------------------------------------------------------------

PREFIXES = [
    pytest.param("echo", "ECHO_BOT_", id="bundled"),
    pytest.param("./greeter.py", "GREETER_BOT_", id="file"),
    pytest.param("bots/my-bot.py", "MY_BOT_BOT_", id="dash"),
]


@pytest.mark.parametrize(("spec", "prefix"), PREFIXES)
def test_env_prefix(spec: str, prefix: str) -> None:
    assert env_prefix(spec) == prefix


ENV = {
    "GREETER_BOT_GREETING": "bonjour",
    "GREETER_BOT_COUNT": "7",
    "GREETER_BOT_LOUD": "yes",
    "GREETER_BOT_VOICE": "bob",
    "GREETER_BOT_HOST": "0.0.0.0",
    "GREETER_BOT_PORT": "9100",
    "GREETER_BOT_BINARY": "TRUE",
    "GREETER_BOT_TOKEN": "t0ken",
    "OTHER_BOT_GREETING": "not mine",
}


def test_the_environment_sets_every_option(greeter: str) -> None:
    options = parse_options(greeter, load_bot(greeter), [], ENV)
    assert vars(options) == {
        "greeting": "bonjour",
        "count": 7,
        "loud": True,
        "voice": "bob",
        "host": "0.0.0.0",
        "port": 9100,
        "binary": True,
        "token": "t0ken",
    }


def test_the_command_line_wins_over_the_environment(greeter: str) -> None:
    argv = ["--greeting", "hi", "--count", "2", "--no-loud", "--port", "0", "--no-binary"]
    options = parse_options(greeter, load_bot(greeter), argv, ENV)
    assert (options.greeting, options.count, options.loud, options.port, options.binary) == (
        "hi",
        2,
        False,
        0,
        False,
    )
    assert options.voice == "bob"  # not on the command line: the environment's


def test_without_either_the_defaults(greeter: str) -> None:
    options = parse_options(greeter, load_bot(greeter), [], {})
    assert vars(options) == {
        "greeting": "hello",
        "count": 3,
        "loud": False,
        "voice": "alice",
        "host": "127.0.0.1",
        "port": 9000,
        "binary": False,
        "token": None,
    }


BAD_ENV = [
    pytest.param("GREETER_BOT_COUNT", "seven", id="not-an-int"),
    pytest.param("GREETER_BOT_PORT", "70000", id="port-out-of-range"),
    pytest.param("GREETER_BOT_LOUD", "maybe", id="not-a-boolean"),
    pytest.param("GREETER_BOT_VOICE", "carol", id="not-a-choice"),
    pytest.param("GREETER_BOT_HOST", "  ", id="empty-host"),
]


@pytest.mark.parametrize(("variable", "value"), BAD_ENV)
def test_a_bad_environment_value_is_refused_naming_the_variable(
    greeter: str, variable: str, value: str
) -> None:
    with pytest.raises(ValueError, match=variable):
        parse_options(greeter, load_bot(greeter), [], {variable: value})


@pytest.mark.parametrize(("variable", "value"), BAD_ENV)
def test_voxgate_bot_exits_2_naming_a_bad_variable(
    greeter: str,
    variable: str,
    value: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(variable, value)
    assert main(["bot", greeter]) == 2
    assert variable in capsys.readouterr().err


def test_voxgate_bot_exits_2_on_a_bad_option_and_on_a_bad_bot(
    greeter: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["bot", greeter, "--count", "seven"])
    assert exited.value.code == 2
    assert "--count" in capsys.readouterr().err
    assert main(["bot", "./absent.py"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_default_options_with_overrides(greeter: str) -> None:
    module = load_bot(greeter)
    options = default_options(module, greeting="salut", port=0)
    assert (options.greeting, options.count, options.port, options.host) == (
        "salut",
        3,
        0,
        "127.0.0.1",
    )
    with pytest.raises(AttributeError, match="no option 'colour'"):
        default_options(module, colour="blue")


def test_the_options_reach_every_call(greeter: str) -> None:
    module = load_bot(greeter)
    options = default_options(module, greeting="salut", count=2)

    async def body() -> None:
        for _ in range(2):
            async with bot_call(module.handle, options=options, answer_hangup=True) as bridge:
                assert await bridge.wait_closed() == 1000
            assert bridge.of_type("transcript") == [
                {"type": "transcript", "role": "bot", "text": "salut x2", "final": True}
            ]

    run(body)
