"""The admin API's endpoints as one table: the router and the OpenAPI document are both built from it.

Query parameters are declared here too, and parsed (``parse_query``) with
errors that name the parameter, the value and the expected form.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from engine.deal import DEAD_STATUSES, STATUSES
from engine.defaults import DEAD_KINDS
from engine.http.messages import HTTPError, Request

MAX_LIMIT = 1000


@dataclass(frozen=True)
class Param:
    name: str
    type: str                  # "string", "integer", "boolean", "date-time"
    doc: str
    enum: tuple[str, ...] | None = None
    default: Any = None
    example: str | None = None


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    name: str                  # handler method of AdminApp
    summary: str
    auth: bool = True
    params: tuple[Param, ...] = ()
    responses: tuple[tuple[int, str, str], ...] = ()     # (status, description, schema name or media type)
    body: str | None = None    # the JSON request body's schema name (engine.admin.openapi.SCHEMAS), if any
    role: str | None = None    # the role a token needs (engine/admin/roles.py); None with auth=False


LIMIT = Param("limit", "integer", f"Most rows returned (1..{MAX_LIMIT}); a page with more after it has a `next`.",
              default=50, example="20")
CURSOR = Param("cursor", "string", "Go on with a listing: the `next` of its previous page (the rows after that "
               "page's last, newest first, by time then id); give the same filters again. Rows added since "
               "are newer than the first page: they neither shift nor repeat a page.",
               example="2026-11-26T18:40:00.123456Z~01a2f3")
SINCE = Param("since", "date-time", "Only rows received at or after this time (ISO 8601; no zone = UTC).",
              example="2026-11-02T09:00:00Z")

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/health", "health", "Liveness: the process answers. No authentication.", auth=False,
             responses=((200, "The process is alive.", "Health"),)),
    Endpoint("GET", "/ready", "ready", "Readiness: the engine accepts traffic. An outbound counterpart that "
             "is down does not make it not ready (it is `degraded` in /status), unless strict.",
             params=(Param("strict", "boolean", "Also not ready while an outbound channel's counterpart is down "
                           "(failed connects, or calls without an answer since the last reply).", default=False,
                           example="1"),),
             responses=((200, "Ready.", "Ready"), (503, "Not ready; `detail` says why.", "Problem"))),
    Endpoint("GET", "/status", "status", "Engine status: versions, channels, routes, ledger.",
             responses=((200, "Status document from the engine.", "Status"),)),
    Endpoint("POST", "/reload", "reload", "Recompile the route files and switch to them when they compile.",
             params=(Param("dry_run", "boolean", "Compile and plan only; change nothing.", default=False,
                           example="1"),),
             responses=((200, "Compiled (and switched unless dry_run); the plan says what changes.", "Reload"),
                        (202, "Not switched: four eyes (`operators.four_eyes` lists config.reload): the files "
                              "compiled (a dry run) and the request, with their version, waits for a second "
                              "operator (POST /approvals/{id}/approve), who reloads that version only.", "Approval"),
                        (409, "Another reload is running.", "Problem"),
                        (422, "The new configuration has errors, or a channel of it could not start (its "
                              "port is taken); the running one is kept.", "Problem"),
                        (503, "The engine is draining; nothing reloaded.", "Problem"))),
    Endpoint("GET", "/deals", "deals", "Deals in the ledger, newest first.",
             params=(Param("type", "string", "Deal type, e.g. BILL_PAYMENT."),
                     Param("status", "string", "Deal status.", enum=STATUSES),
                     Param("reference", "string", "Business reference (e.g. trace number)."),
                     Param("currency", "string", "Only deals in this currency, in any case (cny finds CNY).",
                           example="CNY"),
                     Param("party", "string", "Only deals whose `party` is exactly this text, as the ledger's "
                           "`party` column holds it (the route's `deal` step's party, as each row shows it); "
                           "never compared with the request's fields: a party the route stored masked is "
                           "found by its mask.", example="EL01"),
                     Param("flagged", "boolean", "Only deals flagged for an operator (event `flagged`: a "
                           "participant in doubt or whose compensation failed, a deal left in doubt by a crash; or `reversal "
                           "flagged`: an ISO 8583 reversal stored and forwarded not acknowledged after its attempts) "
                           "and not resolved since (`POST /deals/{id}/resolve`). Each row then has `resolution` "
                           "(null while open).", default=False, example="1"),
                     Param("resolved", "boolean", "With `flagged`: the flagged deals an operator resolved too. "
                           "With `held`: the held deals released or rejected too.",
                           default=False, example="1"),
                     Param("statement_breaks", "boolean", "Only deals with an event `statement break`: "
                           "statements a `continuity` step found not following on from their account's last one "
                           "(posted all the same).", default=False, example="1"),
                     Param("held", "boolean", "Only deals a `screen` step held for a compliance officer (event "
                           "`held`) and not decided yet (release or reject: `POST /deals/{id}/resolve` with outcome "
                           "`release` or `reject`). Each row then has `hits` (step, list, entry, on, score, "
                           "threshold), `state` and `decision`; the other filters are not applied.",
                           default=False, example="1"),
                     SINCE,
                     Param("until", "date-time", "Only deals received before this time (ISO 8601).",
                           example="2026-11-03T00:00:00Z"),
                     LIMIT, CURSOR),
             responses=((200, "Matching deals.", "Deals"),)),
    Endpoint("GET", "/deals/{id}", "deal", "One deal's whole story: request, steps, calls, reply, state changes, "
             "configuration version. The id may be its first 8 or more hex digits.",
             responses=((200, "The deal.", "Deal"), (400, "The id is too short or matches several deals.", "Problem"),
                        (404, "No deal with this id.", "Problem"))),
    Endpoint("POST", "/deals/{id}/resolve", "resolve_deal",
             "Record that a deal flagged for an operator was settled with its counterpart: the event `resolved` "
             "(outcome, note, by, and the client's address and certificate) appended to the deal in the audit "
             "chain. The id may be its first 8 or more hex digits.", body="Resolve",
             responses=((200, "Recorded; the deal's queued ISO 8583 reversals are cancelled: `reversals` says what "
                                   "became of each, `warnings` names one the host may have taken meanwhile; `released` what an "
                                   "outcome not-applied or undone gave back to the `limit` totals, `counted` what "
                                   "applied or written-off counted in them again.",
                         "Resolution"),
                        (202, "Not done: four eyes (`operators.four_eyes` lists deal.resolve, or deal.release for "
                              "outcome release): the request is recorded and waits for a second operator "
                              "(POST /approvals/{id}/approve).", "Approval"),
                        (400, "A bad body (outcome, note, by), or an id too short or matching several deals.",
                         "Problem"),
                        (404, "No deal with this id (one moved out by `bsp ledger archive`: `archived` names its "
                              "archive file; it has nothing to resolve).", "Problem"),
                        (409, "The deal is not flagged, already resolved, or already settled by the host's "
                              "acknowledgement of its flagged reversal (`why`: not_flagged, already_resolved, "
                              "already_settled); under four eyes, a request of it already waits "
                              "(already_requested) or it cannot be acted on now (stale).", "Problem"),
                        (503, "The deal is not yet loaded into DuckDB from the journal; ask again.", "Problem"))),
    Endpoint("POST", "/deals/{id}/reveals", "reveal_deal",
             "Record in the audit chain that the client is about to show fields of this deal in clear (`bsp deals "
             "show --live --reveal` decrypts them with its own keyring): the event `revealed` on the deal (fields, "
             "by: the token's name, the client's address and certificate), never the values (PCI DSS 10.2). The "
             "id may be its first 8 or more hex digits.", body="Reveal",
             responses=((200, "Recorded.", "Revealed"),
                        (202, "Not revealed: four eyes (`operators.four_eyes` lists deal.reveal): the request is "
                              "recorded and waits for a second operator (POST /approvals/{id}/approve); then the "
                              "requester fetches the fields, decrypted by the engine, once (POST "
                              "/approvals/{id}/reveal).", "Approval"),
                        (400, "A bad body (fields, by), or an id too short or matching several deals.", "Problem"),
                        (404, "No deal with this id.", "Problem"),
                        (503, "The ledger could not record it: show nothing.", "Problem"))),
    Endpoint("GET", "/dead-letters", "dead_letters", "Exchanges rejected or failed (unrouted and malformed ones too), with their message.",
             params=(Param("channel", "string", "Channel name."), Param("route", "string", "Route name."),
                     Param("status", "string", "Dead letter status.", enum=DEAD_STATUSES),
                     Param("kind", "string", "The dead letter's error kind (`error_kind`: unreachable, timeout, "
                           "rejected, ...; the kind column of `bsp dead list`).", enum=DEAD_KINDS,
                           example="unreachable"),
                     Param("code", "string", "The dead letter's error code, exactly (`error_code`: the code its deal "
                           "records, `response_code`; the code column of `bsp dead list`).", example="13"),
                     Param("reason", "string", "The reason contains this text (any case; `flagged for an operator` "
                           "finds the letters of flagged deals, also of one whose ISO 8583 reversal was flagged after "
                           "it was written).", example="no route"),
                     SINCE,
                     Param("until", "date-time", "Only dead letters received before this time (ISO 8601).",
                           example="2026-11-03T00:00:00Z"),
                     Param("open", "boolean", "Only what waits for an operator (status `new`, not yet retried "
                           "into a deal) or is held by a retry (`retrying`): what `bsp dead list` shows without "
                           "`--status` or `--all`.", default=False, example="1"),
                     LIMIT, CURSOR),
             responses=((200, "Matching dead letters.", "DeadLetters"),)),
    Endpoint("GET", "/dead-letters/{id}", "dead_letter", "One dead letter with its stored message (`raw_base64`, "
             "as stored: encrypted when `raw_key` is set; null once purged; stored in clear, withheld under four "
             "eyes for dead.reveal: `raw_four_eyes`), and `history`: the letters of its "
             "message, oldest first, when a retry refused again left it in another (`[{id, status}]`, empty "
             "otherwise), and `purge`: a purged letter's purge, when and by whom (`{at, by, via, host, os_user, stated_by}` "
             "as its status event recorded; null when not purged). The whole 32-digit id.",
             responses=((200, "The dead letter.", "DeadLetter"), (404, "No dead letter with this id.", "Problem"))),
    Endpoint("POST", "/dead-letters/{id}/reveals", "reveal_dead_letter",
             "Record in the audit chain that the client is about to show this dead letter's message (and its deal's "
             "sealed fields) in clear (`bsp dead show --live --reveal`): the event `revealed` on the letter's id "
             "(fields, by: the token's name, the client's address and certificate), never the bytes (PCI DSS "
             "10.2). The whole 32-digit id.", body="Reveal",
             responses=((200, "Recorded.", "Revealed"),
                        (202, "Not revealed: four eyes (`operators.four_eyes` lists dead.reveal): the request is "
                              "recorded and waits for a second operator (POST /approvals/{id}/approve); then the "
                              "requester (a token with the role raw) fetches the message, decrypted by the engine, "
                              "once (POST /approvals/{id}/reveal).", "Approval"),
                        (400, "A bad body (fields, by).", "Problem"),
                        (403, "Under four eyes: a token without the role raw (the message would never be its to "
                              "see); nothing requested.", "Problem"),
                        (404, "No dead letter with this id.", "Problem"),
                        (503, "The ledger could not record it: show nothing.", "Problem"))),
    Endpoint("POST", "/dead-letters/{id}/retry", "retry_dead_letter",
             "Re-inject a dead letter into its channel through the running configuration; the new deal's "
             "status is the outcome, recorded on the dead letter. The letter is claimed in the ledger first "
             "(status `retrying`), so two retries of it at once run it once; one already `retried`, or whose "
             "retry is running, is refused (409) unless `again=true`: on a route without a deal key that runs "
             "the exchange a second time.",
             params=(Param("again", "boolean", "Retry a letter already retried (or whose retry never "
                           "recorded its outcome) anyway."),),
             responses=((200, "Retried (`ok` says whether the new deal was committed).", "Retry"),
                        (202, "Not retried: four eyes (`operators.four_eyes` lists dead.retry): the request is "
                              "recorded and waits for a second operator (POST /approvals/{id}/approve).", "Approval"),
                        (409, "Already retried, or a retry of it is running: the detail names its status, when, "
                              "and the deal that retry produced (`why`: already_retried); under four eyes, a "
                              "request of it already waits (already_requested) or it was retried (stale).",
                         "Problem"),
                        (404, "No dead letter with this id (one moved out by `bsp ledger archive`: `archived` "
                              "names its archive file, read-only: it cannot be retried from there).", "Problem"))),
    Endpoint("GET", "/approvals", "approvals", "Four-eyes requests (deployment file `operators.four_eyes`): "
             "the operator actions recorded as asked and waiting for a second operator (pending, or interrupted: "
             "approved, then cut by a crash), newest first.",
             params=(Param("all", "boolean", "Every request: approved, rejected, expired and void ones too.",
                           default=False, example="1"), LIMIT),
             responses=((200, "The requests.", "Approvals"),)),
    Endpoint("POST", "/approvals/{id}/approve", "approve_request",
             "Approve a pending four-eyes request and carry its action out (the retry, release, resolution or "
             "reload), once; a reveal is then fetched by its requester (POST /approvals/{id}/reveal). An "
             "interrupted request (its approved action cut by a crash) may be approved again: its action's own "
             "record is read first, and it runs only if that shows it did not take effect. The token must not "
             "be the requester's. The id may be its first 8 or more hex digits.",
             body="Decision",
             responses=((200, "Approved; `run` says what carrying it out did.", "Approval"),
                        (400, "A bad body (reason), or an id too short or matching several requests.", "Problem"),
                        (404, "No such request.", "Problem"),
                        (409, "Not approved: `why` own_request (the requester's own token), expired, decided "
                              "(approved, rejected or void already: nothing runs twice), running (being carried out "
                              "now), stale (its dead letter or deal changed meanwhile, or an interrupted action "
                              "took effect: the request is closed void).", "Problem"))),
    Endpoint("POST", "/approvals/{id}/reject", "reject_request",
             "Reject a pending (or interrupted) four-eyes request (its requester may withdraw it so): nothing "
             "is done.",
             body="Decision",
             responses=((200, "Rejected.", "Approval"),
                        (400, "A bad body (reason), or a bad id.", "Problem"), (404, "No such request.", "Problem"),
                        (409, "Not pending: expired or decided already (`why`).", "Problem"))),
    Endpoint("POST", "/approvals/{id}/reveal", "reveal_request",
             "Fetch an approved `deal.reveal` (`dead.reveal`) request: the deal with its sealed fields (the dead "
             "letter with its message) decrypted by the engine's keyring, for the requester's token alone, once, until the approval's `fetch_until` "
             "(`four_eyes_expire` after it). Recorded first (`approval done`, `revealed` with both operators); the "
             "values are in this answer only, never in the ledger, the log or GET /approvals.",
             responses=((200, "The request, the deal (`deal`, its fields in clear) or the dead letter "
                              "(`dead_letter`, its message in clear), the field paths revealed (`fields`) and "
                              "`warnings` (a field no key of the ring opens).", "RevealFetched"),
                        (403, "Not a named admin token; a dead.reveal to a token without the role raw (`why` "
                              "not_raw).", "Problem"),
                        (404, "No such request.", "Problem"),
                        (409, "Not revealed: `why` not_reveal (another action), not_requester (another token than "
                              "the requester's), not_approved (pending, rejected, void, expired), fetched (once "
                              "already), lapsed (not fetched in time), no_keyring (the engine has none), stale "
                              "(the deal is gone).", "Problem"),
                        (503, "The ledger could not record it: nothing revealed.", "Problem"))),
    Endpoint("POST", "/ledger/snapshot", "ledger_snapshot",
             "A transactionally consistent copy of the ledger (a DuckDB file), every deal acknowledged before "
             "the request in it, encrypted fields still encrypted; streamed, then removed from the engine's "
             "disk. For `bsp report`, `bsp reconcile` and `bsp audit verify` while the engine runs.",
             responses=((200, "The copy (a DuckDB file). Headers: Content-Length, X-Bsp-Snapshot-Taken-At (ISO 8601 "
                              "UTC), X-Bsp-Snapshot-Deals, X-Bsp-Snapshot-Chain-Seq.", "application/octet-stream"),
                        (409, "Another snapshot is being taken or sent.", "Problem"),
                        (503, "Deals acknowledged are not yet loaded into DuckDB (the journal's loader is "
                              "behind or cannot write); or the copy failed.", "Problem"),
                        (507, "The ledger's folder lacks room for the copy; `folder` names it.", "Problem"))),
    Endpoint("GET", "/metrics", "prometheus_metrics", "Prometheus metrics (text exposition format).",
             responses=((200, "Metrics.", "text/plain"),)),
    Endpoint("GET", "/openapi.json", "openapi", "This API described as OpenAPI 3.1.",
             responses=((200, "The OpenAPI document.", "application/json"),)),
)


# the role each endpoint needs (engine/admin/roles.py; docs/admin-api.md#roles), by handler name
ENDPOINT_ROLES: dict[str, str] = {
    "ready": "monitor", "status": "monitor", "prometheus_metrics": "monitor", "openapi": "monitor",
    "deals": "read", "deal": "read", "dead_letters": "read", "dead_letter": "read",
    "reveal_deal": "read", "reveal_dead_letter": "read",
    "reload": "operate", "resolve_deal": "operate", "retry_dead_letter": "operate",
    "approvals": "read", "approve_request": "operate", "reject_request": "operate", "reveal_request": "read",
    "ledger_snapshot": "snapshot",
}
ENDPOINTS = tuple(replace(e, role=ENDPOINT_ROLES[e.name]) if e.auth else e for e in ENDPOINTS)


def _bad(param: Param, value: str, expected: str) -> HTTPError:
    return HTTPError(400, f"query parameter {param.name!r}: expected {expected}, got {value!r}",
                     extra={"parameter": param.name})


def _convert(param: Param, value: str) -> Any:
    if param.type == "integer":
        try:
            n = int(value)
        except ValueError:
            raise _bad(param, value, "a whole number, e.g. " + (param.example or "10")) from None
        if param.name == "limit" and not 1 <= n <= MAX_LIMIT:
            raise _bad(param, value, f"a number from 1 to {MAX_LIMIT}")
        return n
    if param.type == "boolean":
        low = value.strip().lower()
        if low in ("1", "true", "yes", ""):
            return True
        if low in ("0", "false", "no"):
            return False
        raise _bad(param, value, "1/true or 0/false")
    if param.type == "date-time":
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _bad(param, value, f"an ISO 8601 time such as {param.example}") from None
        return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    if param.enum is not None and value not in param.enum:
        raise _bad(param, value, f"one of {', '.join(param.enum)}")
    return value


def parse_query(endpoint: Endpoint, request: Request) -> dict[str, Any]:
    """The endpoint's declared parameters, converted; unknown or repeated ones are a 400."""
    known = {p.name: p for p in endpoint.params}
    out: dict[str, Any] = {p.name: p.default for p in endpoint.params}
    for name, values in request.query.items():
        param = known.get(name)
        if param is None:
            allowed = ", ".join(known) or "none"
            raise HTTPError(400, f"unknown query parameter {name!r} for {endpoint.method} {endpoint.path}; "
                                 f"allowed: {allowed}", extra={"parameter": name})
        if len(values) > 1:
            raise HTTPError(400, f"query parameter {name!r} given {len(values)} times; give it once",
                            extra={"parameter": name})
        out[name] = _convert(param, values[0])
    return out
