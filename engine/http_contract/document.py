"""An OpenAPI 3.1 document for the ``http listen`` channels of compiled route files (``bsp docs openapi``).

What a partner calling the bank's services needs, read from the plan the engine serves: the channel's
address, method and path (its options parsed as the channel parses them, ``HttpListener`` with
``load_tls=False``: no key nor certificate file is read), the request body (the receive format's JSON
Schema file when it names one, else what the routes read: ``engine.http_contract.fields``, marked
partial), the answers (``engine.http_contract.responses``), the security the channel requires (mutual TLS,
a body signature) and the deal key (idempotency).

Deterministic: channels, statuses and schemas in a fixed order, no time, no absolute path; the
``info.version`` is a hash of the rest of the document, so it changes exactly when the contract does.
"""
from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Mapping

import orjson

from dsl import ir
from engine.channels.http_listen import HttpListener
from engine.http_contract.fields import request_schema
from engine.http_contract.replies import file_schema, media_of, source_text
from engine.http_contract.responses import PROBLEM, responses

DOC = "docs/services/calling-bsp.md"
MAX_EXAMPLES = 2          # request examples per operation: the first route tests that fit


def http_channels(program: ir.Program) -> list[str]:
    """The ``http listen`` channels that routes receive from, sorted."""
    return sorted(n for n, c in program.channels.items()
                  if c.kind == "http.listen" and program.routes_for(n))


def _name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def _http_reads(routes: Iterable[ir.Route]) -> dict[str, set[str]]:
    """``http.query.NAME`` and ``http.headers["name"]`` the routes read: {"query": {...}, "header": {...}}."""
    out: dict[str, set[str]] = {"query": set(), "header": set()}

    def walk(v: Any) -> None:
        if isinstance(v, ir.Expr):
            if type(v) in (ir.Attr, ir.Index) and type(v.base) is ir.Attr and type(v.base.base) is ir.Name \
                    and v.base.base.name == "http" and v.base.name in ("query", "headers"):
                where = "query" if v.base.name == "query" else "header"
                if type(v) is ir.Attr:
                    out[where].add(v.name)
                elif type(v.index) is ir.Lit and v.index.type == "string":
                    out[where].add(str(v.index.value))
            for f in ("base", "index", "operand", "left", "right", "test", "then", "otherwise"):
                walk(getattr(v, f, None))
            for a in getattr(v, "args", ()) or getattr(v, "items", ()) or ():
                walk(a)
        elif isinstance(v, ir.Step):
            walk(v.options)
        elif isinstance(v, (ir.Assign, ir.Rule)):
            walk(v.value if isinstance(v, ir.Assign) else v.cond)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)

    for r in routes:
        walk(r.when)
        walk(r.steps)
        walk(r.on_error)
    return out


def _deal(route: ir.Route) -> ir.Step | None:
    return next((s for s in route.steps if s.kind == "deal"), None)


def _idempotency(program: ir.Program, route: ir.Route) -> str:
    deal = _deal(route)
    if deal is None:
        return f"Route `{route.name}` records no deal key: a request sent again runs again."
    key = next((a for a in deal.options.get("fields", ()) if a.path == "key"), None)
    if key is None:
        return (f"Route `{route.name}` records a `{deal.options.get('type')}` deal without a business key: a "
                "request sent again runs again.")
    # what a repeat of the key must carry unchanged (engine/txn/fingerprint.py: key_conflict)
    same = [f"{a.path} `{source_text(program, a.value)}`" for a in deal.options.get("fields", ())
            if a.path in ("amount", "currency", "party", "match")]
    compared = (f" A repeat must be the same deal: {', '.join(same)}; a key already used with any of these "
                "different is refused, 422 with code 12, neither run nor answered from the original. The rest of "
                "the body is not compared: never reuse a key for another request.") if same else (
                " The bodies are not compared: never reuse a key for another request.")
    return (f"Idempotency (route `{route.name}`, deal `{deal.options.get('type')}`): the deal key is "
            f"`{source_text(program, key.value)}`. A request with a key already answered is not run again: it "
            "gets the original answer, byte for byte, with the original HTTP status, for the engine's key "
            "retention (35 days unless the bank sets another); past it, 409 with code 94. A copy sent while the "
            "original runs waits for it. A key is freed only when nothing of the original stands (a validation "
            "refusal, 422; code 91 when the first system was unreachable" + (
                "; a refusal by a system of the bank, 502 with code 05: sent again, it runs again"
                if getattr(route, "on_refusal", "keep") == "free" else "") + ")." + compared)


def _literal(e: ir.Expr) -> tuple[bool, Any]:
    if type(e) is ir.Lit and e.type in ("string", "int", "decimal", "bool", "null"):
        return True, e.value
    if type(e) is ir.Unary and e.op == "-" and type(e.operand) is ir.Lit and e.operand.type in ("int", "decimal"):
        return True, -e.operand.value
    return False, None


def examples(program: ir.Program, channel: str, status_ok: int) -> dict[str, Any]:
    """The route tests (``bsp test``) that send the channel a request of literal values, as the HTTP channel
    itself would get it, and expect the committed answer (``expect reply STATUS_OK``): request examples, by
    test name (the first ``MAX_EXAMPLES``). A test whose values are computed (``today()``) or that sets ``http { }`` is left out."""
    out: dict[str, Any] = {}
    for t in program.tests:
        send = t.send
        if send.channel != channel or send.http is not None or send.twice:
            continue
        if not any(x.kind == "reply" and x.status == status_ok for x in t.expects):
            continue
        value: dict[str, Any] = {}
        usable = True
        for a in send.fields:
            ok, v = _literal(a.value)
            if not ok or "[" in a.path:
                usable = False
                break
            node = value
            *parents, last = a.path.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = v
        if usable and len(out) < MAX_EXAMPLES:
            out[t.name] = {"summary": f"route test \"{t.name}\"", "value": value}
    return out


def _request_body(program: ir.Program, routes: list[ir.Route], schemas: dict[str, Any]) -> dict[str, Any] | None:
    by_format: dict[str | None, list[ir.Route]] = {}
    for r in routes:
        by_format.setdefault(r.format, []).append(r)
    content: dict[str, Any] = {}
    alternatives: dict[str, list[dict[str, Any]]] = {}
    partial = False
    for fmt, rs in by_format.items():
        decl = program.formats.get(fmt or "")
        media = media_of(decl)
        if decl is not None and decl.kind == "json":
            name = _name(fmt or "")
            if name not in schemas:
                from_file = file_schema(decl)
                if from_file is not None:
                    schemas[name] = from_file
                else:
                    partial = True
                    s = request_schema(rs)
                    s["description"] = (f"What routes {', '.join(f'`{r.name}`' for r in rs)} read of a `{fmt}` "
                                        "(a JSON format without a schema file): only the fields the route reads, "
                                        "their type where the route's reading fixes it, and `required` where "
                                        "leaving the field out refuses the request. Other fields are ignored.")
                    s["x-bsp-partial"] = True
                    schemas[name] = s
            alternatives.setdefault(media, []).append({"$ref": f"#/components/schemas/{name}"})
        else:
            alternatives.setdefault(media, []).append({"type": "string", "description": (
                f"A `{decl.kind}` message (format `{fmt}`)." if decl is not None else "The raw bytes.")})
    for media, alts in alternatives.items():
        content[media] = {"schema": alts[0] if len(alts) == 1 else {"oneOf": alts}}
    body = {"required": True, "content": content}
    if partial:
        body["description"] = ("Send `Content-Type: application/json` (a form body, "
                               "application/x-www-form-urlencoded, is read as a flat form; JSON sent as a form, "
                               "curl -d's default, is answered 415). The schema is partial: "
                               "built from what the route reads (x-bsp-partial).")
    return body


def _security(opts: Mapping[str, Any], listener: HttpListener) -> tuple[dict[str, Any], list[dict[str, list]]]:
    schemes: dict[str, Any] = {}
    need: dict[str, list] = {}
    mode = str(opts.get("client_cert") or "none")
    if opts.get("cert") and mode in ("required", "optional"):
        schemes["mutualTLS"] = {"type": "mutualTLS", "description": (
            "TLS with a client certificate the bank issued or pinned (`client_cert = " + mode + "`); a handshake "
            "that fails closes the connection without an HTTP answer"
            + ("; a certificate outside the channel's access list is answered 403." if not listener.access.open
               else "."))}
        if mode == "required":
            need["mutualTLS"] = []
    sig = listener.signature
    if sig is not None:
        signed = f"`{sig.timestamp_header}` + \".\" + the body" if sig.timestamp_header else "the body, byte for byte"
        schemes["bodySignature"] = {
            "type": "apiKey", "in": "header", "name": sig.header,
            "description": (f"{sig.algorithm} of {signed} with the secret shared with the bank, written "
                            f"{sig.encoding}" + (f" after `{sig.prefix}`" if sig.prefix else "")
                            + (f"; `{sig.timestamp_header}` holds the signing time (Unix seconds), at most "
                               f"{sig.max_age:g}s from the bank's clock" if sig.timestamp_header else "")
                            + ". A request without a good one is answered 401 (kind `unauthenticated`, code 63). "
                              "Every answer carries the bank's signature of its body in the same header.")}
        need["bodySignature"] = []
    return schemes, ([need] if need else [])


def _operation(program: ir.Program, name: str, listener: HttpListener, opts: Mapping[str, Any],
               schemas: dict[str, Any], security: list[dict[str, list]]) -> dict[str, Any]:
    routes = list(program.routes_for(name))
    decl = program.channels[name]
    described = []
    for r in routes:
        when = source_text(program, r.when) if r.when is not None else None
        described.append(f"Route `{r.name}`" + (f", taken when `{when}`" if when else "") + ".")
    described += [_idempotency(program, r) for r in routes]
    described.append(f"The answer to every request recorded as a deal carries `Bsp-Deal-Id` (32 hex digits): "
                     f"quote it to the bank. See {DOC}.")
    op: dict[str, Any] = {"operationId": _name(name), "summary": f"channel {name}",
                          "description": "\n\n".join(described)}
    params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
              for p in re.findall(r"\{(\w+)\}", listener.path)]
    reads = _http_reads(routes)
    params += [{"name": q, "in": "query", "required": False, "schema": {"type": "string"},
                "description": "Read by the route (`http.query`)."} for q in sorted(reads["query"])]
    sig = listener.signature
    skip = {h.lower() for h in ((sig.header, sig.timestamp_header) if sig is not None else ()) if h}
    params += [{"name": h, "in": "header", "required": False, "schema": {"type": "string"},
                "description": "Read by the route (`http.headers`)."} for h in sorted(reads["header"])
               if h.lower() not in skip]
    if sig is not None and sig.timestamp_header:
        params.append({"name": sig.timestamp_header, "in": "header", "required": True,
                       "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"},
                       "description": "The signing time, Unix seconds (part of what is signed)."})
    if params:
        op["parameters"] = params
    if listener.method not in ("GET", "HEAD", "DELETE"):
        body = _request_body(program, routes, schemas)
        found = examples(program, name, listener.status_ok)
        if body is not None and found and "application/json" in body["content"]:
            body["content"]["application/json"]["examples"] = found
        if body is not None:
            op["requestBody"] = body
    op["responses"] = responses(program, name, decl, routes, listener, opts, schemas)
    if security:
        op["security"] = security
    return op


def _server(name: str, listener: HttpListener, opts: Mapping[str, Any]) -> dict[str, Any]:
    scheme = "https" if opts.get("cert") else "http"
    host = listener.host if ":" not in listener.host else f"[{listener.host}]"
    return {"url": f"{scheme}://{host}:{listener.port}",
            "description": f"channel {name} as configured; the bank gives you the real address"}


def build_document(program: ir.Program, overrides: Mapping[str, Mapping[str, Any]] | None = None,
                   *, title: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``program``'s ``http listen`` channels (``overrides``: a deployment's
    channel options, per channel, over the route files')."""
    overrides = overrides or {}
    names = http_channels(program)
    schemas: dict[str, Any] = {"Problem": PROBLEM}
    paths: dict[str, dict[str, Any]] = {}
    schemes: dict[str, Any] = {}
    servers = []
    for name in names:
        opts = {**program.channels[name].options, **dict(overrides.get(name) or {})}
        listener = HttpListener(name, opts, load_tls=False)
        chan_schemes, security = _security(opts, listener)
        schemes.update(chan_schemes)
        op = _operation(program, name, listener, opts, schemas, security)
        item = paths.setdefault(listener.path, {})
        item[listener.method.lower()] = op
        server = _server(name, listener, opts)
        op["servers"] = [server]          # per operation: two channels may share a path on two addresses
        servers.append(server)
        item["description"] = ("Another method on this path is answered 405 (problem details, with an `Allow` "
                               "header naming the method the channel at that address serves); a path of no "
                               "channel 404. Neither is recorded.")
    files = sorted({Path(r.pos.file).stem for n in names for r in program.routes_for(n) if r.pos is not None})
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title or ("bsp HTTP services: " + ", ".join(files) if files else "bsp HTTP services"),
                 "version": "",
                 "description": (f"Generated by `bsp docs openapi` from the route files. The rules that hold for "
                                 f"every bsp HTTP service (body, limits, retries, answers) are in {DOC}; each "
                                 "operation's description names its routes and deal key.")},
        "servers": servers[:1] if len(servers) == 1 else [],
        "paths": paths,
        "components": {"schemas": dict(sorted(schemas.items()))},
    }
    if not doc["servers"]:
        del doc["servers"]
    else:                                  # one channel: its server is the document's
        for item in paths.values():
            for op in item.values():
                if isinstance(op, dict):
                    op.pop("servers", None)
    if schemes:
        doc["components"]["securitySchemes"] = dict(sorted(schemes.items()))
    doc["info"]["version"] = "contract-" + hashlib.sha256(render(doc).encode()).hexdigest()[:16]
    return doc


def _exact(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))        # 1250.00 as written, never through a float
    raise TypeError(f"{type(value).__name__} in an OpenAPI document")


def render(doc: dict[str, Any]) -> str:
    """The document as committed: 2-space JSON, keys in the order built, exact decimals, a final newline."""
    return orjson.dumps(doc, default=_exact, option=orjson.OPT_INDENT_2).decode() + "\n"
