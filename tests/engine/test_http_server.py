"""engine.http over real loopback sockets (httpx as the client), plus MockClock timeout tests."""
from __future__ import annotations

from decimal import Decimal
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from conftest_tls import pki  # noqa: F401  (fixture)
from engine.access import AccessList
from engine.http import HTTPError, HTTPLimits, Request, Response, RouteError, Router, serve_connection, serve_http
from engine.tls import client_context, server_context

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
PAIN001 = CORPUS / "iso20022" / "sepa_king_pain_001_001_03" / "input" / "pain.001.001.03.xml"


def make_router(seen: list[Request] | None = None) -> Router:
    router = Router()
    seen = seen if seen is not None else []

    @router.route("GET", "/deals/{id}")
    async def get_deal(request: Request) -> Response:
        seen.append(request)
        return Response.json({"id": request.path_params["id"], "q": request.query})

    @router.route("DELETE", "/deals/{id}")
    async def delete_deal(request: Request) -> Response:
        return Response(204)

    @router.route("POST", "/echo/json")
    async def echo_json(request: Request) -> Response:
        value = request.json()
        return Response.json({"amount_type": type(value["amount"]).__name__, "amount": value["amount"]})

    @router.route("POST", "/echo/form")
    async def echo_form(request: Request) -> Response:
        return Response.json(request.form())

    @router.route("POST", "/echo/xml")
    async def echo_xml(request: Request) -> Response:
        root = request.xml()
        ns = {"p": root.nsmap[None]}
        return Response.json({"root": root.tag, "ctrl_sum": Decimal(root.findtext(".//p:CtrlSum", namespaces=ns)),
                              "txs": len(root.findall(".//p:CdtTrfTxInf", ns)), "text": root.findtext(".//p:Nm", namespaces=ns)})

    @router.route("POST", "/size")
    async def size(request: Request) -> Response:
        return Response.json({"size": len(request.body)})

    @router.route("GET", "/whoami")
    async def whoami(request: Request) -> Response:
        cert = request.peercert or {}
        cn = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
        return Response.json({"cn": cn})

    @router.route("GET", "/boom")
    async def boom(request: Request) -> Response:
        raise RuntimeError("secret internal detail")

    @router.route("GET", "/teapot")
    async def teapot(request: Request) -> Response:
        raise HTTPError(409, "deal D1 is already settled; reverse it first", extra={"deal": "D1"})

    return router


@pytest.fixture
async def server(nursery):
    seen: list[Request] = []
    port = await nursery.start(partial(serve_http, make_router(seen), "127.0.0.1", 0,
                                       limits=HTTPLimits(max_body=4096, max_header=2048)))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        yield client, seen, port


async def test_route_parameters_and_query(server):
    client, seen, _ = server
    r = await client.get("/deals/D%2F42", params={"a": ["1", "2"], "b": ""})
    assert r.status_code == 200 and r.json() == {"id": "D/42", "q": {"a": ["1", "2"], "b": [""]}}
    assert r.headers["server"] == "bsp"
    assert (await client.delete("/deals/7")).status_code == 204


async def test_a_path_starting_with_two_slashes_is_a_path_not_a_host(server):
    """``//x/deals/1`` is the path ``//x/deals/1`` (origin form has no host): it was read as host ``x`` and
    path ``/deals/1``, so a route (and any check on ``http.path``) saw another path than the one sent."""
    _, seen, port = server
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET //x/deals/1?a=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                out += chunk
    assert out.startswith(b"HTTP/1.1 404 ") and b"no resource at //x/deals/1" in out, out
    assert seen == []
    r = Request("GET", "//x/deals/1?a=1#frag", [])
    assert (r.path, r.raw_path, r.query_string) == ("//x/deals/1", "//x/deals/1", "a=1")
    r = Request("GET", "http://bank.example/deals/D%2F1?a=2", [])        # absolute form, as a proxy sends it
    assert (r.path, r.raw_path, r.query_string) == ("/deals/D/1", "/deals/D%2F1", "a=2")


async def test_unknown_path_and_wrong_method_are_problems(server):
    client, _, _ = server
    r = await client.get("/nope")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    doc = r.json()
    assert doc["status"] == 404 and doc["title"] == "Not Found" and "/deals/{id}" in doc["detail"]
    r = await client.put("/deals/1")
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET, HEAD"
    assert "PUT is not allowed on /deals/1" in r.json()["detail"]


async def test_head_has_length_but_no_body(server):
    client, _, _ = server
    full = await client.get("/deals/1")
    head = await client.head("/deals/1")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(full.content))


async def test_json_body_keeps_money_exact(server):
    client, _, _ = server
    r = await client.post("/echo/json", content=b'{"amount": 120.10}', headers={"content-type": "application/json"})
    assert r.json() == {"amount_type": "Decimal", "amount": "120.10"}
    bad = await client.post("/echo/json", content=b'{"amount": 1,\n "x": }', headers={"content-type": "application/json"})
    assert bad.status_code == 400
    assert bad.json()["line"] == 2 and bad.json()["column"] == 7 and "not valid JSON" in bad.json()["detail"]
    wrong = await client.post("/echo/json", content=b"amount=1", headers={"content-type": "text/plain"})
    assert wrong.status_code == 415 and "expected Content-Type application/json" in wrong.json()["detail"]


async def test_a_json_body_too_deep_or_with_a_huge_integer_is_a_400_not_a_500(server):
    # json.loads raised RecursionError (3,000 nested arrays) and ValueError (an integer of more than 4300
    # digits): both escaped Request.json() as a 500, with a traceback in the log
    client, _, _ = server
    deep = await client.post("/echo/json", content=b"[" * 4000, headers={"content-type": "application/json"})
    assert deep.status_code == 400 and "nest too deep" in deep.json()["detail"]
    request = Request("POST", "/", [("content-type", "application/json")], b'{"amount": ' + b"9" * 5000 + b"}")
    with pytest.raises(HTTPError) as info:
        request.json()
    assert info.value.status == 400 and "4300 digits" in info.value.detail


async def test_form_body(server):
    client, _, _ = server
    r = await client.post("/echo/form", data={"biller": "EL01", "amount": "12.50"})
    assert r.json() == {"biller": ["EL01"], "amount": ["12.50"]}


async def test_xml_body_from_the_corpus(server):
    client, _, _ = server
    r = await client.post("/echo/xml", content=PAIN001.read_bytes(), headers={"content-type": "application/xml"})
    assert r.status_code == 200, r.text
    assert r.json() == {"root": "{urn:iso:std:iso:20022:tech:xsd:pain.001.001.03}Document",
                        "ctrl_sum": "6655.86", "txs": 2, "text": "Initiator Name"}


async def test_xml_entities_are_not_expanded(server):
    client, _, _ = server
    xxe = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b'<Document xmlns="urn:x"><CtrlSum>1</CtrlSum><Nm>&x;</Nm></Document>')
    r = await client.post("/echo/xml", content=xxe, headers={"content-type": "application/xml"})
    assert r.status_code == 200 and "root:" not in (r.json()["text"] or "")
    broken = await client.post("/echo/xml", content=b"<a><b></a>", headers={"content-type": "text/xml"})
    assert broken.status_code == 400 and broken.json()["line"] == 1


async def test_keep_alive_reuses_the_connection(server):
    client, seen, _ = server
    for i in range(3):
        assert (await client.get(f"/deals/{i}")).status_code == 200
    assert len({r.peer for r in seen}) == 1


async def test_body_limits_413(server):
    client, _, _ = server
    assert (await client.post("/size", content=b"x" * 4096)).json() == {"size": 4096}
    r = await client.post("/size", content=b"x" * 4097)
    assert r.status_code == 413 and r.json()["limit"] == 4096 and "Content-Length 4097" in r.json()["detail"]
    assert r.json()["instance"] == "/size"       # as every other problem: the path (until 2026-11-27 none)

    async def chunks():
        for _ in range(10):
            yield b"y" * 1000

    r = await client.post("/size", content=chunks())
    assert r.status_code == 413 and "chunked body exceeds the limit of 4096" in r.json()["detail"]
    assert r.json()["instance"] == "/size"


async def raw_exchange(port: int, data: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        out = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                out += chunk
    return out


async def test_expect_continue_too_large_is_refused_before_the_body(server):
    _, _, port = server
    out = await raw_exchange(port, b"POST /size HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                                   b"Expect: 100-continue\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in out


async def test_expect_continue_small_gets_100(server):
    _, _, port = server
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"POST /size HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        with trio.fail_after(5):
            first = await stream.receive_some(1024)
        assert first.startswith(b"HTTP/1.1 100 ")
        await stream.send_all(b"abc")
        with trio.fail_after(5):
            rest = await stream.receive_some(1024)
        assert b'{"size":3}' in (first + rest)


async def test_header_too_large_431(server):
    client, _, _ = server
    r = await client.get("/deals/1", headers={"x-big": "z" * 3000})
    assert r.status_code == 431 and "exceed 2048 bytes" in r.json()["detail"]


async def test_malformed_request_400(server):
    _, _, port = server
    out = await raw_exchange(port, b"GARBAGE\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ") and b"malformed HTTP request" in out


async def test_content_length_with_transfer_encoding_is_refused_and_closed(server):
    # request smuggling: h11 used the chunked body and kept the connection, so the bytes after it ran
    # as a second request (a proxy that trusts Content-Length sees them as the first one's body)
    _, seen, port = server
    out = await raw_exchange(port, b"POST /size HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                                   b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                                   b"GET /deals/2 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ") and out.count(b"HTTP/1.1 ") == 1
    assert b"connection: close" in out.lower()
    assert b"both Content-Length and Transfer-Encoding" in out
    assert seen == []


async def test_pipelined_requests_answered_in_order(server):
    _, _, port = server
    out = await raw_exchange(port, b"GET /deals/1 HTTP/1.1\r\nHost: x\r\n\r\n"
                                   b"GET /deals/2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 200 ") == 2 and out.index(b'"id":"1"') < out.index(b'"id":"2"')


async def test_handler_errors(server):
    client, _, _ = server
    r = await client.get("/boom")
    assert r.status_code == 500 and "secret" not in r.text and r.json()["instance"] == "/boom"
    r = await client.get("/teapot")
    assert r.status_code == 409 and r.json()["deal"] == "D1" and "reverse it first" in r.json()["detail"]


def test_router_rejects_bad_templates():
    router = Router()
    for bad in ["deals", "/deals/{id", "/a/{x}/{x}", "/d/x{id}"]:
        with pytest.raises(RouteError):
            router.add("GET", bad, make_router().__iter__().__next__().handler)
    router.add("GET", "/a/{x}", make_router().__iter__().__next__().handler)
    with pytest.raises(RouteError, match="already routed"):
        router.add("get", "/a/{y}", make_router().__iter__().__next__().handler)


# ------------------------------------------------------------------------ TLS

async def test_mtls_peer_certificate_reaches_the_handler(pki, nursery):
    ctx = server_context(pki.server_cert, pki.server_key, ca=pki.ca, client_cert="optional")
    refused: list[str] = []
    port = await nursery.start(partial(
        serve_http, make_router(), "127.0.0.1", 0, ssl_context=ctx,
        access=AccessList.parse(["cn:MAINFRAME01"]), on_refused=lambda peer, reason: refused.append(reason)))
    url = f"https://127.0.0.1:{port}/whoami"
    ok = client_context(ca=pki.ca, cert=pki.client_cert, key=pki.client_key)
    async with httpx.AsyncClient(verify=ok) as client:
        r = await client.get(url)
        assert r.json() == {"cn": ["MAINFRAME01"]}
    intruder = client_context(ca=pki.ca, cert=pki.intruder_cert, key=pki.intruder_key)
    async with httpx.AsyncClient(verify=intruder) as client:
        r = await client.get(url)
        assert r.status_code == 403 and "INTRUDER" in r.json()["detail"]
        # the refused client is not told which names would be let in; the log is (on_refused)
        assert "MAINFRAME01" not in r.text and "is not allowed" in r.json()["detail"]
    async with httpx.AsyncClient(verify=client_context(ca=pki.ca)) as client:
        r = await client.get(url)
        assert r.status_code == 403 and "no verified client certificate" in r.json()["detail"]
        assert "MAINFRAME01" not in r.text
    assert len(refused) == 2
    assert "matches none of cn:MAINFRAME01" in refused[0] and "cn:MAINFRAME01" in refused[1]


# ------------------------------------------------------------ timeouts (MockClock)

async def test_idle_connection_is_closed_after_idle_timeout(autojump_clock):
    server_end, client_end = trio.testing.memory_stream_pair()
    limits = HTTPLimits(idle_timeout=30, read_timeout=5)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(serve_connection, server_end, make_router(), limits=limits, peer=("t", 1)))
        await client_end.send_all(b"GET /deals/1 HTTP/1.1\r\nHost: x\r\n\r\n")
        first = await client_end.receive_some()
        assert first.startswith(b"HTTP/1.1 200 ")
        t0 = trio.current_time()
        assert await client_end.receive_some() == b""          # closed by the server, no answer
        assert trio.current_time() - t0 == pytest.approx(30)


async def test_slow_request_gets_408_after_read_timeout(autojump_clock):
    server_end, client_end = trio.testing.memory_stream_pair()
    limits = HTTPLimits(idle_timeout=30, read_timeout=5, linger=0.5)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(serve_connection, server_end, make_router(), limits=limits, peer=("t", 1)))
        await trio.sleep(20)                                    # idle, but under idle_timeout
        t0 = trio.current_time()
        await client_end.send_all(b"POST /size HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        out = b""
        while chunk := await client_end.receive_some():
            out += chunk
        assert out.startswith(b"HTTP/1.1 408 ") and b"within 5s" in out
        assert b'"instance":"/size"' in out                   # the request line had come (until 2026-11-27 none)
        assert trio.current_time() - t0 == pytest.approx(5)


async def test_endless_header_is_cut_at_the_limit(server):
    _, _, port = server
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        # never finishes its head: h11's incomplete-event bound answers 431
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"z" * 5000)
        out = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                out += chunk
    assert out.startswith(b"HTTP/1.1 431 ") and b"exceed 2048 bytes" in out


async def test_connection_cap_pauses_accepting(nursery, caplog):
    """A connection in the middle of a request holds its slot: at the cap the next one waits for it."""
    port = await nursery.start(partial(serve_http, make_router(), "127.0.0.1", 0,
                                       limits=HTTPLimits(max_connections=1)))
    request = b"GET /deals/1 HTTP/1.1\r\nHost: x\r\n\r\n"
    first = await trio.open_tcp_stream("127.0.0.1", port)
    await first.send_all(request[:20])                                       # busy: half a request
    await trio.sleep(0.05)
    second = await trio.open_tcp_stream("127.0.0.1", port)
    async with first, second:
        await second.send_all(request)
        with trio.move_on_after(0.2):
            early = await second.receive_some(65536)
            pytest.fail(f"served beyond max_connections=1: {early!r}")
        await first.send_all(request[20:])
        with trio.fail_after(5):
            assert (await first.receive_some(65536)).startswith(b"HTTP/1.1 200 ")
            # first is now idle and someone waits for its slot: it is closed, second is served
            assert await first.receive_some(65536) == b""
            assert (await second.receive_some(65536)).startswith(b"HTTP/1.1 200 ")
    assert (f"HTTP server on 127.0.0.1:{port}: all 1 connections (max_connections) are busy (1 reading a "
            f"request not complete yet) and none can be closed to make room: accepting pauses" in caplog.text)


async def test_at_the_cap_a_new_connection_takes_the_slot_of_an_idle_one(nursery):
    """Connections that send nothing (a keep-alive pool after a burst, or clients that connect and wait)
    must not lock everyone else out until idle_timeout: at the cap the one idle longest makes room."""
    port = await nursery.start(partial(serve_http, make_router(), "127.0.0.1", 0,
                                       limits=HTTPLimits(max_connections=2, idle_timeout=60)))
    request = b"GET /deals/1 HTTP/1.1\r\nHost: x\r\n\r\n"
    kept = await trio.open_tcp_stream("127.0.0.1", port)
    silent = await trio.open_tcp_stream("127.0.0.1", port)
    async with kept, silent:
        await kept.send_all(request)
        with trio.fail_after(5):
            assert (await kept.receive_some(65536)).startswith(b"HTTP/1.1 200 ")    # now idle, kept alive
        await trio.sleep(0.05)
        newcomers = []
        for _ in range(2):                       # each newcomer is served at once, not after 60s
            newcomers.append(await trio.open_tcp_stream("127.0.0.1", port))
            await newcomers[-1].send_all(request)
            with trio.fail_after(5):
                assert (await newcomers[-1].receive_some(65536)).startswith(b"HTTP/1.1 200 ")
        with trio.fail_after(5):                 # the two idle longest were closed, quietly
            assert await silent.receive_some(65536) == b""
            assert await kept.receive_some(65536) == b""
        for n in newcomers:
            await n.aclose()