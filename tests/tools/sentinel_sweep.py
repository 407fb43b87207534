"""Sentinel sweep: drive the failure paths of three shipped services with distinctive values and look
for each of them, in clear, in everything the engine produced.

    .venv/bin/python tests/tools/sentinel_sweep.py --work var/sweep

Where tests/tools/leak_scan.py drives the simulators' generated traffic, this one sends a handful of
requests by hand, each with values nothing else holds (a Luhn-valid PAN, a track 2, a PIN block, a
personal name and account, an IBAN) and each on one path: success, a repeat, a validation reject on
the classified field, an undecodable frame holding it, a bad MAC, a declined answer (`expect`), a
time-out with its 0420 reversal, a counterpart down and its dead letter retried, a compensation.  The
admin token, the ISO 8583 MAC key, the field keyring, the audit key and a deployment secret are
sentinels too.  Routes: copies of routes/card_payments (with an hmac-sha256 MAC on its format and the
BIN 499999 added), routes/bill_payment and routes/claims_payout.

Prints a table (place x sentinel); exit 1 when a sentinel is found in clear outside the documented
decrypted views (`bsp dead show --reveal`, `bsp deals show --reveal`).
"""
from __future__ import annotations

import argparse
import base64
import functools
import json
import os
import re
import shutil
import signal
import sys
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for p in (ROOT, ROOT / "tests" / "tools"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import trio  # noqa: E402

import leak_scan as ls  # noqa: E402

PAN = "4999991234567894"                 # Luhn-valid, BIN 499999 (added to the copied card_bins.csv)
PAN_MID = "9912345678"                   # the hidden middle digits (and around them)
PAN_BAD = "5999990001112226"             # unknown BIN (validation reject on the PAN itself)
TRACK2 = PAN + "=29122011777733300000"
PIN_BLOCK = "5EC4E75EC4E7C0DE"
ACCOUNT = "ACCT-SENTINEL-JANEDO"         # bill payment's personal account, 20 characters
NAME = "Zelda Sentinelova-Quux"
IBAN = "DE28370400440588776655"
ADMIN_TOKEN = "ADMTOKEN-SENTINEL-7f3a9c1e5b2d4a6c"
MAC_KEY = "MACKEY-SENTINEL-5b2d8e0f1a3c4e6a"
FIELD_KEY = base64.b64encode(b"FIELDKEY-SENTINEL-0123456789abcd").decode()
AUDIT_KEY = base64.b64encode(b"AUDITKEY-SENTINEL-0123456789abcdef").decode()
API_KEY = "APIKEY-SENTINEL-9a8b7c6d5e4f"

SENTINELS = {
    "PAN": PAN, "PAN middle": PAN_MID, "PAN (bad BIN)": PAN_BAD, "track 2 tail": "11777733300000",
    "PIN block": PIN_BLOCK, "account": ACCOUNT, "name": NAME, "IBAN": IBAN, "admin token": ADMIN_TOKEN,
    "MAC key": MAC_KEY, "field key (b64)": FIELD_KEY, "field key (raw)": "FIELDKEY-SENTINEL",
    "audit key (b64)": AUDIT_KEY, "audit key (raw)": "AUDITKEY-SENTINEL", "API key": API_KEY,
}


# Route tests whose expectations fail on a classified value (bsp test's failure texts).
SWEEP_TEST = f'''use "../routes/bill_payment/bill_payment.route"

test "expects another account at the biller" {{
    given mainframe sends BillPayReq {{
        txn_code = "BP01"  trace_no = "000000000001"  biller_id = "EL0001"
        account = "{ACCOUNT}"  amount = 120.50  currency = "CNY"  value_date = parse_date("20261125", "%Y%m%d")
    }}
    given biller answers BillerAck {{ status = "REFUSED"  confirmation = "C-77" }}
    expect call biller {{ account = "ACCT-OTHER-VALUE-000" }}
    expect reply {{ resp_code = "00"  message = "{ACCOUNT}" }}
    expect deal BILL_PAYMENT {{ status = "committed" }}
}}
'''


def copy_routes(work: Path) -> Path:
    dst = work / "routes"
    for name in ("card_payments", "bill_payment", "claims_payout", "common", "remittance"):
        shutil.copytree(ROOT / "routes" / name, dst / name, ignore=shutil.ignore_patterns("results"))
    route = dst / "card_payments" / "card_payments.route"
    text = route.read_text()
    old = "format CardIso = iso8583 iso8583_1987_ascii"
    assert old in text
    route.write_text(text.replace(old, old + ' mac_algorithm "hmac-sha256" mac_key_env "CARD_MAC_KEY" '
                                  'mac_exempt ["0800", "0810"]', 1))
    (dst / "card_payments" / "card_payments_test.route").unlink()     # MAC'd now: its tests do not apply
    with open(dst / "card_payments" / "card_bins.csv", "a") as f:
        f.write("499999,SWEEP TEST BIN,VISA,50000.00,USD\n")
    (dst / "claims_payout" / "results").mkdir()
    (work / "tests").mkdir()
    (work / "tests" / "sweep_test.route").write_text(SWEEP_TEST)
    return dst


def write_deployment(work: Path, routes: Path, overrides: dict[str, dict[str, Any]], keyring: bool = True) -> Path:
    import yaml
    keys = work / "keys"
    keys.mkdir()
    (keys / "audit.key").write_text(AUDIT_KEY)
    (keys / "field-keys.json").write_text(json.dumps({"current": "k1", "keys": {"k1": FIELD_KEY}}))
    for p in keys.iterdir():
        p.chmod(0o600)
    dep = {"version": 1,
           "routes": [str(routes / n / "*.route") for n in ("card_payments", "bill_payment", "claims_payout")],
           "ledger": {"path": str(work / "bsp.duckdb"), "audit_key": {"file": str(keys / "audit.key")},
                      **({"field_keys": {"file": str(keys / "field-keys.json")}} if keyring else {})},
           "admin": {"listen": "127.0.0.1:0", "token": {"env": "BSP_ADMIN_TOKEN"}},
           "secrets": {"biller_api_key": {"env": "BILLER_API_KEY"}, "card_mac": {"env": "CARD_MAC_KEY"}},
           "channels": overrides}
    path = work / "platform.yaml"
    path.write_text(yaml.safe_dump(dep, sort_keys=False))
    return path


def nasty_host(**kw: Any) -> Any:
    """The ISO host simulator, with answers that cannot be read for two STANs: 000778 gets a 0210 whose
    PAN (field 2) holds a letter, MAC'd right; 000779 bytes that are not ISO 8583 holding the PAN."""
    from engine.sim.iso_host import IsoHost

    class NastyHost(IsoHost):
        def _reply_bytes(self, req: dict[str, Any], unauthenticated: bool = False) -> bytes | None:
            if req.get("11") == "000778" and req.get("t") == "0200":
                good = super()._reply_bytes(req, unauthenticated)
                return retyped_pan(good, self.mac.key)
            if req.get("11") == "000779" and req.get("t") == "0200":
                return b"0210" + PAN.encode() + b" " + TRACK2.encode() + b" " + PIN_BLOCK.encode()
            return super()._reply_bytes(req, unauthenticated)
    return NastyHost(**kw)


def retyped_pan(good: bytes, key: bytes) -> bytes:
    """``good`` (a MAC'd ISO 8583 message holding PAN) with a letter in the PAN, MAC'd again."""
    from formats.mac import compute
    body, tail = good[:-16], good[-16:]
    mac = compute("hmac-sha256", key, body, 8)
    assert tail in (mac.hex().upper().encode(), mac.hex().encode()), (tail, mac.hex())
    body = body.replace(PAN.encode(), (PAN[:10] + "A" + PAN[11:]).encode(), 1)
    mac = compute("hmac-sha256", key, body, 8)
    return body + (mac.hex().upper().encode() if tail == tail.upper() else mac.hex().encode())


class Killable:
    """A simulator served in a cancel scope of its own: ``stop()`` takes it down, ``start()`` brings it
    back on the same port."""

    def __init__(self, nursery: trio.Nursery, sim: Any) -> None:
        self.nursery, self.sim, self.port, self.scope = nursery, sim, 0, None

    async def _run(self, port: int, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        with trio.CancelScope() as self.scope:
            await self.sim.serve("127.0.0.1", port, task_status=task_status)

    async def start(self) -> int:
        self.port = await self.nursery.start(self._run, self.port)
        return self.port

    def stop(self) -> None:
        self.scope.cancel()


async def exchange(port: int, payload: bytes, prefix: int = 2, timeout: float = 15) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all((len(payload)).to_bytes(prefix, "big") + payload)
        buf = b""
        with trio.move_on_after(timeout):
            while True:
                if len(buf) >= prefix and len(buf) >= prefix + int.from_bytes(buf[:prefix], "big"):
                    return buf[prefix:prefix + int.from_bytes(buf[:prefix], "big")]
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                buf += chunk
    return buf


async def send_raw(port: int, data: bytes, timeout: float = 3) -> bytes:
    """``data`` as it is (no framing added); whatever comes back until the peer closes or ``timeout``."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    buf = b""
    async with stream:
        try:
            await stream.send_all(data)
            with trio.move_on_after(timeout):
                while chunk := await stream.receive_some(65536):
                    buf += chunk
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
    return buf


async def together(answers: dict[str, bytes], probes: dict[str, Any]) -> None:
    """Run the probes at once; each one's answer under its name (a probe returning None files its own)."""
    async def one(name: str, probe: Any) -> None:
        got = await probe()
        if got is not None:
            answers[name] = got
    async with trio.open_nursery() as nursery:
        for name, probe in probes.items():
            nursery.start_soon(one, name, probe)


def http_post(url: str, body: bytes) -> bytes:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=20) as rsp:
            return rsp.read()
    except urllib.error.HTTPError as exc:
        return exc.read()


def admin(url: str, path: str, method: str = "GET") -> bytes:
    req = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=20) as rsp:
            return rsp.read()
    except urllib.error.HTTPError as exc:
        return exc.read()


def run(work: Path, echo: Any = print, keyring: bool = True, quick: bool = False) -> dict[str, Any]:
    from engine.sim.biller import BillerSim
    from engine.sim.services import claims_payout
    from engine.sim.services.counterpart import CounterpartSim
    from formats.iso8583 import codec_for
    from formats.iso8583.macs import MacPolicy, plan_mac
    from formats.mac import parse_key

    work = work.resolve()
    work.mkdir(parents=True, exist_ok=False)
    routes = copy_routes(work)
    env = dict(os.environ, BSP_ADMIN_TOKEN=ADMIN_TOKEN, CARD_MAC_KEY=MAC_KEY, BILLER_API_KEY=API_KEY,
               COLUMNS="200")
    for k in ("BSP_FIELD_KEYS", "BSP_FIELD_KEYS_FILE", "BSP_AUDIT_KEY", "BSP_AUDIT_KEY_FILE", "BSP_ENV",
              "BSP_ADMIN_URL", "BSP_ADMIN_TOKEN_FILE"):
        env.pop(k, None)
    plain = codec_for("iso8583_1987_ascii", validate=False)
    policy = MacPolicy("hmac-sha256", parse_key("hmac-sha256", MAC_KEY),
                       plan_mac(plain.spec, "hmac-sha256", None), None, frozenset({"0800", "0810"}))
    card = plain.with_mac(policy)
    wrong = plain.with_mac(MacPolicy("hmac-sha256", b"not the key at all, no", policy.slots, None, policy.exempt))
    out: dict[str, Any] = {"answers": {}}

    def iso(stan: str, rrn: str, pan: str = PAN, amount: str = "000000012550", codec: Any = card) -> bytes:
        return codec.encode({"t": "0200", "2": pan, "3": "000000", "4": amount, "7": "1126120000", "11": stan,
                             "35": TRACK2, "37": rrn, "41": "TERM0001", "49": "840", "52": PIN_BLOCK})

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            host = Killable(nursery, nasty_host(framing="length2", mac=policy, decline_amounts=("000000099999",),
                                             drop=lambda r: (r.get("11") == "000666" and r.get("t") == "0200")
                                             or (r.get("11") == "000667" and r.get("t") in ("0200", "0420", "0421"))))
            biller = Killable(nursery, BillerSim(refuse_digits="7"))
            sims = {"cp_host": host, "biller": biller}
            binder = None
            for cp in claims_payout.SERVICE.counterparts:
                if binder is None:
                    binder = _binder(routes)
                sims[cp.channel] = Killable(nursery, CounterpartSim(
                    cp.channel, binder.codec(cp.request_format), binder.codec(cp.reply_format), cp.answer,
                    framing=cp.framing, ref=cp.ref))
            overrides: dict[str, dict[str, Any]] = {}
            for name, sim in sims.items():
                overrides[name] = {"address": f"127.0.0.1:{await sim.start()}"}
            for name in ("cp_mainframe", "mainframe"):
                overrides[name] = {"address": "127.0.0.1:0"}
            overrides["clm_insurer"] = {"address": "127.0.0.1:0"}
            overrides["clm_results"] = {"dir": str(work / "results")}
            overrides["clm_voids"] = {"dir": str(work / "results")}
            (work / "results").mkdir()
            dep = write_deployment(work, routes, overrides, keyring)
            out["deployment"] = dep
            cmd = [ls.BSP, "run", str(dep), "--log-level", "debug", "-v", "--log-file", str(work / "engine.log"),
                   "--record", str(work / "capture.duckdb"), "--mask", "--grace", "10"]
            so = open(work / "engine.stdout", "wb")
            se = open(work / "engine.stderr", "wb")
            proc = await trio.lowlevel.open_process(cmd, stdout=so, stderr=se, env=env, cwd=str(work))
            try:
                ports, url = await ls.wait_ready(proc, work / "engine.stderr")
                ports = _listen_ports(work / "engine.stderr", ports)
                echo(f"sweep: engine ready {ports} admin {url}")
                a = out["answers"]
                cp, mf = ports["cp_mainframe"], ports["mainframe"]
                curl = f"http://127.0.0.1:{ports['clm_insurer']}/claims/settlements"
                billers = (routes / "bill_payment" / "billers.csv").read_text().splitlines()[1].split(",")[0]

                def bill(trace: str, biller_id: str = billers, amount: str = "000000012345") -> bytes:
                    return ("BP01" + trace.ljust(12) + biller_id + ACCOUNT.ljust(20) + amount + "CNY" +
                            "20261126").encode()

                def claim(cid: str, iban: str = IBAN, policy_no: str = "POL-12345") -> bytes:
                    return json.dumps({"claim_id": cid, "policy_no": policy_no, "product": "HEALTH01",
                                       "amount": 0, "currency": "EUR",
                                       "beneficiary": {"name": NAME, "iban": iban}}).encode().replace(
                                           b'"amount": 0', b'"amount": 120.50')

                def post(body: bytes, to: str = curl) -> Any:
                    return functools.partial(trio.to_thread.run_sync, http_post, to, body)

                def frame(port: int, data: bytes, timeout: float = 15) -> Any:
                    return functools.partial(exchange, port, data, timeout=timeout)

                async def twice(name: str, send: Any) -> None:      # the original, then its repeat
                    a[name] = await send()
                    a[name + " repeat"] = await send()

                probes = {
                    # -- card payments (ISO 8583, MAC'd)
                    "card ok": functools.partial(twice, "card ok", frame(cp, iso("000101", "SWEEP0000101"))),
                    "card bad BIN": frame(cp, iso("000102", "SWEEP0000102", pan=PAN_BAD)),
                    "card declined": frame(cp, iso("000103", "SWEEP0000103", amount="000000099999")),
                    "card timeout": frame(cp, iso("000666", "SWEEP0000666")),
                    "card timeout, reversal unanswered": frame(cp, iso("000667", "SWEEP0000667")),
                    "card answer with bad PAN": frame(cp, iso("000778", "SWEEP0000778")),
                    "card answer garbage": frame(cp, iso("000779", "SWEEP0000779")),
                    "card bad MAC": frame(cp, iso("000106", "SWEEP0000106", codec=wrong)),
                    # no answer to these (the channel has no `on error reply`): the deal is recorded anyway
                    "card bad PAN chars": frame(cp, retyped_pan(iso("000104", "SWEEP0000104"), policy.key), 2),
                    "card garbage": frame(cp, b"0200\xff\xfeGARBAGE " + PAN.encode() + b" " + TRACK2.encode() +
                                          b" " + NAME.encode(), 2),
                    "card garbage 2": frame(cp, b"0200X" + PAN.encode() + TRACK2.encode(), 2),
                    "card garbage 3": frame(cp, b"0200" + PAN.encode() + b"=" + PIN_BLOCK.encode(), 2),
                    "card unframed PAN": functools.partial(send_raw, cp, PAN.encode() + TRACK2.encode() +
                                                           PIN_BLOCK.encode(), 2),
                    "card oversized frame": functools.partial(send_raw, cp, b"\xff\xf0" + (PAN + TRACK2).encode() * 40, 2),
                    # -- bill payment (fixed records; account personal)
                    "bill ok": functools.partial(twice, "bill ok", frame(mf, bill("SWB000000001"))),
                    "bill unknown biller": frame(mf, bill("SWB000000002", "ZZZZZZ")),
                    "bill refused": frame(mf, bill("SWB000000007")),
                    "bill account not text": frame(mf, bill("SWB000000005").replace(b"JANEDO", b"JAN\xff\xfeO")),
                    "bill malformed": frame(mf, bill("SWB000000003", amount="00000ABC1234")),
                    "bill unframed": functools.partial(send_raw, mf, ACCOUNT.encode() * 3, 2),
                    "bill oversized frame": functools.partial(send_raw, mf, b"\x20\x00" + ACCOUNT.encode() * 300, 2),
                    # -- claims payout (JSON over HTTP; beneficiary name and IBAN personal)
                    "claim ok": functools.partial(twice, "claim ok", post(claim("SWC-1"))),
                    "claim bad IBAN": post(claim("SWC-2", iban=IBAN[:-1] + "9")),
                    "claim credit refused": post(claim("SWC-3F")),
                    "claim malformed": post(b'{"claim_id": "SWC-4", "beneficiary": {"name": "' + NAME.encode() +
                                            b'", "iban": "' + IBAN.encode() + b'"}, "amount": 12,,}'),
                    "claim bad type": post(json.dumps({"claim_id": "SWC-5", "policy_no": "P", "product": "HEALTH01",
                                                       "amount": "abc", "currency": "EUR",
                                                       "beneficiary": {"name": {"x": NAME}, "iban": IBAN}}).encode()),
                    "claim duplicate name key": post(claim("SWC-7").replace(
                        b'"beneficiary": {', b'"beneficiary": {"name": "' + NAME.encode() + b'", ', 1).replace(
                        b'"name": "' + NAME.encode() + b'", "iban"', b'"name": "Other Person", "iban"')),
                    "claim escaped name": post(claim("SWC-8").replace(NAME.encode(), "".join(
                        f"\\u{ord(c):04x}" for c in NAME).encode())),
                    "claim name as list": post(claim("SWC-9").replace(b'"' + NAME.encode() + b'"',
                                                                      b'["' + NAME.encode() + b'"]')),
                    "http wrong path with PAN": post(claim("SWC-10"), f"{curl[:-len('/settlements')]}/{PAN}?iban={IBAN}"),
                }
                await together(a, probes)
                # -- the counterparts down
                for name in ("cp_host", "biller", "clm_mainframe"):
                    sims[name].stop()
                await trio.sleep(0.3)
                await together(a, {"card host down": frame(cp, iso("000107", "SWEEP0000107")),
                                   "bill biller down": frame(mf, bill("SWB000000004")),
                                   "claim mainframe down": post(claim("SWC-6"))})
                # -- counterparts back, dead letters retried
                for name in ("cp_host", "biller", "clm_mainframe"):
                    await sims[name].start()
                await trio.sleep(1.0)
                dead = json.loads(await trio.to_thread.run_sync(admin, url, "/dead-letters?limit=1000"))
                rows = dead.get("dead_letters", dead.get("items", [])) if isinstance(dead, dict) else dead
                out["dead"] = rows
                retried = []
                for r in rows:
                    i = r.get("id")
                    retried.append(await trio.to_thread.run_sync(admin, url, f"/dead-letters/{i}/retry", "POST"))
                admin_extra = {"admin POST /dead-letters/{id}/retry (each)": b"\n".join(retried),
                               "admin GET /status?token=TOKEN": await trio.to_thread.run_sync(
                                   _get, f"{url}/status?token={ADMIN_TOKEN}")}
                await trio.sleep(1.0)
                admin_out = await trio.to_thread.run_sync(ls.read_admin, url, ADMIN_TOKEN, 100)
                if not quick:
                    st = await trio.to_thread.run_sync(ls.run_cli, ["status", "--url", url], env, work)
                    admin_out["bsp status"] = st
                    admin_out["bsp deals --live"] = await trio.to_thread.run_sync(
                        ls.run_cli, ["deals", "--live", "--url", url, "--limit", "0"], env, work)
                admin_out["admin GET /status (wrong token)"] = await trio.to_thread.run_sync(
                    _wrong_token, url)
                out["admin"] = {**admin_out, **admin_extra}
                live = work / "live"                      # the journal and the txn log while the engine runs
                live.mkdir()
                for f in [*(work / "bsp.duckdb.journal").glob("*"), *work.glob("bsp.duckdb*")]:
                    if f.is_file():
                        shutil.copy(f, live / f.name)
            finally:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
                with trio.move_on_after(60):
                    await proc.wait()
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                out["engine_exit"] = proc.returncode
                so.close()
                se.close()
            nursery.cancel_scope.cancel()

    trio.run(main)
    echo(f"sweep: engine exit {out['engine_exit']}; exporting with the CLI")
    d = ["--deployment", str(out["deployment"])]
    if quick:                # the operator's JSON views of the ledger only (each CLI start costs ~1 s)
        cli = {"bsp deals --json --limit 0": ls.run_cli(["deals", *d, "--limit", "0", "--json"], env, work),
               "bsp dead list --json": ls.run_cli(["dead", "list", *d, "--limit", "0", "--json"], env, work)}
        decrypted: dict[str, bytes] = {}
    else:
        cli, decrypted = ls.exports(work, out["deployment"], env, 100, ("csv", "html", "xlsx", "parquet"))
        cli["bsp test (failing expects)"] = ls.run_cli(["test", str(work / "tests" / "sweep_test.route")], env, work)
        cli["bsp replay"] = ls.run_cli(["replay", str(work / "capture.duckdb"), "--config", str(out["deployment"]),
                                        "--json", str(work / "reports" / "replay.json"),
                                        "--html", str(work / "reports" / "replay.html")], env, work)
        dead_ids = [str(r.get("id")) for r in out.get("dead", [])][:6]
        cli["bsp dead retry (no --live, counterparts gone)"] = ls.run_cli(["dead", "retry", *d, *dead_ids], env, work)
        cli["bsp replay --to-tests"] = ls.run_cli(["replay", str(work / "capture.duckdb"), "--config",
                                                   str(out["deployment"]), "--to-tests",
                                                   str(work / "reports" / "to-tests")], env, work)
        for f in sorted((work / "reports" / "to-tests").glob("*")):
            cli[f"to-tests {f.name}"] = f.read_bytes()
    ls.save(work / "out", {**out["admin"], **cli, **{k: v for k, v in out["answers"].items()}})
    ls.save(work / "decrypted", decrypted)
    arts, dec = ls.collect(work)
    for p in sorted((work / "results").glob("*")):
        arts[f"results/{p.name} (business output)"] = p.read_bytes()
    arts.update(ls.file_bytes(sorted((work / "live").glob("*")), work))
    out["artefacts"], out["decrypted"] = arts, dec
    return out


def _get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=10) as rsp:
            return rsp.read()
    except urllib.error.HTTPError as exc:
        return exc.read()


def _wrong_token(url: str) -> bytes:
    req = urllib.request.Request(url + "/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}x"})
    try:
        with urllib.request.urlopen(req, timeout=10) as rsp:
            return rsp.read()
    except urllib.error.HTTPError as exc:
        return exc.read()


def _binder(routes: Path) -> Any:
    from engine.runtime.binder import Binder
    program, registry = _program(routes)
    return Binder(program, registry)


def _program(routes: Path) -> Any:
    from dsl.load import compile_paths
    from engine.sim.services.registry import services_registry
    registry = services_registry()
    res = compile_paths(sorted((routes / "claims_payout").glob("*.route")), registry)
    assert res.program is not None
    return res.program, registry


def _listen_ports(stderr: Path, ports: dict[str, int]) -> dict[str, int]:
    import re
    text = stderr.read_text(errors="replace")
    for m in re.finditer(r"^channel (\S+): listen (?:https?://)?\S+?:(\d+)", text, re.M):
        ports.setdefault(m.group(1), int(m.group(2)))
    return ports


def sweep(arts: dict[str, bytes]) -> dict[str, dict[str, str]]:
    """{artefact: {sentinel: how it was found}} for every hit."""
    hits: dict[str, dict[str, str]] = {}
    for label, text in SENTINELS.items():
        forms = ls.variants(text)
        for name, data in arts.items():
            low = data.lower()
            for how, needle in forms.items():
                hay = data if how.startswith(("cp037", "hex", "HEX")) else low
                if (needle if hay is data else needle.lower()) in hay:
                    hits.setdefault(name, {})[label] = how
                    break
    return hits


# Where a sentinel is expected, by design: what goes back to the sender that sent it (a 404 naming the
# path asked for), and the business output the route writes on purpose (the claim result files).
# A failing route test quotes the values its own test file holds (bsp test).
BY_DESIGN = ("answer to the sender", "business output", "bsp test failures (the test file's own values)")


def place(name: str, answers: set[str]) -> str:
    """The group an artefact belongs to, for the table."""
    stem = name.removeprefix("out/").removesuffix(".txt")
    if name.startswith("out/") and stem in answers:
        return "answer to the sender"
    if name.startswith("results/"):
        return "business output"
    if "bsp_test" in name:
        return "bsp test failures (the test file's own values)"
    if name.startswith("live/"):
        return "journal / txn log (while running)"
    if "table" in name and name.startswith("bsp.duckdb"):
        return "ledger tables (SQL)"
    if name.startswith("bsp.duckdb.txn"):
        return "txn log (after stop)"
    if name.startswith("bsp.duckdb"):
        return "ledger files (bytes)"
    if name.startswith("capture.duckdb"):
        return "capture (tables, bytes)"
    if name in ("engine.log", "engine.stderr", "engine.stdout"):
        return "engine log / output"
    if name.startswith("out/admin_GET_metrics"):
        return "admin /metrics"
    if stem.startswith("admin") or name.startswith("out/bsp_status") or "--live" in name:
        return "admin API answers"
    if name.startswith("reports/") or "report" in name or "reconcile" in name or "replay" in name \
            or "to-tests" in name:
        return "reports, reconciliation, replay"
    if name.startswith("decrypted/"):
        return "decrypted views (deals show --reveal, dead show --reveal)"
    if name.startswith("out/"):
        return "CLI output (deals, dead, audit, test)"
    return name


def table(res: dict[str, Any]) -> tuple[str, list[str]]:
    """(the place x sentinel table as text, the leaks: hits outside BY_DESIGN and the decrypted views)."""
    answers = {re.sub(r"[^A-Za-z0-9._-]+", "_", k).strip("_") for k in res["answers"]}
    arts = {**res["artefacts"], **{f"decrypted/{k}": v for k, v in res["decrypted"].items()}}
    places: dict[str, dict[str, str]] = {}
    for name, hits in sweep(arts).items():
        for label, how in hits.items():
            places.setdefault(place(name, answers), {}).setdefault(label, f"{name} ({how})")
    groups = sorted({place(n, answers) for n in arts})
    labels = list(SENTINELS)
    lines = ["place | " + " | ".join(labels)]
    leaks = []
    for g in groups:
        found = places.get(g, {})
        lines.append(g + " | " + " | ".join("FOUND" if lb in found else "-" for lb in labels))
        if g not in BY_DESIGN and not g.startswith("decrypted"):
            leaks += [f"{g}: {lb} in {where}" for lb, where in found.items()]
    return "\n".join(lines), leaks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--no-keyring", action="store_true", help="no field keyring (pan/personal masked only)")
    ap.add_argument("--quick", action="store_true", help="skip the reports, replays and per-deal CLI views")
    args = ap.parse_args(argv)
    res = run(args.work, keyring=not args.no_keyring, quick=args.quick)
    for name, data in res["answers"].items():
        print(f"  {name}: {data[:160]!r}")
    text, leaks = table(res)
    print(f"\n{len(res['artefacts'])} artefacts\n{text}\n")
    for line in leaks:
        print("LEAK " + line)
    return 1 if leaks else 0


if __name__ == "__main__":
    sys.exit(main())
