"""The answers an ``http listen`` channel gives to one operation, as the engine produces them
(engine/channels/http_listen.py ``_answer``, engine/http/server.py).

* A committed deal: ``status_ok`` with the route's reply (204 when the route has no ``reply``).
* A failed or refused deal: the status of its error kind, else of its deal status (``status_map`` over
  ``DEFAULT_STATUS``), with the route's ``on error`` reply, else the channel's ``on error reply``, else
  problem details (``kind``, ``code``, ``deal_status``, ``detail``, ``instance``, ``deal_id``). Only the
  kinds the routes can meet are listed: ``rejected`` and ``internal`` always, ``malformed`` (a body the
  format cannot read) always, ``unrouted`` when every route has a ``when``, ``duplicate`` when a route has a
  deal key, ``refused`` / ``unreachable`` / ``timeout`` / ``lost`` / ``failed`` when a route calls out,
  ``unauthenticated`` with a signature, and when a call's answer is authenticated (a signed ``http call``,
  a reply format with ``mac_algorithm``): one that does not verify fails the deal with that kind too,
  answered with the same status as a caller's bad signature (401 by default).
* The server's own, problem details and no deal: 400 (a malformed HTTP request, or one with both
  Content-Length and Transfer-Encoding), 403 (the access list, when the channel has one), 408
  (``read_timeout``), 413 (``max_body``, with ``limit``), 431 (request line and headers over 16 KiB), 500
  (the handler failed; a route that gave no answer), 503 (the channel not serving yet, with Retry-After; a
  deal the ledger could not store, kind ``unrecorded``, with Retry-After).

* 415 (``check_content_type``, on by default, and every route's format of a media type: JSON or XML): a
  Content-Type the formats do not read, or a form over a JSON body; a rejected deal of kind ``malformed``,
  answered 415 whatever ``status_map`` says, with ``accepted`` (engine/channels/http_media.py).
* Over TLS, plain HTTP sent to the port: 400, problem details naming the https:// address; no deal.
"""
from __future__ import annotations

from typing import Any, Mapping

from dsl import ir
from engine.channels.http_listen import status_kind
from engine.channels.http_media import accepted_types
from engine.http.messages import REASONS
from engine.http_contract.replies import built_schema, file_schema, reply_steps
from engine.runtime.exchange import DEFAULT_CODES, REJECTED_KINDS

PROBLEM: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details (application/problem+json), for a request no route answered "
                   "with a body of its own.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "What is wrong and how to fix it (wording may improve; "
                                                    "program against status, kind and code)."},
        "instance": {"type": "string", "description": "The request's path (on a 408 only once the request "
                                                      "line had arrived)."},
        "kind": {"type": "string", "description": "The deal's error kind (malformed, rejected, refused, "
                                                  "unreachable, timeout, lost, failed, internal, duplicate, "
                                                  "unrouted, unauthenticated, unrecorded)."},
        "code": {"type": ["string", "null"], "description": "The reply code (30, 05, 91, 68, 96, 94 ...)."},
        "deal_status": {"type": "string", "description": "rejected, failed (or committed / unknown for "
                                                         "unrecorded)."},
        "deal_id": {"type": "string", "pattern": "^[0-9a-f]{32}$",
                    "description": "The deal recorded for the request (also the Bsp-Deal-Id header)."},
        "field": {"type": "string", "description": "The request field the refusal is about (`beneficiary.name`, "
                                                   "`items[0]`, `http.query.since`), when the failure knows it: "
                                                   "a value of the wrong shape or left out (code 30). Absent "
                                                   "otherwise."},
        "limit": {"type": "integer", "description": "413: the bytes allowed (max_body)."},
        "accepted": {"type": "array", "items": {"type": "string"},
                     "description": "415: the Content-Types the service reads."},
    },
}

DEAL_ID = {"description": "The deal recorded for this request (32 hex digits): quote it to the bank "
                          "(`bsp deals show ID`). Absent on answers recorded nowhere.",
           "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}
RETRY_AFTER = {"description": "Seconds to wait before sending again.", "schema": {"type": "string"}}

# what each kind means to the caller
KIND_TEXT = {
    "malformed": "the body cannot be read by the route's format (not JSON, not one object, a key twice, not "
                 "UTF-8): `text`/`detail` says where",
    "rejected": "a validate rule refused it (the rule's code), or a field is not of the shape the route reads "
                "(30, naming the field); nothing was done",
    "unrouted": "no route's `when` takes the request",
    "unauthenticated": "the body's signature is missing or does not verify",
    "refused": "a bank system refused it; what was done is undone",
    "unreachable": "a bank system could not be reached",
    "timeout": "a bank system did not answer in time (a step that cannot be undone may stay in doubt)",
    "lost": "the connection to a bank system broke (a step that cannot be undone may stay in doubt)",
    "failed": "processing failed",
    "held": "a name screened against a sanctions list is held for a compliance officer: nothing was done; the "
            "officer releases it (it runs then, once) or rejects it; do not send it again",
    "internal": "an error in the bank (never a request of the wrong shape)",
    "duplicate": "the key repeats a request answered past the key retention, or one that ended without an "
                 "answer to repeat: not run again",
}


def _literal(step: ir.Step, name: str) -> Any:
    """A step option written as a literal (a `screen` step's `code`, `on_hit`), else None."""
    for a in step.options.get("fields", ()):
        if a.path == name:
            return getattr(a.value, "value", None)
    return None


def _deal_status(kind: str) -> str:
    return "rejected" if kind in REJECTED_KINDS else "failed"


def _authenticated_answer(program: ir.Program, call: ir.Step) -> bool:
    """The call's answer is authenticated (a signed http call, a reply format with MACs): one that does not
    verify fails the deal with kind ``unauthenticated`` (engine/steps/call.py)."""
    chan = program.channels.get(call.options.get("channel") or "")
    reply = program.formats.get(call.options.get("reply_format") or "")
    return bool((chan is not None and chan.options.get("signature_header"))
                or (reply is not None and reply.options.get("mac_algorithm")))


def _rule_codes(route: ir.Route) -> list[str]:
    """The codes a request refused by ``route`` can get: its validate rules' and 30 (a field of the wrong
    shape), sorted."""
    codes = {"30"}
    for s in route.steps:
        if s.kind == "validate":
            codes.update(str(rule.code) for rule in s.options.get("rules", ()))
    return sorted(codes)


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _reply_ref(program: ir.Program, step: ir.Step, name: str, schemas: dict[str, Any]) -> dict[str, Any]:
    decl = program.formats.get(step.options.get("format") or "")
    if decl is not None and file_schema(decl) is not None:
        name = decl.name
    if name not in schemas:
        schemas[name] = built_schema(program, step)
    return _ref(name)


def responses(program: ir.Program, channel: str, decl: ir.ChannelDecl, routes: list[ir.Route], listener: Any,
              opts: Mapping[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    media = listener.content_type or "application/json"
    # status -> {"causes": [...], "bodies": {media: [schema, ...]}, "deal": bool, "retry": bool}
    out: dict[int, dict[str, Any]] = {}

    def add(status: int, cause: str, body: dict[str, Any] | None, *, deal: bool, problem_media: bool = False,
            retry: bool = False) -> None:
        entry = out.setdefault(status, {"causes": [], "bodies": {}, "deal": False, "retry": False})
        if cause not in entry["causes"]:
            entry["causes"].append(cause)
        if body is not None:
            m = "application/problem+json" if problem_media else media
            if body not in entry["bodies"].setdefault(m, []):
                entry["bodies"][m].append(body)
        entry["deal"] = entry["deal"] or deal
        entry["retry"] = entry["retry"] or retry

    channel_reply = (_reply_ref(program, decl.error_reply, f"{channel}.error_reply", schemas)
                     if decl.error_reply is not None else None)

    def failure(kind: str, body: dict[str, Any] | None, whose: str, codes: list[str] | None = None,
                meaning: str | None = None, deal_status: str | None = None) -> None:
        deal_status = deal_status or _deal_status(kind)
        status = listener.status_map.get(status_kind(kind, deal_status), listener.status_map.get(deal_status, 500))
        code = DEFAULT_CODES.get(kind)
        said = (f" (code {', '.join(codes)})" if codes else
                f" (code {code} unless the route's answer sets its own)" if code else "")
        text = f"kind `{kind}`{said}: {meaning or KIND_TEXT.get(kind, kind)}{whose}"
        if body is None:
            add(status, text, _ref("Problem"), deal=True, problem_media=True)
        else:
            add(status, text, body, deal=True)

    for r in routes:
        replies = reply_steps(r.steps)
        for step in replies:
            add(listener.status_ok, f"route `{r.name}`: done (the deal committed)",
                _reply_ref(program, step, f"{r.name}.reply", schemas), deal=True)
        if not replies:
            add(204 if listener.status_ok == 200 else listener.status_ok,
                f"route `{r.name}`: done, no body (the route has no reply)", None, deal=True)
        errors = reply_steps(r.on_error)
        body = (_reply_ref(program, errors[0], f"{r.name}.error_reply", schemas) if errors else channel_reply)
        whose = f" (route `{r.name}`)" if len(routes) > 1 else ""
        kinds = ["rejected", "internal"]
        if any(s.kind == "call" for s in r.steps):
            kinds += ["refused", "unreachable", "timeout", "lost", "failed"]
        if any(_authenticated_answer(program, s) for s in r.steps if s.kind == "call"):
            # the counterpart's answer did not authenticate: kind unauthenticated, deal failed (in doubt), which
            # the channel answers as `failed` (502), not as a caller's own bad signature (401)
            failure("unauthenticated", body, whose, meaning="a bank system's answer (its signature or MAC) did not "
                    "authenticate: what it did is in doubt, do not send again", deal_status="failed")
        deal = next((s for s in r.steps if s.kind == "deal"), None)
        if deal is not None and any(a.path == "key" for a in deal.options.get("fields", ())):
            kinds.append("duplicate")
        for kind in kinds:
            failure(kind, body, whose, _rule_codes(r) if kind == "rejected" else None)
        # a `screen` step that holds its hits for a compliance officer (docs/screening.md#holding-a-hit)
        holds = sorted({str(_literal(s, "code") or "62") for s in r.steps
                        if s.kind == "screen" and _literal(s, "on_hit") == "hold"})
        if holds:
            failure("held", body, whose, holds)
    failure("malformed", channel_reply, "")
    if routes and all(r.when is not None for r in routes):
        failure("unrouted", channel_reply, "")
    if listener.signature is not None:
        failure("unauthenticated", channel_reply, "")
    accepted = accepted_types(getattr(program.formats.get(r.format or ""), "kind", None) for r in routes) \
        if listener.check_content_type and routes else None
    if accepted is not None:
        add(415, f"kind `malformed` (code 30): the Content-Type is not one the service reads "
                 f"({', '.join(accepted)}; `accepted` lists them), or a form's body is JSON (curl -d's default "
                 f"type), or it declares a charset the body is not read in (JSON and forms: UTF-8 only; XML: "
                 f"the document's own encoding): a rejected deal; a request without Content-Type is read as "
                 f"the format's",
            channel_reply or _ref("Problem"), deal=True, problem_media=channel_reply is None)
    problem = _ref("Problem")
    add(400, "a malformed HTTP request, or one with both Content-Length and Transfer-Encoding (the connection "
             "is closed; no deal)" + ("; plain HTTP sent to this HTTPS port (problem details naming the https:// "
             "address; the connection is closed; no deal)" if opts.get("cert") else ""),
        problem, deal=False, problem_media=True)
    if not listener.access.open:
        add(403, "the client (its certificate's names, its address) is outside the channel's access list "
                 "(no deal)", problem, deal=False, problem_media=True)
    add(408, f"the request did not arrive within {listener.limits.read_timeout:g}s of its first byte "
             "(read_timeout; no deal)", problem, deal=False, problem_media=True)
    add(413, f"the body is over {listener.limits.max_body} bytes (max_body; refused on its Content-Length "
             "before it is read; `limit` says the bytes allowed; no deal)", problem, deal=False, problem_media=True)
    add(431, f"the request line and headers are over {listener.limits.max_header} bytes (no deal)", problem,
        deal=False, problem_media=True)
    add(500, "the server failed while answering, or the route gave no answer (problem details)", problem,
        deal=False, problem_media=True)
    add(503, "the channel is not serving yet (no deal), or the deal could not be written to the ledger (kind "
             "`unrecorded`, `deal_status`: nothing is acknowledged; treat it as a time-out): send again after "
             "Retry-After", problem, deal=False, problem_media=True, retry=True)
    result: dict[str, Any] = {}
    for status in sorted(out):
        entry = out[status]
        phrase = REASONS.get(status, "")
        resp: dict[str, Any] = {"description": f"{phrase}: " + "; ".join(entry["causes"]) + "."}
        headers: dict[str, Any] = {}
        if entry["deal"]:
            headers["Bsp-Deal-Id"] = DEAL_ID
        if entry["retry"]:
            headers["Retry-After"] = RETRY_AFTER
        if headers:
            resp["headers"] = headers
        if entry["bodies"]:
            resp["content"] = {m: {"schema": bodies[0] if len(bodies) == 1 else {"oneOf": bodies}}
                               for m, bodies in sorted(entry["bodies"].items())}
        result[str(status)] = resp
    return result
