"""The admin API application and its server.

    app = AdminApp(backend, TokenAuth(load_token(token_file)), metrics)
    port = await nursery.start(partial(serve_admin, app, "127.0.0.1", 7080, ssl_context=ctx, access=acl))

Every endpoint except ``GET /health`` needs ``Authorization: Bearer <token>`` with a token that has the
endpoint's role (engine/admin/roles.py); refusals are 401 problems (no valid token) or 403 problems (a
token without the role), counted in ``bsp_admin_auth_failures_total``.  Operator actions record the
token's name (reload, resolve, retry, snapshot).
With an ``ssl_context`` requiring client certificates (and optionally an
``access`` list) the admin port is mutual TLS as well.
"""
from __future__ import annotations

import ipaddress
import logging
import ssl
import time
from datetime import datetime, timezone
from typing import Any

import orjson
import trio

from engine import __version__
from engine.access import AccessList
from engine.admin.auth import TokenAuth
from engine.admin.roles import RAW_ROLE
from engine.admin.backend import AdminBackend, DealQuery, DeadLetterQuery
from engine.admin.cursor import decode, encode
from engine.admin.endpoints import ENDPOINTS, Endpoint, parse_query
from engine.admin.openapi import build_openapi
from engine.defaults import ADMIN_HOST, ADMIN_PORT
from engine.faultlog import FaultLog
from engine.http import HTTPError, HTTPLimits, Request, Response, Router, serve_http
from engine.http.room import http_room
from engine.channels.per_client import ClientCap
from engine.metrics import CONTENT_TYPE, Metrics
from engine.tls import ContextHolder

log = logging.getLogger("bsp.admin")

DEFAULT_HOST = ADMIN_HOST
DEFAULT_PORT = ADMIN_PORT
NO_STORE = (("cache-control", "no-store"), ("x-content-type-options", "nosniff"))     # on every answer
REFUSAL_LOG_EVERY = 60.0      # seconds between two "admin: refused" lines for one client address
ADMIN_LIMITS = HTTPLimits(max_body=64 * 1024, max_header=8 * 1024, idle_timeout=30, read_timeout=10,
                          max_connections=64, max_connections_per_client=16)


class AdminApp:
    """An HTTP handler (``async (Request) -> Response``) serving ``ENDPOINTS``."""

    def __init__(self, backend: AdminBackend, auth: TokenAuth, metrics: Metrics | None = None, *,
                 version: str = __version__) -> None:
        self.backend = backend
        self.metrics = metrics or Metrics()
        self.auth = auth
        if auth.on_failure is None:
            auth.on_failure = self.metrics.auth_failed
        self.version = version
        self._reload_lock = trio.Lock()
        # refused tokens, per client address: the first in full, a flood counted (engine/faultlog.py)
        self.refusals = FaultLog(log, "admin", every=REFUSAL_LOG_EVERY, clock=trio.current_time)
        self._snapshot_since: datetime | None = None     # a ledger snapshot is being taken or sent
        self.router = Router()
        self._endpoints: dict[str, Endpoint] = {}
        for e in ENDPOINTS:
            self.router.add(e.method, e.path, getattr(self, e.name))
            self._endpoints[e.path] = e

    def _log_refusal(self, request: Request, reason: str) -> None:
        """The first refusal from a client address in full, then a count of the rest at most every
        ``REFUSAL_LOG_EVERY`` seconds (a token being guessed shows in the log, with its address, without
        flooding it: engine/faultlog.py)."""
        host = str(request.peer[0]) if request.peer else "?"
        what = f"{request.method} {request.raw_path[:200]}"
        self.refusals.occurred(host, f"refused {what} from {host}: {reason} token",
                               noun="requests refused", source=host, reason=f"{what}: {reason} token")

    def _log_forbidden(self, request: Request, role: str) -> None:
        """A valid token used for an endpoint its roles do not cover: named (never its secret), with the path
        and the role needed; the first per token in full, then counted (as ``_log_refusal``)."""
        host = str(request.peer[0]) if request.peer else "?"
        name = getattr(request.token, "name", "?")
        what = f"{request.method} {request.raw_path[:200]}"
        self.refusals.occurred(("forbidden", name), f"refused {what} from {host}: token {name!r} lacks the role "
                               f"{role!r}", noun="requests refused", source=host,
                               reason=f"{what}: token {name!r} lacks the role {role!r}")

    async def __call__(self, request: Request) -> Response:
        endpoint = "unknown"
        try:
            try:
                route, params = self.router.resolve(request.method, request.raw_path)
            except HTTPError:
                self.auth.check(request)     # no hints about what exists without a token
                raise
            endpoint = route.template
            e = self._endpoints[endpoint]
            if e.auth:
                request.token = self.auth.check(request)
                self.auth.allow(request.token, e.role, f"{e.method} {e.path}")
            request.path_params, request.template = params, route.template
            response = await route.handler(request)
        except HTTPError as exc:
            if exc.status == 401:
                self._log_refusal(request, str(exc.extra.get("reason", "?")))
            elif exc.status == 403 and exc.extra.get("reason") == "forbidden":
                self._log_forbidden(request, str(exc.extra.get("role")))
            response = exc.to_response(instance=request.raw_path)
        except Exception:
            log.exception("admin %s %s failed", request.method, request.raw_path)
            response = Response.problem(500, "the engine failed while answering; the error is in the bsp log",
                                        instance=request.raw_path)
        self.metrics.admin_request(endpoint, response.status)
        names = {k.lower() for k, _ in response.headers}
        # deals, dead letters and the status are not for any cache to keep, and a problem quoting the path sent
        # is JSON, never sniffed as a page
        response.headers.extend(h for h in NO_STORE if h[0] not in names)
        return response

    def _query(self, request: Request) -> dict[str, Any]:
        # the endpoint by its template: the path as sent may differ ("/reload/", "//deals", "/%72eload")
        return parse_query(self._endpoints[request.template], request)

    # ------------------------------------------------------------ endpoints
    async def health(self, request: Request) -> Response:
        return Response.json({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        strict = self._query(request)["strict"]
        state = await (self.backend.ready(strict=True) if strict else self.backend.ready())
        if state.ready:
            return Response.json({"ready": True})
        return Response.problem(503, f"not ready: {state.reason or 'no reason given'}", title="Not Ready",
                                ready=False, reason=state.reason)

    async def status(self, request: Request) -> Response:
        return Response.json(dict(await self.backend.status()))

    async def reload(self, request: Request) -> Response:
        dry_run = self._query(request)["dry_run"]
        if self._reload_lock.locked():
            raise HTTPError(409, "another reload is running; try again when it has finished")
        # four eyes (config.reload): a dry run first, and the version it compiled is what a second operator
        # approves (the files changed since: the approval does not reload them); a failing one is answered as is
        asked = not dry_run and self._four_eyes("config.reload")
        async with self._reload_lock:
            result = await _call_by(self.backend.reload, request, True if asked else dry_run)
        if asked and result.ok:
            name = _token_name(request) or "admin API"
            return await self._request("config.reload", "config", {"version": result.version,
                                                                   "previous_version": result.previous_version,
                                                                   "plan": dict(result.plan)}, name,
                                       _client_of(request))
        if asked:
            dry_run = True
        if not dry_run:
            self.metrics.reload_done(result.ok, "admin")
        body = {"ok": result.ok, "dry_run": result.dry_run, "version": result.version,
                "previous_version": result.previous_version, "plan": dict(result.plan),
                "diagnostics": list(result.diagnostics)}
        if getattr(result, "warnings", ()):
            body["warnings"] = list(result.warnings)
        if result.ok:
            return Response.json(body)
        refused = getattr(result, "refused", "files")
        if refused == "draining":
            body["diagnostics"] = []
            return Response.problem(503, result.diagnostics[0] if result.diagnostics else
                                    "the engine is draining; nothing reloaded", title="Draining",
                                    instance=request.raw_path, **body)
        kept = f" (version {result.previous_version})" if result.previous_version else ""
        n = len(result.diagnostics)
        if refused == "start":
            return Response.problem(
                422, f"the new configuration compiled, but {'a channel' if n == 1 else f'{n} channels'} could "
                     f"not start; the running configuration{kept} is kept. Free the address or give the "
                     f"channel another one, then reload again.",
                title="Reload Failed", instance=request.raw_path, **body)
        return Response.problem(
            422, f"the new configuration has {n} problem{'s' if n != 1 else ''}; the running configuration"
                 f"{kept} is kept. Fix the files (`bsp check`) and reload again.",
            title="Reload Failed", instance=request.raw_path, **body)

    async def deals(self, request: Request) -> Response:
        q = self._query(request)
        if q.get("held"):           # the deals a screening held (engine.deal_hold): one page, newest first
            if q["flagged"]:
                raise HTTPError(400, "query parameters 'held' and 'flagged' list two kinds of deals: give one",
                                extra={"parameter": "held"})
            held = getattr(self.backend, "held_deals", None)
            if held is None:
                raise HTTPError(501, "this engine cannot list held deals through the admin API")
            rows = list(await held(bool(q["resolved"]), q["limit"]))
            return Response.json({"count": len(rows), "deals": rows, "next": None})
        # one row more than asked: whether a next page exists (its cursor is this page's last row)
        query = DealQuery(deal_type=q["type"], status=q["status"], reference=q["reference"],
                          currency=q["currency"], party=q["party"],
                          since=q["since"], until=q["until"], limit=q["limit"] + 1, flagged=bool(q["flagged"]),
                          before=_cursor(q["cursor"]), resolved=bool(q["resolved"]),
                          statement_breaks=bool(q["statement_breaks"]))
        if query.resolved and not query.flagged:
            raise HTTPError(400, "query parameter 'resolved': it adds the resolved deals to a `flagged` listing; "
                                 "add flagged=1", extra={"parameter": "resolved"})
        _time_range(query.since, query.until)
        rows, after = _page(list(await self.backend.deals(query)), q["limit"], "received_at", "deal_id")
        return Response.json({"count": len(rows), "deals": rows, "next": after})

    async def deal(self, request: Request) -> Response:
        deal_id = request.path_params["id"]
        one = getattr(self.backend, "deal", None)
        if one is None:
            raise HTTPError(501, "this engine cannot show one deal through the admin API")
        try:
            found = await one(deal_id)
        except (ValueError, LookupError) as exc:
            raise HTTPError(400, str(exc)) from None
        if found is None:
            raise await self._missing("deal", deal_id, "list deals with GET /deals")
        return Response.json(dict(found))

    async def _missing(self, kind: str, ident: str, otherwise: str, *, resolving: bool = False,
                       retrying: bool = False) -> HTTPError:
        """404 for a deal or dead letter the ledger lacks; when ``bsp ledger archive`` moved it (or may have), the
        detail names the archive file and the body's ``archived`` says which (engine.archive_lookup);
        ``resolving``: the detail says an archived deal cannot be, and need not be, resolved; ``retrying``: that
        an archived dead letter cannot be retried from there, and how to read and re-send its message."""
        from engine.archive_lookup import hint, resolve_hint, retry_hint

        where = getattr(self.backend, "archived", None)
        info = await where(kind, ident) if where is not None else None
        if info is None:
            return HTTPError(404, f"no {kind} {ident!r}; {otherwise}")
        said = (resolve_hint(dict(info), ident) if resolving else retry_hint(dict(info), ident) if retrying else
                hint(dict(info), kind, ident))
        return HTTPError(404, f"no {kind} {ident!r}: {said}", extra={"archived": dict(info)})

    async def resolve_deal(self, request: Request) -> Response:
        from engine.deal_resolve import Refused, check_input
        from engine.ledger_snapshot import SnapshotError
        from engine.ledger_store import LedgerError

        deal_id = request.path_params["id"]
        resolve = getattr(self.backend, "resolve_deal", None)
        if resolve is None:
            raise HTTPError(501, "this engine cannot resolve deals through the admin API; stop it and use "
                                 "`bsp deals resolve` on its ledger file")
        body = _json_object(request, ("outcome", "note", "by"))
        name = _token_name(request)
        try:
            outcome, note, stated = check_input(body.get("outcome"), body.get("note"),
                                                body.get("by", name or "admin API"))
        except ValueError as exc:
            raise HTTPError(400, f"body: {exc}", extra={"field": str(exc).split(":", 1)[0]}) from None
        # who did it is the token the request was let in with; a `by` naming someone else is what the caller
        # said (not checked), kept beside it as stated_by (docs/security.md "Who did it")
        by = name or stated
        client = {"peer": str(request.peer[0]) if request.peer else None, "client_cert": _subject(request.peercert),
                  "token": name, "stated_by": stated if stated != by else None}
        from engine.deal_resolve import HOLD_OUTCOMES
        action = ("deal.release" if outcome == "release" else None if outcome in HOLD_OUTCOMES else "deal.resolve")
        if action is not None and self._four_eyes(action):
            return await self._request(action, deal_id, {"outcome": outcome, "note": note}, by, client)
        try:
            done = await resolve(deal_id, outcome, note, by, client)
        except Refused as exc:
            raise HTTPError(409, str(exc), extra={"why": exc.why}) from None
        except (ValueError, LookupError) as exc:
            raise HTTPError(400, str(exc)) from None
        except (SnapshotError, LedgerError) as exc:       # the journal's loader behind; the ledger cannot write
            raise HTTPError(503, f"{exc}; nothing was recorded") from None
        if done is None:
            raise await self._missing("deal", deal_id, "list the flagged ones with GET /deals?flagged=1", resolving=True)
        log.info("admin: deal %s resolved (%s) by token %r from %s%s", done["deal_id"], outcome, by, client["peer"],
                 f" (stated by {client['stated_by']!r})" if client["stated_by"] else "")
        return Response.json(dict(done))

    async def dead_letters(self, request: Request) -> Response:
        q = self._query(request)
        limit, before = q.pop("limit"), _cursor(q.pop("cursor"))
        query = DeadLetterQuery(**q, limit=limit + 1, before=before)
        _time_range(query.since, query.until)
        rows, after = _page(list(await self.backend.dead_letters(query)), limit, "at", "id")
        return Response.json({"count": len(rows), "dead_letters": rows, "next": after})

    async def dead_letter(self, request: Request) -> Response:
        letter_id = request.path_params["id"]
        one = getattr(self.backend, "dead_letter", None)
        if one is None:
            raise HTTPError(501, "this engine cannot show one dead letter through the admin API")
        found = await one(letter_id)
        if found is None:
            raise await self._missing("dead letter", letter_id, "list them with GET /dead-letters")
        found = dict(found)
        token = request.token
        if token is not None and RAW_ROLE not in token.roles and found.get("raw_base64") is not None:
            # the message itself (card numbers, amounts, names) only for a token with the role raw
            found["raw_base64"] = None
            found["raw_withheld"] = (f"the stored message is shown to a token with the role {RAW_ROLE!r}; the "
                                     f"token sent does not have it")
        elif found.get("raw_base64") is not None and found.get("raw_key") is None and self._four_eyes("dead.reveal"):
            # four eyes (dead.reveal): the message in clear goes out only through an approved request, decrypted
            # for its requester once (POST /dead-letters/{id}/reveals, then POST /approvals/{id}/reveal)
            found["raw_base64"] = None
            found["raw_four_eyes"] = True
            found["raw_withheld"] = ("four eyes: dead.reveal is under dual control (operators.four_eyes): the "
                                     "stored message (in clear) is shown once another operator approved a reveal "
                                     "request (POST /dead-letters/{id}/reveals; `bsp dead show ID --live --reveal`)")
        elif found.get("raw_base64") is not None and found.get("raw_key") is None:
            # a message stored in clear (no field keyring) leaves the engine as it came: card data, so the
            # access is recorded first (PCI DSS 10.2, engine/reveal_log.py); not recorded, not sent
            record = getattr(self.backend, "record_reveal", None)
            if record is not None:
                try:
                    await record("dead letter", found["id"], ["message"], _token_name(request) or "admin API",
                                 {**_client_of(request), "request": "GET /dead-letters/{id} (stored in clear)"})
                except Exception as exc:   # noqa: BLE001 - whatever kept it out of the ledger: the bytes stay
                    log.error("admin: dead letter %s: its message (stored in clear) was not sent: the access "
                              "could not be recorded: %s", found["id"], exc)
                    found["raw_base64"] = None
                    found["raw_withheld"] = ("the stored message (in clear) is sent once the access is recorded in "
                                             "the audit trail, and it could not be; see the engine's log")
        return Response.json(found)

    async def reveal_deal(self, request: Request) -> Response:
        return await self._reveal(request, "deal")

    async def reveal_dead_letter(self, request: Request) -> Response:
        return await self._reveal(request, "dead letter")

    async def _reveal(self, request: Request, kind: str) -> Response:
        """``POST /deals/{id}/reveals``, ``POST /dead-letters/{id}/reveals``: a client about to show ``fields``
        of it in clear (``bsp deals show --live --reveal``) has the engine record it in the audit chain first
        (engine/reveal_log.py); body ``{"fields": [...], "by": ...}``; who is the token's name."""
        from engine.ledger_store import LedgerError
        from engine.operator import check_by

        ident = request.path_params["id"]
        record = getattr(self.backend, "record_reveal", None)
        if record is None:
            raise HTTPError(501, "this engine cannot record a reveal; stop it and reveal on its ledger file")
        body = _json_object(request, ("fields", "by", "four_eyes"), shape='{"fields": [...], "by": ...}')
        fields = body.get("fields")
        if (not isinstance(fields, list) or len(fields) > 1000
                or not all(isinstance(f, str) and 0 < len(f) <= 300 and f.isprintable() for f in fields)):
            raise HTTPError(400, "body: fields: expected a list of the field paths shown in clear (at most 1000 "
                                 "texts of 1 to 300 printable characters), never their values",
                            extra={"field": "fields"})
        name = _token_name(request)
        try:
            stated = check_by(body.get("by", name or "admin API"), "by")
        except ValueError as exc:
            raise HTTPError(400, f"body: {exc}", extra={"field": "by"}) from None
        by = name or stated
        client = {**_client_of(request), "stated_by": stated if stated != by else None}
        action = "deal.reveal" if kind == "deal" else "dead.reveal"
        if self._four_eyes(action):
            # four eyes: not recorded as done: a request; once another operator approves it, the engine decrypts
            # the fields (a dead letter's message) for this requester alone, once (POST /approvals/{id}/reveal)
            token = request.token
            if action == "dead.reveal" and token is not None and RAW_ROLE not in token.roles:
                raise HTTPError(403, f"a dead letter's message goes to a token with the role {RAW_ROLE!r}, and the "
                                     f"token sent does not have it: nothing was requested (docs/admin-api.md#roles)")
            return await self._request(action, ident, {}, by, client)
        if body.get("four_eyes") is True:
            raise HTTPError(409, f"{action} is not under four eyes here (operators.four_eyes does not list it): "
                                 f"nothing was requested; reveal with the field keyring of your shell",
                            extra={"why": "not_under_four_eyes"})
        try:
            done = await record(kind, ident, fields, by, client)
        except (ValueError, LookupError) as exc:
            raise HTTPError(400, str(exc)) from None
        except LedgerError as exc:
            raise HTTPError(503, f"{exc}; the reveal was not recorded") from None
        if done is None:
            raise await self._missing(kind, ident, "list them with GET /deals" if kind == "deal"
                                      else "list them with GET /dead-letters")
        log.info("admin: %s %s revealed (%s) by token %r from %s", kind, done["id"], ", ".join(fields) or "nothing",
                 by, client["peer"])
        return Response.json(dict(done))

    async def retry_dead_letter(self, request: Request) -> Response:
        letter_id = request.path_params["id"]
        retry = getattr(self.backend, "retry_dead_letter", None)
        if retry is None:
            raise HTTPError(501, "this engine cannot retry dead letters through the admin API; use "
                                 "`bsp dead retry --routes PATH...` with the engine stopped")
        again = (request.arg("again") or "false").lower()
        if again not in ("true", "false", "1", "0"):
            raise HTTPError(400, f"again: expected true or false, got {again!r}", extra={"parameter": "again"})
        if self._four_eyes("dead.retry"):
            name = _token_name(request) or "admin API"
            return await self._request("dead.retry", letter_id, {"again": again in ("true", "1")}, name,
                                       _client_of(request))
        result = await (_call_by(retry, request, letter_id, again=True) if again in ("true", "1")
                        else _call_by(retry, request, letter_id))
        if result is None:
            raise await self._missing("dead letter", letter_id, "list them with GET /dead-letters", retrying=True)
        if result.get("skipped"):        # already retried, or a retry of it is running: not run twice
            raise HTTPError(409, str(result["outcome"]), extra={"id": letter_id, "why": "already_retried"})
        return Response.json(dict(result))

    # ------------------------------------------------------------ four eyes (engine/four_eyes.py)
    def _four_eyes(self, action: str) -> bool:
        """Whether ``action`` needs a second operator (the deployment file's ``operators.four_eyes``)."""
        policy = getattr(self.backend, "four_eyes", None)
        return policy is not None and policy.covers(action)

    async def _request(self, action: str, target: str, params: dict[str, Any], by: str,
                       client: dict[str, Any]) -> Response:
        """Record the request instead of acting: 202 with it; 404 no such target; 409 refused."""
        from engine.four_eyes import Refused
        from engine.ledger_snapshot import SnapshotError
        from engine.ledger_store import LedgerError

        try:
            req = await self.backend.request_approval(action, target, params, by, client)
        except Refused as exc:
            raise HTTPError(409, str(exc), extra={"why": exc.why}) from None
        except (ValueError, LookupError) as exc:
            raise HTTPError(400, str(exc)) from None
        except (LedgerError, SnapshotError) as exc:
            raise HTTPError(503, f"{exc}; nothing was requested") from None
        if req is None:
            kind = "deal" if action.startswith("deal.") else "dead letter"
            raise await self._missing(kind, target, "list them with GET /deals" if kind == "deal"
                                      else "list them with GET /dead-letters")
        log.info("admin: four eyes: %s of %s requested by token %r from %s: request %s waits for a second operator",
                 action, req["target"], by, client.get("peer"), req["id"])
        return Response.json({**req, "pending": True}, status=202)

    async def approvals(self, request: Request) -> Response:
        q = self._query(request)
        rows = list(await self.backend.approvals(every=q["all"], limit=q["limit"]))
        return Response.json({"count": len(rows), "approvals": rows})

    async def approve_request(self, request: Request) -> Response:
        return await self._decide(request, True)

    async def reject_request(self, request: Request) -> Response:
        return await self._decide(request, False)

    async def reveal_request(self, request: Request) -> Response:
        """``POST /approvals/{id}/reveal``: the requester of an approved ``deal.reveal`` (``dead.reveal``) fetches
        the deal with its sealed fields (the dead letter with its message) decrypted by the engine, once, within
        the approval's ``fetch_until``; recorded first."""
        from engine.four_eyes import Refused
        from engine.ledger_store import LedgerError

        rid = request.path_params["id"]
        fetch = getattr(self.backend, "fetch_reveal", None)
        if fetch is None:
            raise HTTPError(501, "this engine cannot reveal under four eyes")
        name = _token_name(request)
        if name is None:
            raise HTTPError(403, "a reveal goes to its requester: an authenticated operator, a named admin token")
        token = request.token
        try:
            done = await fetch(rid, name, _client_of(request), raw=token is None or RAW_ROLE in token.roles)
        except Refused as exc:
            raise HTTPError(403 if exc.why == "not_raw" else 409, str(exc), extra={"why": exc.why}) from None
        except (ValueError, LookupError) as exc:
            raise HTTPError(400, str(exc)) from None
        except LedgerError as exc:
            raise HTTPError(503, f"{exc}; nothing was revealed") from None
        if done is None:
            raise HTTPError(404, f"no four-eyes request {rid!r}; list them with GET /approvals")
        # the field names only, never a value (the answer alone carries them)
        log.info("admin: four eyes: reveal request %s fetched by token %r from %s: %d field(s) of %s %s",
                 done["request"]["id"], name, request.peer[0] if request.peer else "?", len(done["fields"]),
                 "dead letter" if "dead_letter" in done else "deal", done["request"]["target"])
        return Response.json(dict(done))

    async def _decide(self, request: Request, approve: bool) -> Response:
        from engine.four_eyes import Refused, check_reason
        from engine.ledger_store import LedgerError

        rid = request.path_params["id"]
        body = _json_object(request, ("reason",))
        try:
            reason = check_reason(body.get("reason"))
        except ValueError as exc:
            raise HTTPError(400, f"body: {exc}", extra={"field": "reason"}) from None
        name = _token_name(request)
        if name is None:
            raise HTTPError(403, "an approval needs an authenticated operator: a named admin token")
        try:
            done = await self.backend.decide_approval(rid, approve, reason, name, _client_of(request))
        except Refused as exc:
            raise HTTPError(409, str(exc), extra={"why": exc.why}) from None
        except (ValueError, LookupError) as exc:
            raise HTTPError(400, str(exc)) from None
        except LedgerError as exc:
            raise HTTPError(503, f"{exc}; nothing was decided") from None
        if done is None:
            raise HTTPError(404, f"no four-eyes request {rid!r}; list them with GET /approvals")
        log.info("admin: four eyes: request %s (%s of %s by %r) %s by token %r from %s", done["id"],
                 done.get("action"), done.get("target"), done.get("by"), "approved" if approve else "rejected",
                 name, request.peer[0] if request.peer else "?")
        return Response.json(dict(done))

    async def ledger_snapshot(self, request: Request) -> Response:
        take = getattr(self.backend, "snapshot_ledger", None)
        if take is None:
            raise HTTPError(501, "this engine cannot make a ledger snapshot through the admin API")
        if self._snapshot_since is not None:
            raise HTTPError(409, f"a ledger snapshot is already being taken or sent (since "
                                 f"{self._snapshot_since.isoformat(timespec='seconds')}); one at a time: ask again "
                                 f"when it has finished")
        from engine.ledger_snapshot import SnapshotError, SnapshotNoRoom

        self._snapshot_since = datetime.now(timezone.utc)
        try:
            start = time.perf_counter()
            snap = await take()
        except SnapshotNoRoom as exc:
            self._snapshot_since = None
            raise HTTPError(507, str(exc), extra={"folder": str(exc.folder)}) from None
        except SnapshotError as exc:
            self._snapshot_since = None
            raise HTTPError(503, str(exc)) from None
        except BaseException:
            self._snapshot_since = None
            raise
        log.info("ledger snapshot: %d deals, %d bytes, copied in %.3f s; sending it to %s (token %r)", snap.deals,
                 snap.size, time.perf_counter() - start, request.peer[0] if request.peer else "?",
                 _token_name(request))
        stamp = snap.taken_at.strftime("%Y%m%dT%H%M%SZ")
        headers = [("content-type", "application/octet-stream"), ("content-length", str(snap.size)),
                   ("content-disposition", f'attachment; filename="ledger-snapshot-{stamp}.duckdb"'),
                   ("x-bsp-snapshot-taken-at", snap.taken_at.isoformat()),
                   ("x-bsp-snapshot-deals", str(snap.deals)),
                   ("x-bsp-snapshot-chain-seq", "" if snap.chain_seq is None else str(snap.chain_seq)),
                   ("cache-control", "no-store")]
        return Response(200, headers, stream=_FileBody(snap, self._snapshot_sent))

    def _snapshot_sent(self) -> None:
        self._snapshot_since = None

    async def prometheus_metrics(self, request: Request) -> Response:
        return Response(200, [("content-type", CONTENT_TYPE)], self.metrics.render())

    async def openapi(self, request: Request) -> Response:
        return Response.json(build_openapi(self.version))


class _FileBody:
    """A snapshot's file sent in ``CHUNK`` pieces (never whole in memory); once sent, or the client gone,
    the file is removed and ``done()`` called (the next snapshot may start)."""

    CHUNK = 1 << 20

    def __init__(self, snap: Any, done: Any) -> None:
        self.snap, self.done = snap, done
        self._file: Any = None

    def chunks(self) -> "_FileBody":
        return self

    def __aiter__(self) -> "_FileBody":
        return self

    async def __anext__(self) -> bytes:
        if self._file is None:
            self._file = await trio.open_file(self.snap.path, "rb")
        chunk = await self._file.read(self.CHUNK)
        if not chunk:
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        try:
            if self._file is not None:
                await self._file.aclose()
        finally:
            self.done()         # before the removal: once the file is gone, the next snapshot is welcome
            await trio.to_thread.run_sync(self.snap.remove)


def _is_loopback(host: str | None) -> bool:
    if host in (None, "", "0.0.0.0", "::"):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def serve_admin(
    app: AdminApp,
    host: str | None = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    ssl_context: ssl.SSLContext | ContextHolder | None = None,
    *,
    access: AccessList | None = None,
    limits: HTTPLimits = ADMIN_LIMITS,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the admin API until cancelled; ``task_status.started(port)`` once listening.

    At ``limits.max_connections`` (64, fixed) a new connection takes the slot of the one longest in its TLS
    handshake, else of the one idle longest (engine/channels/conn_room.py), with a warning in the log; no
    metric: the admin API is not a channel, and its /metrics is read through this very server.  A client
    address holding ``limits.max_connections_per_client`` (16, fixed) has a new connection closed at once,
    unread (engine/channels/per_client.py), logged once a minute per client (``app.refusals``): one address
    cannot take every slot with connections that trickle a request."""

    def refused(peer: Any, reason: str) -> None:
        app.metrics.auth_failed("refused")

    def bad_request(peer: Any, status: int, reason: str) -> None:
        # malformed, smuggling, too large, too slow: the first of each status in full, a flood counted
        host = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        app.refusals.occurred(("bad request", status), f"bad HTTP request from {host}: {status} {reason}; "
                              "answered and closed", noun=f"bad HTTP requests ({status})", source=host, reason=reason)

    if not _is_loopback(host) and ssl_context is None:
        task_status = _WarnInClear(task_status, host)
    room = http_room(limits.max_connections, title="admin API", limit="its limit, fixed", idle_hint="",
                     hint="find which peers hold them (the log's addresses); the admin API should be reachable "
                          "by admin consoles only: bind it (admin.listen, --admin) to an address only they reach, "
                          "or keep other peers out with a firewall", logger=log)
    clients = ClientCap(limits.max_connections_per_client, app.refusals, option="its per-client limit, fixed",
                        hint="an admin console needs a few connections at once; find what else connects from "
                             "that address")
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(app.refusals.run)       # the count of refusals once its minute is over
            nursery.start_soon(room.faults.run)        # connections closed for room, counted in a loop
            await serve_http(app, host, port, ssl_context, limits=limits, access=access, on_refused=refused,
                             on_bad_request=bad_request, room=room, clients=clients,
                             task_status=task_status)
    except BaseExceptionGroup as group:
        # the nursery wraps what serve_http raised: a taken port (OSError) goes on as itself, for the start's
        # one-line error naming the admin API (engine/ops/serve.py), not as a group with a traceback
        if len(group.exceptions) == 1 and isinstance(group.exceptions[0], OSError):
            raise group.exceptions[0] from None
        raise
    finally:
        app.refusals.flush()
        room.faults.flush()


class _WarnInClear:
    """Says, once the admin API listens, that it does so in clear on a non-loopback address (with the port
    it is bound to: ``0`` in the settings means one the system chose)."""

    def __init__(self, inner: Any, host: str | None) -> None:
        self.inner, self.host = inner, host

    def started(self, port: Any = None) -> None:
        log.warning("admin API on %s:%s without TLS: bearer tokens cross the network in clear; "
                    "give it a TLS certificate or bind to 127.0.0.1", self.host or "0.0.0.0", port)
        self.inner.started(port)


def _json_object(request: Request, allowed: tuple[str, ...], shape: str | None = None) -> dict[str, Any]:
    """The request's body as a JSON object with no field but ``allowed``, else a 400 saying what to send
    (``shape``: the object to show, by default each allowed field with ``...``)."""
    shape = shape or "{" + ", ".join(f'"{k}": ...' for k in allowed) + "}"
    try:
        body = orjson.loads(request.body or b"null")
    except orjson.JSONDecodeError as exc:
        raise HTTPError(400, f"the body is not JSON ({exc}); send {shape}") from None
    if not isinstance(body, dict):
        raise HTTPError(400, f"the body must be a JSON object: {shape}")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise HTTPError(400, f"body: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}",
                        extra={"field": unknown[0]})
    return body


def _token_name(request: Request) -> str | None:
    return getattr(request.token, "name", None)


async def _call_by(method: Any, request: Request, *args: Any, **kw: Any) -> Any:
    """``method(*args, **kw, by=<the token's name>)``, or without ``by`` for a backend whose method has none."""
    import inspect

    name = _token_name(request)
    try:
        takes = "by" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        takes = False
    return await (method(*args, **kw, by=name) if takes and name is not None else method(*args, **kw))


def _client_of(request: Request) -> dict[str, Any]:
    """What the audit trail keeps of the client of ``request``: its address, certificate and token's name."""
    return {"peer": str(request.peer[0]) if request.peer else None, "client_cert": _subject(request.peercert),
            "token": _token_name(request)}


def _subject(peercert: dict[str, Any] | None) -> str | None:
    """A verified client certificate's identity, ``cn:NAME`` (or its first SAN), for the audit trail."""
    if not peercert:
        return None
    from engine.tls import peer_identity

    ident = peer_identity(peercert)
    for kind in ("cn", "dns", "email", "uri", "ip"):
        if ident.get(kind):
            return f"{kind}:{ident[kind][0]}"
    return None


def _time_range(since: Any, until: Any) -> None:
    if since and until and since >= until:
        raise HTTPError(400, f"query parameters: since ({since.isoformat()}) must be before until "
                             f"({until.isoformat()})", extra={"parameter": "since"})


def _cursor(text: str | None) -> tuple[Any, str] | None:
    """The ``cursor`` query parameter as ``(time, id)`` (engine.admin.cursor); a 400 naming it when bad."""
    if text is None:
        return None
    try:
        return decode(text)
    except ValueError as exc:
        raise HTTPError(400, f"query parameter 'cursor': expected {exc}, got {text!r}",
                        extra={"parameter": "cursor"}) from None


def _page(rows: list[Any], limit: int, at: str, ident: str) -> tuple[list[Any], str | None]:
    """The first ``limit`` of ``rows`` (asked for one more) and the cursor of the next page (None: none)."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode(last[at], last[ident])
