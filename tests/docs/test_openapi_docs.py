"""docs/services/openapi/*.json, the machine-readable contract of the shipped HTTP services (`bsp docs
openapi`): each is current (what the command writes from its route files today), deterministic, and a
structurally sound OpenAPI 3.1 document (no validator of OpenAPI itself is installed: the structure is
checked here, every schema against JSON Schema 2020-12 with jsonschema, every $ref resolved, every example
valid against its schema).  A route file with a JSON Schema format, a signature, mutual TLS, an access list
and a `when` gets the parts the shipped services do not show: the schema file as the body, the security
schemes, 401, 403, 404 (unrouted) and the query parameters the route reads."""
from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import pytest
from jsonschema.validators import Draft202012Validator
from typer.testing import CliRunner

from dsl.load import compile_paths
from engine.cli import app
from engine.commands.check import route_files
from engine.http_contract.document import build_document, render
from engine.registry import default_registry

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "docs" / "services" / "openapi"
STATUS = re.compile(r"^[1-5][0-9][0-9]$")


def http_services() -> list[str]:
    """The route folders with an http listen channel (by their text: compiling every service is slow)."""
    return sorted(p.parent.name for p in (REPO / "routes").glob("*/*.route")
                  if not p.name.endswith("_test.route") and re.search(r"=\s*http listen\b", p.read_text()))


def generate(folder: Path) -> str:
    res = compile_paths(route_files([folder]), default_registry())
    assert res.program is not None, [str(d) for d in res.errors]
    return render(build_document(res.program))


def test_every_shipped_http_service_has_its_document_and_no_other() -> None:
    assert http_services() == ["claims_payout", "customs_duty", "premium_collection"], (
        "the route folders with an http listen channel changed: write a new one's contract with "
        ".venv/bin/bsp docs openapi routes/NAME --out docs/services/openapi/NAME.json and list it here")
    documented = sorted(p.stem for p in OUT.glob("*.json"))
    assert documented == http_services(), "\n".join(
        [f"routes/{s}/ has an http listen channel and no contract: run .venv/bin/bsp docs openapi routes/{s} "
         f"--out docs/services/openapi/{s}.json" for s in http_services() if s not in documented]
        + [f"docs/services/openapi/{s}.json documents no http service of routes/: remove it"
           for s in documented if s not in http_services()])


@pytest.mark.parametrize("service", http_services())
def test_the_shipped_document_is_current(service: str) -> None:
    text = generate(REPO / "routes" / service)
    assert (OUT / f"{service}.json").read_text(encoding="utf-8") == text, (
        f"docs/services/openapi/{service}.json is out of date: run .venv/bin/bsp docs openapi routes/{service} "
        f"--out docs/services/openapi/{service}.json and review the diff")
    assert text == generate(REPO / "routes" / service)          # deterministic
    assert str(REPO) not in text and "/tmp" not in text          # no absolute path
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", text)     # no time


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def _validator(doc: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    # "#/components/..." resolves against a root holding the document's components
    return Draft202012Validator({**schema, "components": doc["components"]})


def check_structure(doc: dict[str, Any]) -> None:
    """What an OpenAPI 3.1 validator would refuse in the parts this generator writes."""
    assert doc["openapi"] == "3.1.0"
    assert isinstance(doc["info"]["title"], str) and doc["info"]["title"]
    assert re.fullmatch(r"contract-[0-9a-f]{16}", doc["info"]["version"])
    for server in doc.get("servers", []):
        assert re.fullmatch(r"https?://[^/]+", server["url"])
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"], ref
    for name, schema in doc["components"]["schemas"].items():
        assert re.fullmatch(r"[A-Za-z0-9._-]+", name), name
        Draft202012Validator.check_schema(schema)
    for scheme in doc["components"].get("securitySchemes", {}).values():
        assert scheme["type"] in ("apiKey", "http", "mutualTLS", "oauth2", "openIdConnect")
        if scheme["type"] == "apiKey":
            assert scheme["in"] == "header" and scheme["name"]
    ids = []
    for path, item in doc["paths"].items():
        assert path.startswith("/")
        ops = {k: v for k, v in item.items() if k in ("get", "put", "post", "delete", "options", "head", "patch",
                                                       "trace")}
        assert ops and set(item) - set(ops) <= {"summary", "description", "servers", "parameters"}
        for op in ops.values():
            ids.append(op["operationId"])
            declared = {p["name"] for p in op.get("parameters", ()) if p["in"] == "path"}
            assert declared == set(re.findall(r"\{(\w+)\}", path))
            for p in op.get("parameters", ()):
                assert p["in"] in ("path", "query", "header", "cookie") and "schema" in p
            for req in op.get("security", []):
                assert set(req) <= set(doc["components"].get("securitySchemes", {}))
            body = op.get("requestBody")
            if body is not None:
                for media in body["content"].values():
                    for example in media.get("examples", {}).values():
                        _validator(doc, media["schema"]).validate(example["value"])
            assert op["responses"]
            for status, resp in op["responses"].items():
                assert STATUS.match(status) and resp["description"]
                for media, content in resp.get("content", {}).items():
                    assert "schema" in content
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("service", http_services())
def test_the_shipped_document_is_sound_openapi(service: str) -> None:
    doc = json.loads((OUT / f"{service}.json").read_text(encoding="utf-8"), parse_float=Decimal)
    check_structure(doc)
    op = next(iter(doc["paths"].values()))["post"]
    statuses = set(op["responses"])
    # what the channel answers (engine/http, engine/channels/http_listen.py), and nothing it never does
    # 415: check_content_type (on by default) over a JSON route (engine/channels/http_media.py)
    assert {"200", "400", "408", "409", "413", "415", "422", "431", "500", "502", "503", "504"} <= statuses
    assert not statuses & {"401", "403", "404", "405"}
    assert "Idempotency" in op["description"] and "deal key" in op["description"]
    problem = doc["components"]["schemas"]["Problem"]["properties"]
    assert {"kind", "code", "deal_status", "detail", "instance"} <= set(problem)


def test_claims_body_schema_is_what_the_route_reads() -> None:
    doc = json.loads((OUT / "claims_payout.json").read_text(encoding="utf-8"))
    body = doc["components"]["schemas"]["ClaimSettlement"]
    assert body["x-bsp-partial"] is True
    assert sorted(body["required"]) == ["amount", "beneficiary", "claim_id", "currency", "policy_no", "product"]
    assert body["properties"]["amount"]["type"] == "number"
    assert sorted(body["properties"]["beneficiary"]["required"]) == ["iban", "name"]
    assert "in the deal key" in body["properties"]["claim_id"]["description"].lower()
    assert "code 16: beneficiary IBAN invalid" in body["properties"]["beneficiary"]["properties"]["iban"]["description"]
    # a repeat of the claim id with another beneficiary IBAN is a key conflict (422, 12): the insurer is told
    op = doc["paths"]["/claims/settlements"]["post"]
    assert ("A repeat must be the same deal: amount `msg.amount`, currency `msg.currency`, party `msg.product`, "
            "match `replace(upper(trim(msg.beneficiary.iban)), \" \", \"\")`; a key already used with any of "
            "these different is refused, 422 with code 12") in op["description"]
    assert "502 with code 05: sent again, it runs again" not in op["description"]     # claims: `on refusal keep`
    reply = doc["components"]["schemas"]["claim_payout.reply"]["properties"]
    assert reply["status"] == {"type": "string", "const": "PAID"}


ROUTE = '''
format Order = json schema "order.schema.json"
format Answer = json

channel orders = http listen {
    address          = "127.0.0.1:0"
    method           = "PUT"
    path             = "/orders/{id}"
    cert             = "server.pem"
    key              = "server.key"
    ca               = "ca.pem"
    client_cert      = "required"
    allow            = ["cn:partner"]
    signature_header = "X-Signature"
    signature_key_env = "ORDERS_KEY"
    signature_timestamp_header = "X-Timestamp"
    status_map       = ["rejected:400"]
}

route take_order {
    receive from orders as Order when msg.kind == "order"
    validate {
        len(http.query.channel) > 0 else reject "30" "channel missing"
    }
    reply Answer { id = http.params.id  status = "TAKEN" }
}
'''

SCHEMA = {"type": "object", "required": ["kind", "qty"],
          "properties": {"kind": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}}}


def test_a_schema_format_signature_and_mtls_channel(tmp_path: Path) -> None:
    (tmp_path / "orders.route").write_text(ROUTE)
    (tmp_path / "order.schema.json").write_text(json.dumps({"$id": "urn:x", **SCHEMA}))
    for name in ("server.pem", "ca.pem"):     # bsp check looks for them; nothing here reads them
        (tmp_path / name).write_text("not read\n")
    res = compile_paths([tmp_path / "orders.route"], default_registry())
    assert res.program is not None, [str(d) for d in res.errors]
    doc = json.loads(render(build_document(res.program)))
    check_structure(doc)
    op = doc["paths"]["/orders/{id}"]["put"]
    assert doc["servers"][0]["url"].startswith("https://127.0.0.1:")
    assert doc["components"]["schemas"]["Order"] == SCHEMA            # the format's schema file, as written
    assert op["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Order"}
    assert op["security"] == [{"mutualTLS": [], "bodySignature": []}]
    assert doc["components"]["securitySchemes"]["bodySignature"]["name"] == "X-Signature"
    params = {(p["in"], p["name"]): p["required"] for p in op["parameters"]}
    assert params == {("path", "id"): True, ("query", "channel"): False, ("header", "X-Timestamp"): True}
    # status_map moved rejected to 400; unrouted (every route has a when) 404, the signature 401, allow 403
    assert {"400", "401", "403", "404"} <= set(op["responses"]) and "422" not in op["responses"]
    assert "kind `rejected`" in op["responses"]["400"]["description"]
    assert 'taken when `msg.kind == "order"`' in op["description"]
    assert "records no deal key" in op["description"]
    assert "409" not in op["responses"] and "502" not in op["responses"]     # no deal key, no call


def test_the_command(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "claims.json"
    r = runner.invoke(app, ["docs", "openapi", str(REPO / "routes" / "claims_payout"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_text(encoding="utf-8") == (OUT / "claims_payout.json").read_text(encoding="utf-8")
    r = runner.invoke(app, ["docs", "openapi", str(REPO / "routes" / "remittance")])
    assert r.exit_code == 1 and "no http listen channel" in r.output
    r = runner.invoke(app, ["docs", "openapi", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "no such file" in r.output
    r = runner.invoke(app, ["docs", "openapi", str(REPO / "routes" / "claims_payout"), "--env", "uat"])
    assert r.exit_code == 2 and "deployment file" in r.output


def test_a_deployment_file_and_its_environment(tmp_path: Path) -> None:
    """The document describes what `bsp run platform.yaml --env ENV` serves: the environment's address and
    limits over the route file's."""
    (tmp_path / "platform.yaml").write_text(
        "version: 1\nroutes:\n  - " + str(REPO / "routes" / "claims_payout") + "/*.route\nledger: bsp.duckdb\n"
        "environments:\n  prod:\n    channels:\n      clm_insurer: {address: \"10.0.0.5:8443\", max_body: 65536}\n")
    runner = CliRunner()
    base = runner.invoke(app, ["docs", "openapi", str(tmp_path / "platform.yaml")])
    prod = runner.invoke(app, ["docs", "openapi", str(tmp_path / "platform.yaml"), "--env", "prod"])
    assert base.exit_code == 0 and prod.exit_code == 0, (base.output, prod.output)
    assert json.loads(base.stdout)["servers"][0]["url"] == "http://127.0.0.1:7380"
    doc = json.loads(prod.stdout)
    check_structure(doc)
    assert doc["servers"][0]["url"] == "http://10.0.0.5:8443"
    assert "over 65536 bytes" in doc["paths"]["/claims/settlements"]["post"]["responses"]["413"]["description"]
    assert doc["info"]["version"] != json.loads(base.stdout)["info"]["version"]


TWO_ROUTES = '''
format Req = json
format Ans = json
channel api = http listen { address = "127.0.0.1:0"  path = "/x" }
route pay {
    receive from api as Req when msg.type == "pay"
    validate { msg.amount > 0 else reject "13" "invalid amount" }
    reply Ans { status = "PAID" }
}
route ask {
    receive from api as Req when msg.type == "ask"
    validate { len(trim(msg.question)) > 0 else reject "30" "question missing" }
    reply Ans { status = "ANSWERED" }
}
'''


def test_routes_sharing_a_channel_require_only_what_each_requires(tmp_path: Path) -> None:
    """A field one route requires is not required of a request another route takes: `amount` and
    `question` are each one route's; `type`, which both routes' `when` read, is required."""
    (tmp_path / "two.route").write_text(TWO_ROUTES)
    res = compile_paths([tmp_path / "two.route"], default_registry())
    assert res.program is not None, [str(d) for d in res.errors]
    doc = json.loads(render(build_document(res.program)))
    check_structure(doc)
    body = doc["components"]["schemas"]["Req"]
    assert body["required"] == ["type"]
    assert body["properties"]["amount"]["type"] == "number" and body["properties"]["question"]["type"] == "string"
    op = doc["paths"]["/x"]["post"]
    assert "404" in op["responses"]                  # neither `when` takes it: unrouted
    assert 'Route `pay`, taken when `msg.type == "pay"`' in op["description"]
    ok = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"oneOf": [{"$ref": "#/components/schemas/pay.reply"}, {"$ref": "#/components/schemas/ask.reply"}]}


SIGNED_CALL = '''
format Req = json
format Ans = json
channel api = http listen { address = "127.0.0.1:0"  path = "/x" }
channel partner = http call {
    url = "http://127.0.0.1:9/pay"
    signature_header = "X-Sig"
    signature_key_env = "PARTNER_KEY"
}
route pay {
    receive from api as Req
    call out = partner as Req reply Ans { id = msg.id }
    reply Ans { status = "PAID" }
}
'''


def test_a_call_whose_answer_is_signed_can_answer_502_not_401(tmp_path: Path) -> None:
    """A signed http call's answer that does not verify fails the deal (in doubt) with kind unauthenticated,
    which the channel answers 502 (the bank's failure), not 401 (the caller's own bad signature): the
    document says so, and lists no 401 where the caller signs nothing."""
    (tmp_path / "signed.route").write_text(SIGNED_CALL)
    res = compile_paths([tmp_path / "signed.route"], default_registry())
    assert res.program is not None, [str(d) for d in res.errors]
    doc = json.loads(render(build_document(res.program)))
    check_structure(doc)
    responses = doc["paths"]["/x"]["post"]["responses"]
    assert "bank system's answer" in responses["502"]["description"] and "401" not in responses
    assert "securitySchemes" not in doc["components"]          # the caller signs nothing


def test_two_channels_on_one_path_keep_their_own_servers(tmp_path: Path) -> None:
    (tmp_path / "two.route").write_text('''
format Req = json
format Ans = json
channel put_api  = http listen { address = "127.0.0.1:7001"  method = "PUT"   path = "/x" }
channel post_api = http listen { address = "127.0.0.1:7002"  method = "POST"  path = "/x" }
route a { receive from put_api as Req   reply Ans { status = "A" } }
route b { receive from post_api as Req  reply Ans { status = "B" } }
''')
    res = compile_paths([tmp_path / "two.route"], default_registry())
    assert res.program is not None, [str(d) for d in res.errors]
    doc = json.loads(render(build_document(res.program)))
    check_structure(doc)
    assert "servers" not in doc
    item = doc["paths"]["/x"]
    assert item["put"]["servers"][0]["url"] == "http://127.0.0.1:7001"
    assert item["post"]["servers"][0]["url"] == "http://127.0.0.1:7002"
    assert "204" not in item["put"]["responses"] and "409" not in item["put"]["responses"]


def test_premium_collection_says_a_refused_debit_runs_again_and_the_account_is_compared() -> None:
    """`on refusal free` (a premium refused for insufficient funds is presented again) and `match = account`
    are part of the insurer's contract."""
    doc = json.loads((OUT / "premium_collection.json").read_text(encoding="utf-8"))
    op = doc["paths"]["/premiums/notices"]["post"]
    assert "a refusal by a system of the bank, 502 with code 05: sent again, it runs again" in op["description"]
    assert "party `msg.policy_no`, match `trim(msg.account)`" in op["description"]
