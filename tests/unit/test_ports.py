"""Free ports: taken below the range the OS hands out, so a listener started again on its old
port finds it free; the OS's choice where that range is unknown."""

from __future__ import annotations

import itertools
import socket

import pytest

from modelfleet import ports


def test_free_ports_are_distinct_and_below_the_range_the_os_hands_out():
    handed_out = ports.handed_out_range()
    assert handed_out is not None    # Linux
    taken = ports.free_ports(12)
    assert len(set(taken)) == 12
    assert all(ports.FLOOR <= p < handed_out.start for p in taken)
    with socket.socket() as s:   # what another program gets from the OS lands elsewhere
        s.bind(("127.0.0.1", 0))
        assert s.getsockname()[1] in handed_out


def test_a_port_in_use_is_passed_over(monkeypatch):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        busy = held.getsockname()[1]
        held.listen()
        monkeypatch.setattr(ports, "candidates", lambda: itertools.chain([busy], itertools.repeat(0)))
        with socket.socket() as s:
            assert ports.bind_free(s, "127.0.0.1") not in (busy, 0)


def test_the_os_picks_where_the_range_is_unknown(monkeypatch, tmp_path):
    monkeypatch.setattr(ports, "HANDED_OUT", tmp_path / "absent")
    assert ports.handed_out_range() is None
    assert len(set(ports.free_ports(3))) == 3


def test_an_address_this_machine_lacks_is_an_error_at_once():
    with socket.socket() as s, pytest.raises(OSError):
        ports.bind_free(s, "192.0.2.1")   # TEST-NET-1: never a local address
