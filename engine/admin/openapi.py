"""The admin API as an OpenAPI 3.1 document, generated from ``endpoints.ENDPOINTS``."""
from __future__ import annotations

import re
from typing import Any

from engine.admin.endpoints import ENDPOINTS, MAX_LIMIT, Endpoint, Param
from engine.deal_resolve import HOLD_OUTCOMES, MAX_BY, MAX_NOTE, OUTCOMES

_PROBLEM = {
    "type": "object",
    "description": "RFC 7807 problem details.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string", "description": "What went wrong and how to fix it."},
        "instance": {"type": "string"},
        "parameter": {"type": "string", "description": "The query parameter at fault (400)."},
        "reason": {"type": "string", "enum": ["missing", "malformed", "wrong", "forbidden"],
                   "description": "Why (401; 403: forbidden)."},
        "role": {"type": "string", "description": "The role the endpoint needs, which the token lacks (403)."},
        "diagnostics": {"type": "array", "items": {"type": "string"}, "description": "Compile errors (422)."},
        "folder": {"type": "string", "description": "The folder that lacks room (507)."},
    },
}

# a listing's page: the cursor of the next one (engine/admin/cursor.py)
NEXT: dict[str, Any] = {"type": ["string", "null"],
                        "description": "More rows match: give this as `cursor` (same filters) for the next page. "
                                       "null: this page is the last."}

SCHEMAS: dict[str, Any] = {
    "Problem": _PROBLEM,
    "Health": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
    "Ready": {"type": "object", "required": ["ready"], "properties": {"ready": {"type": "boolean"},
                                                                      "reason": {"type": "string"}}},
    "Status": {"type": "object", "description": "Engine status as the running engine reports it.",
               "additionalProperties": True},
    "Reload": {
        "type": "object", "required": ["ok", "dry_run"],
        "properties": {
            "ok": {"type": "boolean"}, "dry_run": {"type": "boolean"},
            "version": {"type": ["string", "null"]}, "previous_version": {"type": ["string", "null"]},
            "plan": {"type": "object", "description": "added / changed / kept / removed, per kind.",
                     "additionalProperties": True},
            "diagnostics": {"type": "array", "items": {"type": "string"}},
            "warnings": {"type": "array", "items": {"type": "string"},
                         "description": "What the reload did not apply (ledger / admin settings changed in "
                                        "the deployment file take effect at the next restart)."},
        },
    },
    "Deals": {"type": "object", "required": ["count", "deals"],
              "properties": {"count": {"type": "integer"},
                             "deals": {"type": "array", "items": {"type": "object", "additionalProperties": True,
                                                                  "description": "A ledger row; amounts are exact "
                                                                  "decimal strings."}},
                             "next": NEXT}},
    "DeadLetters": {"type": "object", "required": ["count", "dead_letters"],
                    "properties": {"count": {"type": "integer"},
                                   "dead_letters": {"type": "array",
                                                    "items": {"type": "object", "additionalProperties": True}},
                                   "next": NEXT}},
    "DeadLetter": {"type": "object", "required": ["id", "status", "raw_base64"], "additionalProperties": True,
                   "description": "The dead_letters row; `raw_base64` is the stored message in base64 (encrypted "
                                  "with the field keyring when `raw_key` is set), null once purged, or withheld from a token without the role `raw` (then `raw_withheld` says so), or, "
                                  "stored in clear, withheld under four eyes (dead.reveal: `raw_four_eyes` true, "
                                  "`raw_withheld` says how to request it). `purge`: a purged letter's purge as its "
                                  "chained status event recorded it (when and by whom), null when not purged.",
                   "properties": {"purge": {"type": ["object", "null"], "additionalProperties": True,
                                            "description": "When and by whom the letter was purged: at, by (absent "
                                                           "for a purge before 2026-11-28), via, host, os_user, "
                                                           "stated_by."}}},
    "Deal": {"type": "object", "required": ["deal_id", "status", "steps", "events", "calls"],
             "additionalProperties": True,
             "description": "The deals row (amounts as exact decimal strings) plus steps, events, calls, "
                            "config (version, loaded_at, files) and dead_letters: the deal's dead letter, then "
                            "those its retries refused again left the message in, oldest first ([] for none).",
             "properties": {"dead_letters": {"type": "array", "items": {"$ref": "#/components/schemas/DealLetter"}}}},
    "DealLetter": {"type": "object", "required": ["id", "status"], "additionalProperties": True,
                   "description": "One of a deal's dead letters (no message: GET /dead-letters/{id}): id, status "
                                  "(new, retrying, retried, purged; null: named by the previous letter's outcome but "
                                  "moved by bsp ledger archive), reason, error_kind, error_code, at, route, channel, "
                                  "retried_at, retry_outcome, chain_seq, message_kept (false once purged: the row "
                                  "stays as a tombstone) and retries: its chained status changes, oldest first, each "
                                  "{at, status, retried_at, outcome} and, for a purge, by, via, host, os_user ([] for "
                                  "a letter never retried)."},
    "Resolve": {"type": "object", "required": ["outcome", "note"], "additionalProperties": False,
                "properties": {"outcome": {"type": "string", "enum": [*OUTCOMES, *HOLD_OUTCOMES],
                                           "description": "; ".join(f"{k}: {v}" for k, v in
                                                                    {**OUTCOMES, **HOLD_OUTCOMES}.items())},
                               "note": {"type": "string", "minLength": 1, "maxLength": MAX_NOTE,
                                        "description": "How it was settled, with whom, references."},
                               "by": {"type": "string", "maxLength": MAX_BY,
                                      "description": "Who says they settled it. Recorded as `stated_by` "
                                                     "when it is not the token's name: `by` is always the "
                                                     "name of the token the request came with."}}},
    "Resolution": {"type": "object", "required": ["deal_id", "at", "outcome", "note", "by", "via"],
                   "additionalProperties": True,
                   "description": "The `resolved` event's detail: deal_id, at, outcome, note, by (the token's "
                                  "name), token, stated_by (the body's `by`, when another name), via, peer, "
                                  "client_cert (mutual TLS), warnings; reversals: what became of the deal's "
                                  "queued ISO 8583 reversals, each {call, channel, attempts, state}, state "
                                  "`cancelled` (never sent again), `in flight` (an attempt at the host: "
                                  "dropped unless it is acknowledged) or `acknowledged` (the host reversed "
                                  "it before); released: what an outcome not-applied or undone gave back to "
                                  "the `limit` totals, each {total, key, currency, day, amount, outcome}; "
                                  "counted: what an outcome applied or written-off counted in them again "
                                  "(a deal that failed, gave its amount back, then had its reversal flagged), "
                                  "alike."},
    "Reveal": {"type": "object", "required": ["fields"], "additionalProperties": False,
               "properties": {"fields": {"type": "array", "maxItems": 1000,
                                         "items": {"type": "string", "minLength": 1, "maxLength": 300},
                                         "description": "The paths of the fields about to be shown in clear "
                                                        "(`request.card`; `message` for a dead letter's "
                                                        "bytes), never their values."},
                              "by": {"type": "string", "maxLength": MAX_BY,
                                     "description": "Who says they reveal. Recorded as `stated_by` when it is "
                                                    "not the token's name."},
                              "four_eyes": {"type": "boolean",
                                            "description": "Only a four-eyes request (deal.reveal under dual "
                                                           "control: 202); else 409 not_under_four_eyes and "
                                                           "nothing recorded (a client without a keyring)."}}},
    "Revealed": {"type": "object", "required": ["id", "at", "what", "fields", "by", "via"],
                 "additionalProperties": True,
                 "description": "The `revealed` event's detail: id, at, what (deal or dead letter), fields, by "
                                "(the token's name), token, stated_by, via, peer, client_cert (mutual TLS)."},
    "Decision": {"type": "object", "required": ["reason"], "additionalProperties": False,
                 "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 2000,
                                           "description": "Why it is approved or rejected (what was checked)."}}},
    "Approval": {"type": "object", "required": ["id", "action", "target", "by", "state"],
                 "description": "A four-eyes request (engine/four_eyes.py): id, at, action (dead.retry, "
                                "deal.release, deal.resolve, dead.purge, deal.reveal, dead.reveal, config.reload, "
                                "ledger.archive), target (the deal's or dead letter's id; a reload's or an archive's "
                                "own id), params (outcome, note, again; a reload's version; an archive's before and "
                                "out), by (the requester: the token's name, or the OS user on the "
                                "ledger file), via, expires_at, state (pending, expired, approved, rejected, void, "
                                "running, interrupted, lapsed: a reveal not fetched in time) and decision (at, "
                                "event, by, reason or why; a reveal's fetch_until); `run`: what carrying it out did "
                                "(the retry's, resolution's or reload's own answer; `approval done`; a held deal's "
                                "release: deal, its run's, and reply, where the reply went). Never a "
                                "revealed value."},
    "RevealFetched": {"type": "object", "required": ["request", "fields"], "additionalProperties": True,
               "description": "An approved reveal fetched by its requester: request (the Approval), deal (a "
                              "deal.reveal: as GET /deals/{id}, its sealed fields in clear) or dead_letter (a "
                              "dead.reveal: as GET /dead-letters/{id}, `raw_base64` the message in clear, "
                              "`deal_request` its deal's request with the sealed fields in clear), fields (their "
                              "paths), warnings."},
    "Approvals": {"type": "object", "required": ["count", "approvals"],
                  "properties": {"count": {"type": "integer"},
                                 "approvals": {"type": "array", "items": {"$ref": "#/components/schemas/Approval"}}}},
    "Retry": {"type": "object", "required": ["id", "ok", "outcome"],
              "properties": {"id": {"type": "string"},
                             "ok": {"type": "boolean", "description": "The new deal was committed."},
                             "outcome": {"type": "string", "description": "committed, rejected, failed, "
                                         "or why it could not run (failed: ...)."},
                             "at": {"type": ["string", "null"], "format": "date-time"}}},
}


def _param_schema(p: Param) -> dict[str, Any]:
    if p.type == "date-time":
        s: dict[str, Any] = {"type": "string", "format": "date-time"}
    elif p.type == "integer":
        s = {"type": "integer"}
        if p.name == "limit":
            s.update(minimum=1, maximum=MAX_LIMIT)
    else:
        s = {"type": p.type}
    if p.enum:
        s["enum"] = list(p.enum)
    if p.default is not None:
        s["default"] = p.default
    return s


def _content(target: str) -> dict[str, Any]:
    if "/" in target:
        schema: dict[str, Any] = {}
        if target.startswith("text/"):
            schema = {"type": "string"}
        elif target == "application/octet-stream":
            schema = {"type": "string", "contentMediaType": target}
        return {target.split(";")[0]: {"schema": schema}}
    media = "application/problem+json" if target == "Problem" else "application/json"
    return {media: {"schema": {"$ref": f"#/components/schemas/{target}"}}}


def _operation(e: Endpoint) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": e.name, "summary": e.summary}
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in re.findall(r"\{(\w+)\}", e.path)]
    parameters += [
        {"name": p.name, "in": "query", "required": False, "description": p.doc, "schema": _param_schema(p),
         **({"example": p.example} if p.example else {})}
        for p in e.params
    ]
    if parameters:
        op["parameters"] = parameters
    if e.body is not None:
        op["requestBody"] = {"required": True, "content": _content(e.body)}
    responses = {str(status): {"description": desc, "content": _content(target)} for status, desc, target in e.responses}
    if e.params:
        responses.setdefault("400", {"description": "A bad query parameter.", "content": _content("Problem")})
    if e.auth:
        responses["401"] = {"description": "Missing, malformed or wrong bearer token.", "content": _content("Problem")}
        responses["403"] = {"description": f"The token lacks the role `{e.role}` (`role` names it).",
                            "content": _content("Problem")}
        op["x-bsp-role"] = e.role
        op["description"] = (op.get("description", "") + f" Needs a token with the role `{e.role}`.").strip()
    else:
        op["security"] = []
    op["responses"] = responses
    return op


def build_openapi(version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for e in ENDPOINTS:
        paths.setdefault(e.path, {})[e.method.lower()] = _operation(e)
    return {
        "openapi": "3.1.0",
        "info": {"title": "bsp admin API", "version": version,
                 "description": "Operate a running bsp engine: health, readiness, status, reload, deals, "
                                "dead letters, ledger snapshots, metrics. See docs/admin-api.md."},
        "servers": [{"url": "http://127.0.0.1:7080", "description": "default: loopback only"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "A token of the engine (its admin token file, "
                                                          "$BSP_ADMIN_TOKEN, or one of admin.tokens) with the role "
                                                          "the operation needs (x-bsp-role)."}},
            "schemas": SCHEMAS,
        },
    }
