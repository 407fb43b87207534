"""Captures are masked by default (PCI DSS 3.x: no clear card number on a tester's disk by oversight):
`bsp run --record FILE` without --mask masks classified fields; --no-mask records them in clear only with
--clear-reason, which the capture's header keeps (with who and where), and is warned about loudly at the start
and at the stop; `record.mask: false` in platform.yaml needs `record.clear_reason`.  A capture written before
the header kept a reason still loads.

Real `bsp run` subprocesses on 127.0.0.1 port 0, real capture files in tmp_path."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import trio

from engine.replay.capture import Capture, CaptureWriter
from formats.framing import LengthPrefixFramer

REPO = Path(__file__).resolve().parents[2]
PAN = "4111111111111111"

ROUTE = """
format Req = fixed {
    ref    string(8)
    card   string(16) pan
}
format Rsp = json
channel front = tcp listen {
    address = "127.0.0.1:0"
    framing = length2
}
route pay {
    receive from front as Req
    deal PAYMENT { ref = msg.ref  amount = 1.00  currency = "CNY" }
    reply Rsp { ref = msg.ref  code = "00" }
}
"""


async def _record(tmp_path: Path, *options: str) -> str:
    """`bsp run pay.route --record cap.duckdb OPTIONS`, two payments carrying PAN, SIGTERM; its stderr."""
    route = tmp_path / "pay.route"
    route.write_text(ROUTE)
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "engine.cli", "run", str(route), "--ledger", str(tmp_path / "l.duckdb"),
         "--record", str(tmp_path / "cap.duckdb"), *options], cwd=str(REPO), stderr=subprocess.PIPE)
    buf = b""
    try:
        with trio.fail_after(60):                # a hang guard: a loaded machine starts Python slowly
            while b"serving" not in buf:
                chunk = await proc.stderr.receive_some(4096)
                assert chunk, f"bsp run exited early: {buf.decode()}"
                buf += chunk
        front = int(re.search(rb"channel front: listen 127\.0\.0\.1:(\d+)", buf)[1])
        stream = await trio.open_tcp_stream("127.0.0.1", front)
        tx, rx = LengthPrefixFramer(2), LengthPrefixFramer(2)
        await stream.send_all(b"".join(tx.frame(f"R{i:07d}{PAN}".encode()) for i in range(2)))
        got: list[bytes] = []
        with trio.fail_after(20):
            while len(got) < 2:
                got.extend(rx.feed(await stream.receive_some(65536)))
        await stream.aclose()
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            while chunk := await proc.stderr.receive_some(4096):
                buf += chunk
            rc = await proc.wait()
        assert rc == 0, buf.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stderr.aclose()
    return buf.decode()


def _raws(path: Path) -> list[bytes]:
    return [f.raw for f in Capture(path).frames if f.raw is not None]


async def test_a_capture_is_masked_without_any_option(tmp_path: Path) -> None:
    err = await _record(tmp_path)
    cap = Capture(tmp_path / "cap.duckdb")
    assert cap.masked and "clear_reason" not in cap.info and cap.clear_note() is None
    raws = _raws(tmp_path / "cap.duckdb")
    assert len(raws) == 4 and not any(PAN.encode() in r for r in raws)
    assert any(b"411111" in r and b"1111" in r for r in raws)           # masked 6+4, still a card number's shape
    assert "(classified fields masked)" in err and "IN CLEAR" not in err and "capture holds" not in err


async def test_no_mask_records_in_clear_with_its_reason_in_the_header_and_loud_warnings(tmp_path: Path) -> None:
    err = await _record(tmp_path, "--no-mask", "--clear-reason", "TEST-42 lab replay of scheme certification")
    cap = Capture(tmp_path / "cap.duckdb")
    assert not cap.masked
    assert cap.info["clear_reason"] == "TEST-42 lab replay of scheme certification"
    assert cap.info["clear_by"] and cap.info["clear_host"]
    assert "TEST-42" in (cap.clear_note() or "")
    assert any(PAN.encode() in r for r in _raws(tmp_path / "cap.duckdb"))
    loud = [ln for ln in err.splitlines() if ln.startswith("WARNING: recording IN CLEAR")]
    assert len(loud) == 2, err                     # at the start, and again after the capture's last line
    assert "Req.card" in loud[0] and "PCI DSS" in loud[0]
    assert "TEST-42 lab replay" in err


def _refused(cwd: Path, *args: str) -> tuple[int, str]:
    """`bsp run ARGS` expected to stop before serving: (exit code, stderr); one that serves is stopped and
    fails the test (it recorded)."""
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", *args], cwd=str(cwd),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = ""
    try:
        for line in proc.stderr:
            err += line
            assert "bsp: serving" not in line, f"bsp run started recording:\n{err}"
        return proc.wait(timeout=60), err           # a hang guard only
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        proc.stderr.close()


def test_no_mask_without_a_reason_is_refused_and_nothing_is_recorded(tmp_path: Path) -> None:
    route = tmp_path / "pay.route"
    route.write_text(ROUTE)
    cap = tmp_path / "cap.duckdb"
    base = (str(route), "--ledger", str(tmp_path / "l.duckdb"), "--record", str(cap))
    rc, err = _refused(tmp_path, *base, "--no-mask")
    assert rc == 2, err
    assert "error: --no-mask records card numbers, track data, PIN blocks" in err
    assert '--clear-reason "TEXT"' in err
    assert not cap.exists() and not (tmp_path / "l.duckdb").exists()
    rc, err = _refused(tmp_path, *base, "--no-mask", "--clear-reason", "  ")
    assert rc == 2 and "--clear-reason" in err and "No such option" not in err, err
    rc, err = _refused(tmp_path, *base, "--clear-reason", "TEST-1")
    assert rc == 2 and "--clear-reason goes with --no-mask" in err, err
    assert not cap.exists()


def test_record_mask_false_in_the_deployment_file_needs_clear_reason(tmp_path: Path) -> None:
    (tmp_path / "pay.route").write_text(ROUTE)
    (tmp_path / "platform.yaml").write_text("routes: [pay.route]\nledger: var/l.duckdb\n"
                                            "record:\n  path: var/cap.duckdb\n  mask: false\n")
    rc, err = _refused(tmp_path, "platform.yaml")
    assert rc == 2, err
    assert "platform.yaml:4:9: record.mask: false records card numbers" in err, err
    assert "record.clear_reason" in err
    assert not (tmp_path / "var" / "cap.duckdb").exists()
    with (tmp_path / "platform.yaml").open("a") as f:
        f.write('  clear_reason: "UAT-7 synthetic cards"\n')
    from engine.deploy import load_deployment
    assert load_deployment(tmp_path / "platform.yaml").record.clear_reason == "UAT-7 synthetic cards"


def test_a_capture_without_the_header_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    CaptureWriter(path, channels=["front"]).close()          # masked false, no clear_reason: as before
    cap = Capture(path)
    assert not cap.masked and "clear_reason" not in cap.info
    assert cap.clear_note() == "recorded in clear (no reason recorded)"
