"""Crash probe: card payments and customer services under load with a distinctive PAN, account and name
(good, declined, rejected, undecodable and unrouted requests), ``bsp run`` killed with SIGKILL in the middle
(the write-ahead journal, the transaction log and the capture left as a crash leaves them, copied to
``crashed/``), started again (recovery), the admin API read (``/deals``, ``/dead-letters``, ``/metrics``
...), then ``bsp deals``, ``deals show``, ``dead list``, ``dead show`` (decrypted: ``decrypted/``), reports
and ``audit verify``.  Every file under the work folder, and every table of every DuckDB file in it, is
grepped for the values as is, in cp037, as hex, BCD, COMP-3 and UTF-16; each hit is printed.

    .venv/bin/python tests/tools/crash_probe.py var/crash                      # keyring, --mask
    .venv/bin/python tests/tools/crash_probe.py var/crash2 --no-keyring --no-mask

Expected hits with a keyring and --mask: ``decrypted/`` (bsp dead show) and the customer services
``agent`` (the deal's party, not classified: the probe puts the name there on purpose, to show where a
party goes).  docs/security.md#what-is-not-protected-and-why."""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "tools")]
import trio  # noqa: E402

import leak_scan as ls  # noqa: E402
import sentinel_sweep as ss  # noqa: E402

PAN = "4999991357924687"
ACCT = "62229753108642097531"          # 20 digits, personal (customer service)
NAME = "Quirinus Sentinelbaum"
SENT = {"PAN": PAN, "PAN middle": PAN[6:12], "ACCT": ACCT, "ACCT mid": ACCT[4:14], "NAME": NAME}



def forms(v: str) -> dict[str, bytes]:
    out = {"as is": v.encode(), "cp037": v.encode("cp037"), "hex": v.encode().hex().encode(),
           "hex cp037": v.encode("cp037").hex().encode()}
    if v.isdigit():
        d = v if len(v) % 2 == 0 else "0" + v
        out["BCD"] = bytes.fromhex(d)
        out["COMP-3"] = bytes.fromhex(("0" if len(v) % 2 == 0 else "") + v + "C")
        out["utf16"] = v.encode("utf-16-le")
    return out


def grep(work: Path) -> list[str]:
    hits = []
    arts: dict[str, bytes] = {}
    for p in sorted(work.rglob("*")):
        if not p.is_file() or "routes" in p.parts or p.suffix == ".py":
            continue
        rel = str(p.relative_to(work))
        arts[rel] = p.read_bytes()
        if p.suffix == ".duckdb" and not p.name.endswith(".wal"):
            try:
                tmp = work.parent / f".{work.name}-dbcopy" / rel.replace("/", "_")    # opened read-only: a copy
                tmp.parent.mkdir(exist_ok=True)
                shutil.copy(p, tmp)
                if Path(str(p) + ".wal").exists():
                    shutil.copy(str(p) + ".wal", str(tmp) + ".wal")
                for k, v in ls.duckdb_text(tmp).items():
                    arts[rel + " :: " + k] = v
            except Exception as exc:      # noqa: BLE001
                arts[rel + " :: (cannot open)"] = str(exc).encode()
    for label, v in SENT.items():
        for how, needle in forms(v).items():
            for name, data in arts.items():
                at = data.find(needle)
                if at >= 0:
                    ctx = data[max(0, at - 80):at + len(needle) + 80]
                    hits.append(f"{label}\t{how}\t{name}\t{ctx!r}")
    return hits


async def main(work: Path, keyring: bool, mask: bool) -> None:
    from engine.sim.iso_host import IsoHost
    from engine.sim.services import customer_service as csmod
    from engine.sim.services.counterpart import CounterpartSim
    from formats.iso8583 import codec_for

    work.mkdir(parents=True)
    dst = work / "routes"
    for name in ("card_payments", "customer_service", "common"):
        shutil.copytree(ROOT / "routes" / name, dst / name)
    with open(dst / "card_payments" / "card_bins.csv", "a") as f:
        f.write("499999,PCI TEST BIN,VISA,50000.00,USD\n")
    card = codec_for("iso8583_1987_ascii", validate=False)
    env = dict(os.environ, BSP_ADMIN_TOKEN=ss.ADMIN_TOKEN, COLUMNS="200")
    for k in ("BSP_FIELD_KEYS", "BSP_FIELD_KEYS_FILE", "BSP_AUDIT_KEY", "BSP_AUDIT_KEY_FILE"):
        env.pop(k, None)

    async with trio.open_nursery() as nursery:
        host = ss.Killable(nursery, IsoHost(framing="length2", delay=0.4, decline_amounts=("000000099999",)))
        from engine.sim.services.registry import services_registry
        from dsl.load import compile_paths
        from engine.runtime.binder import Binder
        reg = services_registry()
        res = compile_paths(sorted((dst / "customer_service").glob("*.route")), reg)
        b = Binder(res.program, reg)
        cp = csmod.SERVICE.counterparts[0]
        mf = ss.Killable(nursery, CounterpartSim(cp.channel, b.codec(cp.request_format), b.codec(cp.reply_format),
                                                 cp.answer, framing=cp.framing, ref=cp.ref))
        ov = {"cp_host": {"address": f"127.0.0.1:{await host.start()}"},
              "cs_mainframe": {"address": f"127.0.0.1:{await mf.start()}"},
              "cp_mainframe": {"address": "127.0.0.1:0"}, "cs_crm": {"address": "127.0.0.1:0"}}
        import yaml
        keys = work / "keys"
        keys.mkdir()
        (keys / "audit.key").write_text(ss.AUDIT_KEY)
        (keys / "fk.json").write_text(json.dumps({"current": "k1", "keys": {"k1": ss.FIELD_KEY}}))
        for p in keys.iterdir():
            p.chmod(0o600)
        dep = {"version": 1, "routes": [str(dst / n / "*.route") for n in ("card_payments", "customer_service")],
               "ledger": {"path": str(work / "bsp.duckdb"), "audit_key": {"file": str(keys / "audit.key")},
                          **({"field_keys": {"file": str(keys / "fk.json")}} if keyring else {})},
               "admin": {"listen": "127.0.0.1:0", "token": {"env": "BSP_ADMIN_TOKEN"}}, "channels": ov}
        depf = work / "platform.yaml"
        depf.write_text(yaml.safe_dump(dep, sort_keys=False))

        async def start(tag: str, record: bool):
            cmd = [ls.BSP, "run", str(depf), "--log-level", "debug", "-v", "--log-file", str(work / f"{tag}.log")]
            if record:
                cmd += ["--record", str(work / f"capture-{tag}.duckdb"), "--mask" if mask else "--no-mask"]
            se = work / f"{tag}.stderr"
            proc = await trio.lowlevel.open_process(cmd, stdout=open(work / f"{tag}.stdout", "wb"),
                                                    stderr=open(se, "wb"), env=env, cwd=str(work))
            ports, url = await ls.wait_ready(proc, se)
            ports = ss._listen_ports(se, ports)
            return proc, ports, url

        proc, ports, url = await start("run1", True)
        print("ready", ports, url, flush=True)
        n = [0]

        def iso(i: int, pan: str = PAN, amount: str = "000000012550", mti: str = "0200") -> bytes:
            return card.encode({"t": mti, "2": pan, "3": "000000", "4": amount, "7": "1126120000",
                                "11": f"{i % 1000000:06d}", "35": pan + "=29122011777733300000",
                                "37": f"PCI{i:09d}", "41": "TERM0001", "49": "840", "52": "5EC4E75EC4E7C0DE"})

        def crm(i: int, **kw) -> bytes:
            v = {"type": "BALANCE", "request_id": f"PCICS{i:011d}", "account": ACCT, "currency": "CNY",
                 "agent": NAME}
            v.update(kw)
            return json.dumps(v).encode()

        async def one(i: int) -> None:
            k = i % 10
            try:
                if k in (0, 1, 2):
                    await ss.exchange(ports["cp_mainframe"], iso(i), timeout=10)
                elif k == 3:
                    await ss.exchange(ports["cp_mainframe"], iso(i, amount="000000099999"), timeout=10)
                elif k == 4:
                    await ss.exchange(ports["cp_mainframe"], iso(i, pan="5999990001112226"), timeout=10)
                elif k == 5:
                    await ss.exchange(ports["cp_mainframe"], b"0200\xff" + PAN.encode() + b" " + NAME.encode(), timeout=3)
                elif k == 6:
                    await ss.exchange(ports["cs_crm"], crm(i), prefix=4, timeout=10)
                elif k == 7:
                    await ss.exchange(ports["cs_crm"], crm(i, currency="XAU"), prefix=4, timeout=10)
                elif k == 8:
                    await ss.exchange(ports["cs_crm"], crm(i)[:-3] + b",,}", prefix=4, timeout=3)
                else:
                    await ss.exchange(ports["cp_mainframe"], iso(i, mti="0100"), timeout=3)
            except Exception:   # noqa: BLE001 - counted: the kill cuts requests short
                n[0] += 1

        async def load(seconds: float) -> None:
            i = 0
            async with trio.open_nursery() as nn:
                with trio.move_on_after(seconds):
                    while True:
                        i += 1
                        nn.start_soon(one, i)
                        await trio.sleep(0.004)
        await load(1.5)                    # background; kill in the middle of the next burst
        async with trio.open_nursery() as nn:
            nn.start_soon(load, 3.0)
            await trio.sleep(1.5)
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            print("killed", proc.returncode, flush=True)
        crashed = work / "crashed"
        crashed.mkdir()
        for f in work.iterdir():
            if f.name.startswith(("bsp.duckdb", "capture")):
                (shutil.copytree if f.is_dir() else shutil.copy)(f, crashed / f.name)
        # restart: recovery
        proc, ports, url = await start("run2", False)
        await trio.sleep(4)
        adm = await trio.to_thread.run_sync(ls.read_admin, url, ss.ADMIN_TOKEN, 30)
        (work / "admin").mkdir()
        for k2, v in adm.items():
            (work / "admin" / (k2.replace("/", "_").replace(" ", "_")[:100] + ".txt")).write_bytes(v)
        proc.send_signal(signal.SIGTERM)
        await proc.wait()
        host.stop()
        mf.stop()
        nursery.cancel_scope.cancel()
    d = ["--deployment", str(depf)]
    cli = work / "cli"
    cli.mkdir()
    import duckdb
    con = duckdb.connect(str(work / "bsp.duckdb"), read_only=True)
    deals = [r[0] for r in con.execute("SELECT deal_id FROM deals USING SAMPLE 30 ROWS").fetchall()]
    deads = [r[0] for r in con.execute("SELECT id FROM dead_letters LIMIT 10").fetchall()]
    print("deals", con.execute("SELECT status, count(*) FROM deals GROUP BY 1").fetchall(),
          "dead", con.execute("SELECT count(*) FROM dead_letters").fetchall(), flush=True)
    con.close()
    (cli / "deals.txt").write_bytes(ls.run_cli(["deals", *d, "--limit", "0"], env, work))
    (cli / "deals_show.txt").write_bytes(b"\n".join(ls.run_cli(["deals", "show", str(i), *d], env, work) for i in deals[:15]))
    (cli / "deals_show_json.txt").write_bytes(b"\n".join(ls.run_cli(["deals", "show", str(i), *d, "--json"], env, work) for i in deals[15:]))
    (cli / "dead_list.txt").write_bytes(ls.run_cli(["dead", "list", *d, "--limit", "0", "--json"], env, work))
    (work / "decrypted").mkdir()
    (cli / "dead_show.txt").write_bytes(b"\n".join(ls.run_cli(["dead", "show", str(i), *d], env, work) for i in deads[:3]))
    (work / "decrypted" / "dead_show_reveal.txt").write_bytes(
        b"\n".join(ls.run_cli(["dead", "show", str(i), *d, "--reveal"], env, work) for i in deads[:3]))
    for rep in ("daily-summary", "rejections"):
        for fmt in ("csv", "html", "json"):
            ls.run_cli(["report", rep, *d, "--from", "today", "--format", fmt, "--out", str(cli / f"{rep}.{fmt}")], env, work)
    (cli / "audit.txt").write_bytes(ls.run_cli(["audit", "verify", *d], env, work))
    print("client errors", n[0])


if __name__ == "__main__":
    w = Path(sys.argv[1]).resolve()
    keyring = "--no-keyring" not in sys.argv
    mask = "--no-mask" not in sys.argv
    if not w.exists():
        trio.run(main, w, keyring, mask)
    for h in grep(w):
        print(h[:400])
