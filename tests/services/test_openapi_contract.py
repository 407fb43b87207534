"""docs/services/openapi/*.json against a running engine (loopback HTTP, the services' counterpart
simulators): a request built from the document (claims payout: its example; premium collection: a value
for every field its schema requires, and no other) is valid against the document's request schema, is
accepted (the documented success status, a body valid against the documented reply schema, a
Bsp-Deal-Id); the same request without one of its required fields (each in turn) is refused with a status
the document lists, with a body valid against that status's documented schema for the content type
answered; a body that is not one JSON object gets the documented 400.  A route without an `on error` reply
answers its refusals with problem details, which hold the documented Problem schema, as the server's own
413 does."""
from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from jsonschema.validators import Draft202012Validator

from dsl.clock import engine_clock, parse_instant
from dsl.load import compile_paths
from engine.ledger import open_ledger
from engine.sim.services import claims_payout, premium_collection
from engine.sim.services.catalog import route_files
from engine.sim.services.harness import running_services
from engine.sim.services.registry import services_registry

OUT = Path(__file__).resolve().parents[2] / "docs" / "services" / "openapi"


def _doc(service: str) -> dict[str, Any]:
    return json.loads((OUT / f"{service}.json").read_text(encoding="utf-8"), parse_float=Decimal)


def _valid(doc: dict[str, Any], schema: dict[str, Any], value: Any) -> None:
    Draft202012Validator({**schema, "components": doc["components"]}).validate(value)


def _operation(doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (path, item), = doc["paths"].items()
    return path, item["post"]


def _answered(doc: dict[str, Any], op: dict[str, Any], r: httpx.Response) -> None:
    """``r`` is one of the answers ``op`` documents: its status, and its body under the content type sent."""
    assert str(r.status_code) in op["responses"], (r.status_code, r.text)
    resp = op["responses"][str(r.status_code)]
    media = r.headers["content-type"].split(";")[0]
    assert media in resp.get("content", {}), (r.status_code, media, list(resp.get("content", {})))
    _valid(doc, resp["content"][media]["schema"], json.loads(r.content, parse_float=Decimal))
    if "Bsp-Deal-Id" in resp.get("headers", {}):
        assert len(r.headers.get("bsp-deal-id", "")) == 32, dict(r.headers)


def _without(body: dict[str, Any], path: list[str]) -> dict[str, Any]:
    out = copy.deepcopy(body)
    node = out
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return out


def _required(schema: dict[str, Any], prefix: list[str] | None = None) -> list[list[str]]:
    """Every required field, by path (an object's own required fields after it)."""
    out = []
    for name in schema.get("required", ()):
        out.append([*(prefix or []), name])
        child = schema["properties"][name]
        if child.get("type") == "object":
            out += _required(child, [*(prefix or []), name])
    return out


def _encode(body: dict[str, Any]) -> bytes:
    """JSON with amounts as exact numbers (a Decimal written with its digits, never through a float)."""
    return _exact_json(body).encode()


def _exact_json(v: Any) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_exact_json(x)}" for k, x in v.items()) + "}"
    if isinstance(v, Decimal):
        return format(v, "f")
    return json.dumps(v)


async def _exercise(tmp_path: Path, service: Any, doc: dict[str, Any], good: dict[str, Any],
                    fresh: Any) -> list[httpx.Response]:
    path, op = _operation(doc)
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    _valid(doc, schema, good)
    registry = services_registry()
    res = compile_paths(route_files(service.name), registry)
    assert res.program is not None
    answers = []
    async with open_ledger(tmp_path / "ledger.duckdb", audit_key=None) as ledger:
        async with running_services(res.program, registry, ledger, [service], work_dir=tmp_path / "w") as rig:
            url = f"http://127.0.0.1:{rig.port(service.inbound)}{path}"
            headers = {"content-type": "application/json"}
            async with httpx.AsyncClient(timeout=15) as client:
                r = await client.post(url, content=_encode(good), headers=headers)
                assert r.status_code == 200, r.text
                _answered(doc, op, r)
                answers.append(r)
                component = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
                required = _required(component)
                assert required
                for i, field in enumerate(required):
                    body = _without(fresh(good, i), field)
                    r = await client.post(url, content=_encode(body), headers=headers)
                    assert r.status_code != 200 and r.status_code < 500, (field, r.status_code, r.text)
                    _answered(doc, op, r)
                    answers.append(r)
                r = await client.post(url, content=b"[1, 2]", headers=headers)
                assert r.status_code == 400, r.text
                _answered(doc, op, r)
                # JSON sent under another type (check_content_type): the documented 415
                r = await client.post(url, content=_encode(fresh(good, 99)), headers={"content-type": "text/plain"})
                assert r.status_code == 415, r.text
                _answered(doc, op, r)
    return answers


async def test_claims_payout_document_holds_against_the_running_engine(tmp_path: Path) -> None:
    doc = _doc("claims_payout")
    _, op = _operation(doc)
    example = next(iter(op["requestBody"]["content"]["application/json"]["examples"].values()))["value"]

    def fresh(body: dict[str, Any], i: int) -> dict[str, Any]:
        return {**body, "claim_id": f"CLM-OA-{i}"}

    # the engine's clock on a TARGET2 day (what `bsp run --at` does): the route books the claim on
    # value_date(now(), "15:30", target2, ...), and target2.csv lists 2026-2028 only, so on the wall clock the
    # claim failed (500, 96) from 2029-01-01
    with engine_clock(parse_instant("2026-11-25T09:00:00Z")[0]):
        answers = await _exercise(tmp_path, claims_payout.SERVICE, doc, example, fresh)
    assert answers[0].json()["status"] == "PAID"
    # leaving out the amount: the number the route reads, named (422 30)
    refused = [r.json() for r in answers[1:-1]]
    assert {"status": "REJECTED", "code": "30"}.items() <= refused[1].items(), refused[1]


async def test_premium_collection_document_holds_against_the_running_engine(tmp_path: Path) -> None:
    doc = _doc("premium_collection")
    schema = doc["components"]["schemas"]["PcNotice"]
    due = (datetime.now(ZoneInfo("Asia/Shanghai")).date() + timedelta(days=30)).isoformat()
    values = {"notice_id": "N-OA-1", "amount": Decimal("1200.00"), "currency": "CNY", "policy_no": "PL0000000001",
              "due_date": due, "account": "6222000011112222", "creditor_id": "INS00001", "mandate_id": "MD-0001"}
    assert sorted(schema["required"]) == sorted(values)          # the document says what a request must hold
    good = {name: values[name] for name in schema["required"]}

    def fresh(body: dict[str, Any], i: int) -> dict[str, Any]:
        return {**body, "notice_id": f"N-OA-{i + 2}", "policy_no": f"PL{i + 2:010d}"}

    answers = await _exercise(tmp_path, premium_collection.SERVICE, doc, good, fresh)
    assert answers[0].json()["status"] == "COLLECTED"


PLAIN = '''
format Order = json
format Taken = json

channel orders = http listen {
    address = "127.0.0.1:0"
    method  = "PUT"
    path    = "/orders/{id}"
}

route take_order {
    receive from orders as Order
    deal ORDER {
        ref      = msg.order_id
        amount   = msg.amount
        currency = "EUR"
        key      = trim(msg.order_id)
    }
    validate {
        len(trim(msg.order_id)) > 0 else reject "30" "order id missing"
        msg.amount > 0              else reject "13" "invalid amount"
    }
    reply Taken { order = http.params.id  status = "TAKEN" }
}
'''


async def _raw(port: int, head: bytes) -> tuple[int, str, bytes]:
    """Send ``head`` (no body) and read the answer until the server closes: (status, content type, body)."""
    import trio
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(head)
        data = b""
        while True:
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            data += chunk
    top, _, body = data.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), headers.get("content-type", ""), body


async def test_problem_details_as_documented_against_a_running_engine(tmp_path: Path) -> None:
    """A route without an `on error` reply: its refusals are problem details, which must hold the documented
    Problem schema (kind, code, deal_status, detail, instance, deal_id), as must the server's own 413."""
    import trio

    from engine.http_contract.document import build_document, render
    from engine.registry import default_registry
    from engine.runtime.switchboard import Switchboard
    from engine.sim.services.harness import listen_overrides

    (tmp_path / "orders.route").write_text(PLAIN)
    registry = default_registry()
    res = compile_paths([tmp_path / "orders.route"], registry)
    assert res.program is not None, [str(d) for d in res.errors]
    doc = json.loads(render(build_document(res.program)), parse_float=Decimal)
    path, item = next(iter(doc["paths"].items()))
    op = item["put"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    component = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    assert component["required"] == ["order_id", "amount"]
    good = {"order_id": "O-1", "amount": Decimal("10.50")}
    _valid(doc, schema, good)
    async with open_ledger(tmp_path / "ledger.duckdb", audit_key=None) as ledger:
        sb = Switchboard(res.program, registry, ledger=ledger, overrides=listen_overrides(res.program), grace=2.0)
        async with trio.open_nursery() as engine:
            await engine.start(sb.run)
            try:
                port = int(sb.channel("orders").port)
                url = f"http://127.0.0.1:{port}" + path.replace("{id}", "O-1")
                async with httpx.AsyncClient(timeout=15) as client:
                    r = await client.put(url, content=_encode(good), headers={"content-type": "application/json"})
                    assert r.status_code == 200 and r.json() == {"order": "O-1", "status": "TAKEN"}, r.text
                    _answered(doc, op, r)
                    again = await client.put(url, content=_encode(good), headers={"content-type": "application/json"})
                    assert again.status_code == 200 and again.content == r.content     # the deal key
                    for field in ("order_id", "amount"):
                        r = await client.put(url, content=_encode(_without(good, [field])),
                                             headers={"content-type": "application/json"})
                        assert r.status_code == 422, r.text
                        _answered(doc, op, r)
                        problem = r.json()
                        assert problem["kind"] == "rejected" and problem["deal_status"] == "rejected", problem
                        assert problem["code"] in ("30", "13") and problem["instance"] == "/orders/O-1"
                status, media, body = await _raw(port, b"PUT /orders/O-2 HTTP/1.1\r\nHost: x\r\nContent-Length: "
                                                       b"2000000\r\nContent-Type: application/json\r\n\r\n")
                assert status == 413 and media == "application/problem+json"
                _valid(doc, op["responses"]["413"]["content"][media]["schema"], json.loads(body))
                assert json.loads(body)["limit"] == 1 << 20
            finally:
                sb.drain()
