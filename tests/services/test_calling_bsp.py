"""docs/services/calling-bsp.md, the requesting company's page, against a running engine: every example
request in it is sent over loopback HTTP to routes/claims_payout (with its counterpart simulators; the
examples after "mainframe down" to an engine whose mainframe address is closed) and must get the answer
the page shows: the status line, every header it shows (`Bsp-Deal-Id`: 32 hex digits, and only where the
page shows one) and the JSON body.  Each `Bsp-Deal-Id` must then be a deal `bsp deals show` tells, with the
claim's reference.

What the page's examples hold the engine to: a repeat answered with the original's bytes and status, the
same claim id with another amount refused 422 `12` (until 2026-11-27: answered with the first claim's 200), an
amount sent as text refused with 422 `13` (until 2026-11-26: 500 `96` "internal error"), a field of the
wrong shape (a beneficiary sent as text) refused with 422 `30` naming the field, and a list of claims with 400
`30` (until 2026-11-27 both 500 `96`: dsl/inbound.py), a body cut short
answered with where it broke (until then "malformed request"), 502's reason phrase ("Bad Gateway"; until
then none), and the deal id on every answer recorded as a deal (until then none)."""
from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import httpx
import orjson
import trio
from typer.testing import CliRunner

from dsl.clock import engine_clock, parse_instant
from dsl.load import compile_paths
from engine.cli import app
from engine.ledger import open_ledger
from engine.runtime.switchboard import Switchboard
from engine.sim.services import claims_payout
from engine.sim.services.catalog import route_files
from engine.sim.services.harness import file_overrides, listen_overrides, running_services
from engine.sim.services.registry import services_registry

PAGE = Path(__file__).resolve().parents[2] / "docs" / "services" / "calling-bsp.md"
DOWN = "mainframe down"          # the examples after this phrase are sent with the mainframe unreachable
DEAL_ID = re.compile(r"[0-9a-f]{32}")


HOST_REF = re.compile(r"HOST\d{12}")


def _examples(text: str) -> list[tuple[str, str]]:
    blocks = re.findall(r"```http\n(.*?)```", text, re.S)
    assert blocks and len(blocks) % 2 == 0, "calling-bsp.md: its ```http blocks come in pairs (request, answer)"
    return list(zip(blocks[::2], blocks[1::2]))


def _head_body(block: str) -> tuple[str, dict[str, str], str]:
    head, _, body = block.partition("\n\n")
    first, *lines = head.strip().splitlines()
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return first.strip(), headers, body.strip()


async def _send(port: int, pairs: list[tuple[str, str]]) -> list[tuple[str, str, httpx.Response]]:
    out = []
    async with httpx.AsyncClient(timeout=15) as client:
        for request, answer in pairs:
            line, headers, body = _head_body(request)
            method, path = line.split()
            r = await client.request(method, f"http://127.0.0.1:{port}{path}", headers=headers,
                                     content=body.encode())
            out.append((line, answer, r))
    return out


def _check(line: str, answer: str, r: httpx.Response) -> str | None:
    """The deal id the answer carries (checked against the page), None when the page shows none."""
    status_line, headers, body = _head_body(answer)
    _, code, phrase = status_line.split(" ", 2)
    assert (r.status_code, r.reason_phrase) == (int(code), phrase), (line, r.status_code, r.reason_phrase, r.text)
    for name, value in headers.items():
        if name == "bsp-deal-id":
            assert DEAL_ID.fullmatch(r.headers.get(name, "")), (line, dict(r.headers))
        else:
            assert r.headers.get(name) == value, (line, name, dict(r.headers))
    if "bsp-deal-id" not in headers:
        assert "bsp-deal-id" not in r.headers, (line, "the page shows no deal id", dict(r.headers))
    got, shown = r.json(), orjson.loads(body)
    # the simulated mainframe numbers its postings for the life of the process (engine.sim.services.common
    # mainframe_answer): in a whole test run other tests have posted before, so only the shape is the page's
    if isinstance(shown, dict) and "debit_ref" in shown and isinstance(got, dict):
        assert HOST_REF.fullmatch(str(got.get("debit_ref"))), (line, r.text)
        got = {**got, "debit_ref": shown["debit_ref"]}
    assert got == shown, (line, r.text)
    return r.headers.get("bsp-deal-id")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _with_mainframe_down(program: Any, registry: Any, ledger: Any, work: Path,
                               pairs: list[tuple[str, str]]) -> list[tuple[str, str, httpx.Response]]:
    overrides = {**listen_overrides(program), **file_overrides(program, work),
                 "clm_mainframe": {"address": f"127.0.0.1:{_closed_port()}"},
                 "clm_clearing": {"address": f"127.0.0.1:{_closed_port()}"}}
    for o in overrides.values():
        if "dir" in o:
            Path(o["dir"]).mkdir(parents=True, exist_ok=True)
    sb = Switchboard(program, registry, ledger=ledger, overrides=overrides, grace=2.0)
    async with trio.open_nursery() as engine:
        await engine.start(sb.run)
        try:
            return await _send(int(sb.channel("clm_insurer").port), pairs)
        finally:
            sb.drain()


async def test_the_requesting_side_page_holds_against_the_running_engine(tmp_path: Path) -> None:
    text = PAGE.read_text()
    cut = text.index(DOWN)
    up, down = _examples(text[:cut]), _examples(text[cut:])
    assert len(up) >= 6 and down, (len(up), len(down))
    service = claims_payout.SERVICE
    registry = services_registry()
    res = compile_paths(route_files(service.name), registry)
    assert res.program is not None, [str(d.message) for d in res.diagnostics]
    ledger_path = tmp_path / "ledger.duckdb"
    # the engine's clock on a TARGET2 day (what `bsp run --at` does): the route books a claim on
    # value_date(now(), "15:30", target2, ...), and target2.csv lists 2026-2028 only, so on the wall clock every
    # claim failed (500, 96) from 2029-01-01
    with engine_clock(parse_instant("2026-11-25T09:00:00Z")[0]):
        async with open_ledger(ledger_path, audit_key=None) as ledger:
            async with running_services(res.program, registry, ledger, [service], work_dir=tmp_path / "up") as rig:
                sent = await _send(rig.port(service.inbound), up)
                mainframe = rig.sims["clm_mainframe"]
            sent += await _with_mainframe_down(res.program, registry, ledger, tmp_path / "down", down)
    ids = [(_check(line, answer, r), r) for line, answer, r in sent]
    assert mainframe.calls == {"CLM-1001": 1}, mainframe.calls        # the repeat paid nothing twice
    first, again = sent[0][2], sent[1][2]
    assert again.content == first.content and again.headers["bsp-deal-id"] != first.headers["bsp-deal-id"]
    runner = CliRunner()
    for deal_id, r in ids:
        if deal_id is None:
            continue
        shown = runner.invoke(app, ["deals", "show", deal_id[:12], "--ledger", str(ledger_path)])
        assert shown.exit_code == 0 and deal_id in shown.output, shown.output
        ref = orjson.loads(r.content).get("claim_id")
        if ref:
            assert f"reference {ref}" in shown.output, shown.output
