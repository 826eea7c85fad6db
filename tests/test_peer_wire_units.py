"""The small pure parts of the wire side: the invite ticket's format, the daemon's reconnect
backoff, its log lines, and --sync-interval durations."""

from __future__ import annotations

import io
import itertools
import json

import pytest

from tessera.core.errors import UsageError

ENDPOINT = "endpointaajiufoe3hzeea444aqmwg5yrbzioh3j3hiigiange7p3g2gpogkcaqbab7qaaab4lvaeaibaaaaaaaaaaa"


def test_an_invite_ticket_round_trips_and_anything_else_is_a_usage_error():
    from tessera.core.peers import invite_ticket

    ticket = invite_ticket.InviteTicket("_w7T0xbCM93NUMBY", ENDPOINT)
    assert str(ticket) == f"tessera:_w7T0xbCM93NUMBY:{ENDPOINT}"
    assert invite_ticket.parse(f"  {ticket}\n") == ticket
    for bad in ("", ENDPOINT, f"tessera:short:{ENDPOINT}", f"tessera:_w7T0xbCM93NUMBY:{ENDPOINT}:x",
                "tessera:_w7T0xbCM93NUMBY:node", f"other:_w7T0xbCM93NUMBY:{ENDPOINT}", "tessera:\x1b[2J:endpoint"):
        with pytest.raises(UsageError) as caught:
            invite_ticket.parse(bad)
        assert "\x1b" not in caught.value.one_line()


def test_reconnects_back_off_from_1_s_doubling_to_5_minutes():
    from tessera.core.peers.daemon import backoff_delays

    assert list(itertools.islice(backoff_delays(), 11)) == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]


def test_the_daemon_logs_json_lines_off_a_terminal():
    from tessera.core.peers.daemon import DaemonLog

    out = io.StringIO()
    log = DaemonLog(out)
    log("warning", "refused", peer="0123456789", code="unknown_peer")
    record = json.loads(out.getvalue())
    assert record["level"] == "warning" and record["event"] == "refused" and record["peer"] == "0123456789"
    assert record["time"].endswith("Z")


@pytest.mark.parametrize("text, seconds", [("30m", 1800), ("2h", 7200), ("90s", 90), ("45", 45)])
def test_sync_intervals(text, seconds):
    from tessera.cli.serve import _interval

    assert _interval(text) == seconds


@pytest.mark.parametrize("text", ["5s", "0", "-1m", "soon", "m", ""])
def test_bad_sync_intervals_are_usage_errors(text):
    from tessera.cli.serve import _interval

    with pytest.raises(UsageError):
        _interval(text)
