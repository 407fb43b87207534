"""`bsp replay --to-tests` with a capture the candidate cannot take says so and exits 2, as the replay does:
a capture of another service (no route receives from its channel) used to write a file of 0 tests, exit 0,
with every exchange "skipped: a request no declared format decodes"; and a capture none of whose exchanges
can be written leaves no file that holds no test (`bsp test` on it: no test found).
A real capture over loopback sockets (replaykit.py)."""
from __future__ import annotations

import pytest

from replaykit import config_copy, record_session, replay_cli as cli


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nothing")
    return record_session(tmp, config_copy(tmp / "config"), 20)


def test_a_capture_of_another_service_is_told_not_written_as_zero_tests(recorded, tmp_path) -> None:
    other = config_copy(tmp_path / "other", lambda t: t.replace("mainframe", "host"))
    res = cli(str(recorded), "--config", str(other), "--to-tests", str(tmp_path / "t"))
    assert res.exit_code == 2, res.output
    assert ("error: the candidate configuration has no route receiving from channel(s) mainframe, which the "
            "capture recorded requests on (it receives from: host)") in res.output, res.output
    assert not (tmp_path / "t").exists()


def test_no_exchange_written_is_exit_2_and_no_file(recorded, tmp_path) -> None:
    wider = config_copy(tmp_path / "wider", lambda t: t.replace("txn_code    string(4)", "txn_code    string(5)"))
    res = cli(str(recorded), "--config", str(wider), "--to-tests", str(tmp_path / "t"))
    assert res.exit_code == 2, res.output
    assert "no test written: every exchange of the capture was skipped" in res.output, res.output
    assert "  skipped 20 exchange(s): a request no declared format decodes" in res.output, res.output
    assert not list((tmp_path / "t").glob("*.route"))
