"""Everything a bank turns on, at once, through `bsp run` as a process, checked afterwards with the CLI.

One deployment (platform.yaml in tmp_path) with:

* mutual TLS on the mainframe-facing `tcp listen` (client certificate required, access list by CN)
  and on the outbound `tcp connect` to a counterpart (a real TLS server here, requiring our client
  certificate), certificates from `bsp certs dev`;
* the admin API over mutual TLS, its token in a file (`bsp admin token`);
* the audit key and the field keyring in files (BSP_AUDIT_KEY_FILE, BSP_FIELD_KEYS_FILE);
* `--record CAPTURE --mask`, ledger `sync: journal`, a deal key;
* an EBCDIC copybook request whose card number is classified `pan`.

Traffic: good requests, a validation reject, a counterpart decline, a malformed frame, an unrouted
one and repeats; a `bsp reload` over the TLS admin API changing a reply field while a client keeps
sending; SIGTERM (drain, exit 0).  Then, as an operator: `bsp audit verify`, `bsp deals`,
`bsp deals show [--reveal]`, `bsp dead list`, `bsp replay CAPTURE --config NEW`; and no clear card
number in the ledger's text, the capture or the engine's output.
"""
from __future__ import annotations

import base64
import functools
import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import duckdb
import orjson
import trio

from engine.tls import client_context, server_context
from formats.framing import LengthPrefixFramer

BSP = str(Path(sys.executable).parent / "bsp")
PANS = ["4111111111111111", "5500005555555559", "4012888888881881"]

PAY_REQ = """\
       01 PAY-REQ.
          05 TXN-CODE        PIC X(4).
          05 TRACE-NO        PIC X(12).
          05 PAN             PIC X(19).
          05 AMOUNT          PIC S9(11)V99 COMP-3.
          05 CURRENCY        PIC X(3).
"""
PAY_RSP = """\
       01 PAY-RSP.
          05 TRACE-NO        PIC X(12).
          05 RESP-CODE       PIC X(2).
          05 AUTH-REF        PIC X(16).
          05 MSG-TEXT        PIC X(40).
"""

ROUTE = """
format PayReq   = copybook "PAY-REQ.cpy" encoding cp037 names lower classify ["pan:pan"]
format PayRsp   = copybook "PAY-RSP.cpy" encoding cp037 names lower
format CardPost = json classify ["pan:pan"]
format CardAck  = json

channel mainframe = tcp listen {
    address     = "127.0.0.1:0"
    framing     = length2
    cert        = "../pki/server.pem"
    key         = "../pki/server.key"
    ca          = "../pki/ca.pem"
    client_cert = "required"
    allow       = ["cn:MAINFRAME01"]
    on error reply PayRsp {
        trace_no  = ""
        resp_code = error.code
        auth_ref  = ""
        msg_text  = error.text
    }
}

channel issuer = tcp connect {
    address     = "127.0.0.1:1"
    framing     = length4
    timeout     = 3s
    ca          = "../pki/ca.pem"
    cert        = "../pki/client.pem"
    key         = "../pki/client.key"
    server_name = "localhost"
}

route card_payment {
    receive from mainframe as PayReq when msg.txn_code == "CP01"
    validate {
        msg.amount > 0 else reject "13" "invalid amount"
    }
    deal CARD_PAYMENT {
        ref      = trim(msg.trace_no)
        amount   = msg.amount
        currency = msg.currency
        key      = trim(msg.trace_no)
    }
    call auth = issuer as CardPost reply CardAck {
        ref      = trim(msg.trace_no)
        pan      = trim(msg.pan)
        amount   = msg.amount
        currency = msg.currency
    } expect auth.status == "OK"
    reply PayRsp {
        trace_no  = msg.trace_no
        resp_code = "00"
        auth_ref  = auth.auth
        msg_text  = "approved %s"
    }
    on error reply PayRsp {
        trace_no  = msg.trace_no
        resp_code = error.code
        auth_ref  = ""
        msg_text  = error.text
    }
}
"""

PLATFORM = """\
version: 1
routes:
  - routes/*.route
ledger:
  path: var/ledger.duckdb
  sync: journal
  key_retention: 35d
admin:
  listen: "127.0.0.1:0"
  token: {file: secrets/admin.token}
channels:
  issuer: {address: "127.0.0.1:%d"}
"""

DECLINED = Decimal("99.99")


def _packed(value: Decimal, digits: int = 13, scale: int = 2) -> bytes:
    n = int(abs(value) * (10 ** scale))
    nibbles = f"{n:0{digits}d}" + ("d" if value < 0 else "c")
    return bytes.fromhex(("0" + nibbles) if len(nibbles) % 2 else nibbles)


def request(trace: str, pan: str, amount: str, code: str = "CP01", currency: str = "EUR") -> bytes:
    text = lambda s, w: s.ljust(w).encode("cp037")  # noqa: E731
    return text(code, 4) + text(trace, 12) + text(pan, 19) + _packed(Decimal(amount)) + text(currency, 3)


def reply_fields(raw: bytes) -> dict[str, str]:
    t = raw.decode("cp037")
    return {"trace_no": t[:12].strip(), "resp_code": t[12:14], "auth_ref": t[14:30].strip(),
            "msg_text": t[30:70].strip()}


def bsp(args: list[str], cwd: Path, env: dict[str, str], timings: dict[str, float] | None = None,
        ) -> subprocess.CompletedProcess:
    t0 = time.perf_counter()
    r = subprocess.run([BSP, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    if timings is not None:                      # by command: "deals show", "replay", ...
        name = " ".join(a for a in args[:2] if not a.startswith(("-", "/")))
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
    return r


async def issuer(nursery: trio.Nursery, pki: Path, seen: list[dict]) -> int:
    """The counterpart: JSON over mutual TLS, length4; declines 99.99."""
    ctx = server_context(pki / "server.pem", pki / "server.key", pki / "ca.pem", "required")

    async def handler(stream: trio.SSLStream) -> None:
        f = LengthPrefixFramer(4)
        try:
            while data := await stream.receive_some(65536):
                out = []
                for frame in f.feed(data):
                    req = orjson.loads(frame)
                    seen.append(req)
                    ok = Decimal(str(req["amount"])) != DECLINED
                    out.append(f.frame(orjson.dumps({"status": "OK" if ok else "DECLINED",
                                                     "auth": "A-" + req["ref"]})))
                await stream.send_all(b"".join(out))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    listeners = await nursery.start(functools.partial(trio.serve_ssl_over_tcp, handler, 0, ctx,
                                                      host="127.0.0.1"))
    return listeners[0].transport_listener.socket.getsockname()[1]


class Mainframe:
    """A mutual-TLS client of the mainframe channel; requests pipelined, replies in order."""

    def __init__(self, stream: trio.SSLStream) -> None:
        self.stream, self.tx, self.rx = stream, LengthPrefixFramer(2), LengthPrefixFramer(2)
        self.pending: list[bytes] = []

    @classmethod
    async def open(cls, port: int, pki: Path) -> "Mainframe":
        ctx = client_context(ca=pki / "ca.pem", cert=pki / "client.pem", key=pki / "client.key",
                             server_hostname="localhost")
        return cls(await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=ctx,
                                                       https_compatible=False))

    async def call(self, *payloads: bytes) -> list[bytes]:
        await self.stream.send_all(b"".join(self.tx.frame(p) for p in payloads))
        with trio.fail_after(10):
            while len(self.pending) < len(payloads):
                data = await self.stream.receive_some(65536)
                assert data, "the engine closed the connection"
                self.pending.extend(self.rx.feed(data))
        out, self.pending = self.pending[:len(payloads)], self.pending[len(payloads):]
        return out


async def wait_for(path: Path, needle: str, proc: subprocess.Popen) -> str:
    with trio.fail_after(20):
        while True:
            text = path.read_text() if path.exists() else ""
            if needle in text:
                return text
            assert proc.poll() is None, f"bsp run exited early:\n{text}"
            await trio.sleep(0.05)


def setup(tmp: Path, timings: dict[str, float]) -> tuple[dict[str, str], Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BSP_")}
    r = bsp(["certs", "dev", "pki", "--client-cn", "MAINFRAME01"], tmp, env, timings)
    assert r.returncode == 0, r.stderr
    (tmp / "secrets").mkdir(mode=0o700)
    r = bsp(["admin", "token", "secrets/admin.token"], tmp, env, timings)
    assert r.returncode == 0, r.stderr
    audit = tmp / "secrets" / "audit.key"
    audit.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    keys = tmp / "secrets" / "field-keys.json"
    keys.write_text(json.dumps({"current": "k1", "keys": {"k1": base64.b64encode(os.urandom(32)).decode()}}))
    for p in (audit, keys):
        p.chmod(0o600)
    (tmp / "routes").mkdir()
    (tmp / "routes" / "PAY-REQ.cpy").write_text(PAY_REQ)
    (tmp / "routes" / "PAY-RSP.cpy").write_text(PAY_RSP)
    route = tmp / "routes" / "card.route"
    route.write_text(ROUTE % "V1")
    env.update(BSP_AUDIT_KEY_FILE=str(audit), BSP_FIELD_KEYS_FILE=str(keys))
    return env, route


def admin_args(tmp: Path, url: str) -> list[str]:
    return ["--url", url, "--token-file", str(tmp / "secrets" / "admin.token"), "--ca", "pki/ca.pem",
            "--cert", "pki/client.pem", "--key", "pki/client.key"]


async def test_everything_on_at_once_through_bsp_run(tmp_path: Path, nursery) -> None:
    started = time.perf_counter()
    timings: dict[str, float] = {}
    env, route = setup(tmp_path, timings)
    seen: list[dict] = []
    issuer_port = await issuer(nursery, tmp_path / "pki", seen)
    (tmp_path / "platform.yaml").write_text(PLATFORM % issuer_port)
    capture = tmp_path / "var" / "capture.duckdb"
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out.open("w") as so, err.open("w") as se:
        proc = subprocess.Popen(
            [BSP, "run", "platform.yaml", "--record", str(capture), "--mask", "--log-level", "info",
             "--admin-cert", "pki/server.pem", "--admin-key", "pki/server.key", "--admin-client-ca", "pki/ca.pem",
             "--grace", "5"], cwd=tmp_path, env=env, stdout=so, stderr=se)
    replies: dict[str, list[bytes]] = {}          # trace -> every reply its requests got, in order
    try:
        text = await wait_for(err, "bsp: serving", proc)
        timings["bsp run: start to serving"] = time.perf_counter() - started - sum(timings.values())
        port = int(text.split("channel mainframe: listen 127.0.0.1:")[1].split()[0])
        url = text.split("\nadmin API: ")[1].split()[0]                # the banner's line, with its scheme
        mf = await Mainframe.open(port, tmp_path / "pki")

        # good, rejected (validate), failed (declined by the issuer), malformed, unrouted, a repeat
        first = [request(f"G{i:03d}", PANS[i % 3], f"{10 + i}.50") for i in range(10)]
        first += [request("R001", PANS[0], "0"), request("D001", PANS[1], str(DECLINED)),
                  request("M001", PANS[2], "1.00")[:20],                     # cut inside the PAN
                  request("U001", PANS[0], "5.00", code="XX99"), first[3]]
        got = await mf.call(*first)
        for payload, raw in zip(first, got):
            replies.setdefault(payload[4:16].decode("cp037").strip() or "?", []).append(raw)
        assert [reply_fields(r)["resp_code"] for r in got] == ["00"] * 10 + ["13", "05", "30", "12", "00"]
        assert reply_fields(got[0])["msg_text"] == "approved V1"
        assert got[14] == got[3]                                              # the repeat: original bytes

        # a reload over the TLS admin API while a second client keeps sending
        flowing: list[str] = []
        reloaded = trio.Event()

        async def traffic() -> None:
            c = await Mainframe.open(port, tmp_path / "pki")
            n = 0
            while not reloaded.is_set() or n < len(flowing) + 3:
                trace = f"L{n:03d}"
                (raw,) = await c.call(request(trace, PANS[n % 3], "7.25"))
                replies.setdefault(trace, []).append(raw)
                flowing.append(reply_fields(raw)["msg_text"])
                n += 1
                if reloaded.is_set() and flowing[-1] == "approved V2":
                    break
            await c.stream.aclose()

        async with trio.open_nursery() as load:
            load.start_soon(traffic)
            while len(flowing) < 5:
                await trio.sleep(0.01)
            route.write_text(ROUTE % "V2")
            t0 = time.perf_counter()
            r = await trio.to_thread.run_sync(lambda: bsp(["reload", *admin_args(tmp_path, url)], tmp_path, env))
            timings["bsp reload (TLS admin)"] = time.perf_counter() - t0
            assert r.returncode == 0, r.stderr
            assert "switched" in r.stdout and "routes changed: card_payment" in r.stdout, r.stdout
            reloaded.set()
        assert flowing[0] == "approved V1" and flowing[-1] == "approved V2", flowing
        assert set(flowing) == {"approved V1", "approved V2"}

        after = [request("G100", PANS[0], "3.00"), first[5]]                  # new on V2; a repeat of a V1 deal
        got = await mf.call(*after)
        replies.setdefault("G100", []).append(got[0])
        replies["G005"].append(got[1])
        assert reply_fields(got[0])["msg_text"] == "approved V2"
        assert got[1] == replies["G005"][0]                                   # the original (V1) reply
        await mf.stream.aclose()
    finally:
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        timings["SIGTERM to exit"] = time.perf_counter() - t0
    stderr = err.read_text()
    assert proc.returncode == 0, stderr
    traffic_done = time.perf_counter()

    # ---- afterwards, as an operator, with the CLI only
    ledger = ["--ledger", "var/ledger.duckdb"]
    r = bsp(["audit", "verify", *ledger], tmp_path, env, timings)
    assert r.returncode == 0, r.stdout + r.stderr

    r = bsp(["deals", *ledger, "--limit", "0", "--json"], tmp_path, env, timings)
    assert r.returncode == 0, r.stderr
    deals = [json.loads(line) for line in r.stdout.splitlines()]
    by_ref: dict[str, list[dict]] = {}
    for d in deals:                  # a request rejected before its `deal` step has no reference yet
        trace = d["reference"] or (d["request"] or {}).get("trace_no") if isinstance(d["request"], dict) else "?"
        by_ref.setdefault(trace or "?", []).append(d)
    assert sorted(d["status"] for d in by_ref["G003"]) == ["committed", "duplicate"]
    assert sorted(d["status"] for d in by_ref["G005"]) == ["committed", "duplicate"]
    assert [(d["status"], d["response_code"]) for d in by_ref["R001"]] == [("rejected", "13")]
    assert [(d["deal_type"], d["status"]) for d in by_ref["U001"]] == [("UNROUTED", "rejected")]
    assert [(d["deal_type"], d["status"]) for d in by_ref["?"]] == [("MALFORMED", "rejected")]
    assert [d["status"] for d in by_ref["D001"]] == ["failed"]
    assert len(seen) == len({s["ref"] for s in seen}), "a reference reached the issuer twice"

    g0 = by_ref["G000"][0]
    r = bsp(["deals", "show", g0["deal_id"], *ledger], tmp_path, env, timings)
    assert r.returncode == 0, r.stderr
    assert "411111******1111" in r.stdout and PANS[0] not in r.stdout, r.stdout
    r = bsp(["deals", "show", g0["deal_id"], *ledger, "--reveal"], tmp_path, env, timings)
    assert r.returncode == 0, r.stderr
    assert PANS[0] in r.stdout, r.stdout

    r = bsp(["dead", "list", *ledger, "--json"], tmp_path, env, timings)
    assert r.returncode == 0, r.stderr
    dead = [json.loads(line) for line in r.stdout.splitlines()]
    kinds = sorted(d["error_kind"] for d in dead)
    assert "malformed" in kinds and "unrouted" in kinds, dead

    # no clear card number anywhere: the ledger's text columns, the capture, the engine's output
    forms = [p for pan in PANS for p in (pan, pan.encode("cp037").hex())]
    leaks = [(f, where) for f in forms for where, text in text_of_duckdb(tmp_path / "var" / "ledger.duckdb")
             if f in text]
    leaks += [(f, where) for f in forms for where, text in text_of_duckdb(capture) if f in text]
    leaks += [(f, name) for f in forms for name, text in [("stderr", stderr), ("stdout", out.read_text())]
              if f in text]
    assert leaks == [], leaks[:5]
    for blob in (capture.read_bytes(), (tmp_path / "var" / "ledger.duckdb").read_bytes()):
        for pan in PANS:
            assert pan.encode() not in blob and pan.encode("cp037") not in blob

    # a replay on the new configuration differs exactly for the exchanges the old one answered
    r = bsp(["replay", str(capture), "--config", "platform.yaml", "--json", "replay.json",
             "--progress-every", "0"], tmp_path, env, timings)
    report = json.loads((tmp_path / "replay.json").read_text())
    v1 = sorted({t for t, raws in replies.items() for raw in raws if reply_fields(raw)["msg_text"] == "approved V1"})
    differing = sorted({d["key"] for d in report["differences"]})
    assert r.returncode == 1, r.stdout + r.stderr
    assert differing == v1, (differing, v1, r.stdout)
    timings["verify total"] = time.perf_counter() - traffic_done
    timings["test total"] = time.perf_counter() - started
    print("timings:", {k: round(v, 2) for k, v in timings.items()})


def text_of_duckdb(path: Path) -> list[tuple[str, str]]:
    """Every text (and blob, as hex) column of every table, as (table.column, all values joined)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = []
        cols = con.execute("SELECT table_name, column_name, data_type FROM information_schema.columns "
                           "WHERE data_type IN ('VARCHAR', 'BLOB', 'JSON')").fetchall()
        for table, column, kind in cols:
            expr = f'hex("{column}")' if kind == "BLOB" else f'"{column}"'
            values = con.execute(f'SELECT {expr} FROM "{table}" WHERE "{column}" IS NOT NULL').fetchall()
            out.append((f"{table}.{column}", "\n".join(str(v[0]) for v in values)))
            if kind == "BLOB":
                raw = con.execute(f'SELECT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL').fetchall()
                out.append((f"{table}.{column} (bytes)", "\n".join(bytes(v[0]).decode("latin-1") for v in raw)))
        return out
    finally:
        con.close()
