from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from voxgate.bridge.aio.sipleg import RtpPorts

HOST = "127.0.0.1"
LOW, HIGH = 47000, 47010  # an unusual range: nothing else here is expected to hold it


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """Every socket a test opens or is handed goes here, and is closed after it."""
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def _bind(ports: RtpPorts, sockets: list[socket.socket]) -> int | None:
    sock = ports.bind()
    if sock is None:
        return None
    sockets.append(sock)
    return int(sock.getsockname()[1])


def _hold(port: int, sockets: list[socket.socket]) -> socket.socket:
    """Another program's socket on ``port``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sockets.append(sock)
    sock.bind((HOST, port))
    return sock


def _close(port: int, sockets: list[socket.socket]) -> None:
    for sock in sockets:
        if sock.fileno() >= 0 and sock.getsockname()[1] == port:
            sock.close()


def test_bind_hands_out_the_even_ports_of_the_range_in_turn(sockets: list[socket.socket]) -> None:
    ports = RtpPorts(HOST, LOW, HIGH)
    assert [_bind(ports, sockets) for _ in range(6)] == [47000, 47002, 47004, 47006, 47008, 47010]
    assert ports.in_use == 6


def test_an_odd_low_end_starts_at_the_next_even_port(sockets: list[socket.socket]) -> None:
    ports = RtpPorts(HOST, 47001, 47006)
    assert [_bind(ports, sockets) for _ in range(4)] == [47002, 47004, 47006, None]


def test_the_socket_is_a_non_blocking_udp_socket_on_the_host(
    sockets: list[socket.socket],
) -> None:
    sock = RtpPorts(HOST, LOW, HIGH).bind()
    assert sock is not None
    sockets.append(sock)
    assert sock.type == socket.SOCK_DGRAM
    assert sock.family == socket.AF_INET
    assert sock.getsockname() == (HOST, LOW)
    assert sock.getblocking() is False


def test_a_port_another_socket_holds_is_skipped(sockets: list[socket.socket]) -> None:
    _hold(47002, sockets)
    ports = RtpPorts(HOST, LOW, HIGH)
    assert [_bind(ports, sockets) for _ in range(3)] == [47000, 47004, 47006]
    assert ports.in_use == 3


def test_none_when_the_range_is_exhausted(sockets: list[socket.socket]) -> None:
    ports = RtpPorts(HOST, LOW, 47004)
    assert [_bind(ports, sockets) for _ in range(3)] == [47000, 47002, 47004]
    assert ports.bind() is None
    assert ports.bind() is None
    assert ports.in_use == 3


def test_none_when_every_free_port_is_held_elsewhere(sockets: list[socket.socket]) -> None:
    ports = RtpPorts(HOST, LOW, 47004)
    assert _bind(ports, sockets) == 47000
    _hold(47002, sockets)
    _hold(47004, sockets)
    assert ports.bind() is None
    assert ports.in_use == 1


def test_release_makes_a_port_available_again(sockets: list[socket.socket]) -> None:
    ports = RtpPorts(HOST, LOW, 47004)
    assert [_bind(ports, sockets) for _ in range(3)] == [47000, 47002, 47004]
    _close(47002, sockets)
    ports.release(47002)
    assert ports.in_use == 2
    assert _bind(ports, sockets) == 47002
    assert ports.bind() is None


def test_a_released_port_waits_for_its_turn(sockets: list[socket.socket]) -> None:
    ports = RtpPorts(HOST, LOW, HIGH)
    assert [_bind(ports, sockets) for _ in range(2)] == [47000, 47002]
    _close(47000, sockets)
    ports.release(47000)
    assert [_bind(ports, sockets) for _ in range(5)] == [47004, 47006, 47008, 47010, 47000]


def test_a_released_port_whose_socket_is_still_open_is_skipped(
    sockets: list[socket.socket],
) -> None:
    ports = RtpPorts(HOST, LOW, 47002)
    assert [_bind(ports, sockets) for _ in range(2)] == [47000, 47002]
    ports.release(47000)  # the call forgot to close it: binding is the test
    assert ports.bind() is None
    assert ports.in_use == 1


def test_releasing_a_port_not_in_use_changes_nothing(sockets: list[socket.socket]) -> None:
    ports = RtpPorts(HOST, LOW, HIGH)
    assert _bind(ports, sockets) == 47000
    ports.release(47004)
    ports.release(12345)
    assert ports.in_use == 1
    assert _bind(ports, sockets) == 47002
