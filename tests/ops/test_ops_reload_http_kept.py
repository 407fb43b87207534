"""A reload that keeps an `http listen` channel (its options unchanged: same socket, same connections) while
the routes it serves change (docs/operations.md, reload): every request read after the swap runs on the new
configuration (a changed mapping, a changed `validate` rule, a route added on the channel), every request in
flight at the swap finishes on the old one (its answer and its deal's version); a changed `max_body` is a
changed channel, whose socket is handed over and whose new limit applies to the next request.  And the kept
listener holds no configuration alive: after real reloads, dry runs and a reload refused after the bind,
with requests in flight across them, every configuration but the running one is freed (weak references),
and nothing the listener reaches is a configuration but the running one.  (A kept listener held the binder
of the last dry run or refused reload, its program, codecs and channel objects, until the next reload that
switched: engine/channels/staged.py.)

Real engine (LiveEngine as `bsp run` serves it), real HTTP clients and a real counterpart (tests/ops/gatekit.py,
which holds its answers until the test opens it) on 127.0.0.1, a real DuckDB ledger."""
from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any

import httpx
import trio

from gatekit import Gate
from opskit import configuration_version, configurations_reachable, live, rows

ROUTE = """
format J = json
channel api = http listen {
    address  = "127.0.0.1:%(port)d"
    path     = "/pay"
    max_body = %(max_body)d
}
channel back = tcp connect { address = "127.0.0.1:%(back)d" framing = length4 timeout = 20s }
route pay {
    receive from api as J when msg.kind == "pay"
    deal PAY { ref = msg.ref  amount = msg.amount  currency = "EUR" }
    validate { msg.amount <= %(cap)s else reject "61" "over the cap" }
    call post = back as J reply J { op = "post"  ref = msg.ref } expect post.status == "OK"
    reply J { ref = msg.ref  code = "00"  %(mapping)s }
}
%(extra)s
"""

QUOTE = """
route quote {
    receive from api as J when msg.kind == "quote"
    deal QUOTE { ref = msg.ref  amount = 0.00  currency = "EUR" }
    reply J { ref = msg.ref  code = "00"  quoted = "yes" }
}
"""


def text(back: int, *, port: int = 0, max_body: int = 4096, cap: str = "100.00", mapping: str = 'tag = "v1"',
         extra: str = "") -> str:
    return ROUTE % {"back": back, "port": port, "max_body": max_body, "cap": cap, "mapping": mapping,
                    "extra": extra}


async def _post(client: httpx.AsyncClient, url: str, body: dict, out: dict[str, Any]) -> None:
    r = await client.post(url, json=body)
    out[body["ref"]] = (r.status_code, r.json())


async def test_a_kept_http_listen_runs_new_requests_on_the_new_routes_and_finishes_old_ones_on_the_old(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    gate = Gate()
    back = await gate.serve(nursery)
    route = tmp_path / "pay.route"
    route.write_text(text(back))
    ledger = tmp_path / "l.duckdb"
    out: dict[str, Any] = {}
    async with live([route], ledger) as eng:
        listener = eng.channels["api"]
        url = f"http://127.0.0.1:{listener.port}/pay"
        v1 = eng.version
        async with httpx.AsyncClient(timeout=20) as client:
            with trio.fail_after(20):
                async with trio.open_nursery() as clients:
                    clients.start_soon(_post, client, url, {"kind": "pay", "ref": "OLD", "amount": 50}, out)
                    await gate.wait_for(1)             # in flight at the counterpart across the reload
                    route.write_text(text(back, cap="10.00", mapping='tag = "v2"  amount = msg.amount',
                                          extra=QUOTE))
                    result = await eng.reload()
                    assert result.ok, result.diagnostics
                    assert result.plan["channels"]["kept"] == ["api", "back"], result.plan
                    assert eng.channels["api"] is listener         # the same object, the same socket
                    v2 = eng.version
                    # read after the swap: the new rule refuses what the old one let through
                    await _post(client, url, {"kind": "pay", "ref": "CAPPED", "amount": 50}, out)
                    # the route the reload added answers on the kept channel
                    await _post(client, url, {"kind": "quote", "ref": "Q"}, out)
                    clients.start_soon(_post, client, url, {"kind": "pay", "ref": "NEW", "amount": 5}, out)
                    await gate.wait_for(2)
                    gate.open.set()
    assert out["OLD"] == (200, {"ref": "OLD", "code": "00", "tag": "v1"})
    assert out["NEW"] == (200, {"ref": "NEW", "code": "00", "tag": "v2", "amount": 5})
    assert out["Q"] == (200, {"ref": "Q", "code": "00", "quoted": "yes"})
    assert out["CAPPED"][0] == 422 and out["CAPPED"][1]["code"] == "61", out["CAPPED"]
    deals = {r: (s, v) for r, s, v in rows(ledger, "SELECT reference, status, config_version FROM deals")}
    assert deals == {"OLD": ("committed", v1), "NEW": ("committed", v2), "Q": ("committed", v2),
                     "CAPPED": ("rejected", v2)}


async def test_a_changed_max_body_applies_to_the_next_request_on_the_handed_over_socket(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    """max_body is the channel's: changing it changes the channel; on the same address the new listener takes
    the socket over and the next request is read with the new limit (413 over it), the port never closed."""
    gate = Gate()
    back = await gate.serve(nursery)
    gate.open.set()
    route = tmp_path / "pay.route"
    port = await _free_port()
    route.write_text(text(back, port=port, max_body=4096))
    big = {"kind": "pay", "ref": "BIG", "amount": 1, "pad": "x" * 1000}
    async with live([route], tmp_path / "l.duckdb") as eng:
        url = f"http://127.0.0.1:{port}/pay"
        old = eng.channels["api"]
        async with httpx.AsyncClient(timeout=20) as client:
            assert (await client.post(url, json=big)).status_code == 200
            route.write_text(text(back, port=port, max_body=512))
            result = await eng.reload()
            assert result.ok, result.diagnostics
            assert result.plan["channels"]["changed"] == ["api"], result.plan
            assert eng.channels["api"] is not old and eng.channels["api"].sockets.adopted
        # a new connection (the old one's keep-alive connection is retired: docs/operations.md, reload)
        async with httpx.AsyncClient(timeout=20) as client:
            r = await client.post(url, json={**big, "ref": "BIG2"})
            assert r.status_code == 413, r.text
            assert (await client.post(url, json={"kind": "pay", "ref": "SMALL", "amount": 1})).status_code == 200


async def test_a_kept_http_listen_names_the_place_of_the_running_configuration(tmp_path: Path) -> None:
    """The warnings at max_connections name where the channel's max_connections is declared.  A reload that keeps
    the channel but moves its declaration (lines added above it) moves that place at the swap; a dry run does
    not.  (It named the line of the configuration that built the listener for as long as it was kept.)"""
    route = tmp_path / "pay.route"
    body = HTTP_CAP
    route.write_text(body)
    async with live([route], tmp_path / "l.duckdb") as eng:
        listener = eng.channels["api"]
        assert listener.room.place == f"{route}:5:5", listener.room.place
        route.write_text("# a comment\n# and another\n" + body)
        assert (await eng.reload(dry_run=True)).ok
        assert listener.room.place == f"{route}:5:5"
        result = await eng.reload()
        assert result.ok and result.plan["channels"]["kept"] == ["api"], result.plan
        assert eng.channels["api"] is listener and listener.room.place == f"{route}:7:5", listener.room.place


HTTP_CAP = """
format J = json
channel api = http listen {
    address         = "127.0.0.1:0"
    max_connections = 8
    path            = "/pay"
}
route pay {
    receive from api as J
    deal PAY { ref = msg.ref  amount = 1.00  currency = "EUR" }
    reply J { ref = msg.ref }
}
"""


async def _free_port() -> int:
    from opskit import free_port
    return free_port()



async def test_a_kept_http_listen_holds_no_configuration_but_the_running_one(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    """Reloads that change the routes (the listener kept each time), each with a request in flight across it;
    dry runs and a reload refused after its bind (an added channel's address taken) in between and last.
    Once the in-flight requests are answered and the garbage collected, every configuration but the running
    one is freed, and the listener reaches none but the running one (it held the last dry run's or refused
    reload's binder and program)."""
    gate = Gate()
    back = await gate.serve(nursery)
    taken = trio.socket.socket()
    await taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    route = tmp_path / "pay.route"
    route.write_text(text(back))
    weak: list[tuple[str, weakref.ref[Any]]] = []
    out: dict[str, Any] = {}

    def remember(what: str, obj: Any) -> None:
        weak.append((what, weakref.ref(obj)))

    async with live([route], tmp_path / "l.duckdb") as eng:
        listener = eng.channels["api"]
        url = f"http://127.0.0.1:{listener.port}/pay"
        async with httpx.AsyncClient(timeout=20) as client:
            for n in range(2, 6):
                gate.open = trio.Event()
                with trio.fail_after(20):
                    async with trio.open_nursery() as clients:
                        clients.start_soon(_post, client, url,
                                           {"kind": "pay", "ref": f"R{n}", "amount": 1}, out)
                        await gate.wait_for(n - 1)
                        old = eng.current
                        remember(f"generation {old.number}", old)
                        remember(f"binder {old.number}", old.sb.ctx)
                        del old
                        route.write_text(text(back, mapping=f'tag = "dry{n}"', extra=QUOTE))
                        dry = await eng.reload(dry_run=True)
                        assert dry.ok, dry.diagnostics
                        route.write_text(text(back, mapping=f'tag = "refused{n}"', extra=(
                            'channel more = tcp listen { address = "127.0.0.1:%d" framing = length2 }'
                            % taken.getsockname()[1])))
                        refused = await eng.reload()
                        assert not refused.ok and "more" in " ".join(refused.diagnostics), refused.diagnostics
                        route.write_text(text(back, mapping=f'tag = "v{n}"'))
                        result = await eng.reload()
                        assert result.ok, result.diagnostics
                        assert result.plan["channels"]["kept"] == ["api", "back"], result.plan
                        gate.open.set()
                assert out[f"R{n}"] == (200, {"ref": f"R{n}", "code": "00", "tag": f"v{n - 1}"})
            # the last reloads do not switch: a dry run, then one refused after its bind
            route.write_text(text(back, mapping='tag = "dry"', extra=QUOTE))
            assert (await eng.reload(dry_run=True)).ok
            route.write_text(text(back, mapping='tag = "refused"', extra=(
                'channel more = tcp listen { address = "127.0.0.1:%d" framing = length2 }'
                % taken.getsockname()[1])))
            assert not (await eng.reload()).ok
            gate.open.set()
            await _post(client, url, {"kind": "pay", "ref": "LAST", "amount": 1}, out)
            assert out["LAST"] == (200, {"ref": "LAST", "code": "00", "tag": "v5"})
        assert eng.channels["api"] is listener
        with trio.fail_after(10):
            while eng._retiring:                      # the old generations end once their last request is done
                await trio.sleep(0.01)
        gc.collect()
        alive = [what for what, ref in weak if ref() is not None]
        assert alive == [], alive
        held = {(type(c).__name__, configuration_version(c)) for c in configurations_reachable(listener)}
        assert {v for _, v in held} <= {eng.version}, held
    taken.close()
