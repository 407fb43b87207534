"""A key file rewritten in place (the field keyring rotated as docs/security.md says) is not read again by a
reload: the reload must say so, naming the setting, instead of reporting a quiet success while the engine
goes on encrypting with the old key.  A real deployment file, key files, ledger and sockets (port 0)."""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import trio

from engine.commands.run import _expand
from engine.deploy import load_deployment
from engine.ledger import open_ledger
from engine.metrics import Metrics
from engine.ops import runopts
from engine.ops.live import LiveEngine
from engine.ops.observe import Observer
from engine.registry import default_registry
from opskit import ECHO, compile_file


def keyring(current: str, *ids: str) -> str:
    return json.dumps({"current": current, "keys": {i: base64.b64encode(os.urandom(32)).decode() for i in ids}})


async def test_a_reload_after_the_keyring_file_was_rewritten_warns_that_it_takes_a_restart(tmp_path: Path) -> None:
    (tmp_path / "r.route").write_text(ECHO % "x")
    (tmp_path / "field-keys.json").write_text(keyring("k1", "k1"))
    yaml = tmp_path / "platform.yaml"
    yaml.write_text("version: 1\nroutes: [r.route]\nledger:\n  path: l.duckdb\n"
                    "  field_keys: {file: field-keys.json}\n")
    registry = default_registry()
    program = compile_file(tmp_path / "r.route", registry)
    load = runopts.loader([yaml], yaml, None, _expand)
    async with open_ledger(tmp_path / "l.duckdb") as ledger:
        eng = LiveEngine(registry, ledger, load=load, observer=Observer(Metrics()), grace=2)
        async with trio.open_nursery() as nursery:
            await nursery.start(eng.run, program, load_deployment(yaml).channel_overrides)
            try:
                result = await eng.reload()                       # nothing rewritten: no warning
                assert result.ok and not result.warnings, result
                (tmp_path / "field-keys.json").write_text(keyring("k2", "k1", "k2"))
                for dry_run in (True, False):
                    result = await eng.reload(dry_run=dry_run)
                    assert result.ok, result
                    assert list(result.warnings) == [
                        "ledger.field_keys: its file was rewritten since the engine started; a reload does not "
                        "read it again: the engine goes on with what it read at start until the next restart"]
            finally:
                eng.drain()
