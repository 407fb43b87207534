"""`bsp replay --config platform.yaml --env ENV`: the candidate is the deployment, as `bsp run` takes it (its
route files and its environment's channel overrides), so against a recording made by that deployment the
candidate's configuration version is the recorded one when nothing changed, and changes when an override
does (engine/ops/effective.py).  A real recorded session (real sockets, a real ledger), the real CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import trio

from dsl.load import compile_paths
from engine.deploy import load_deployment
from engine.ledger import open_ledger
from engine.ops.effective import with_deployment
from engine.ops.files import with_referenced_files
from engine.ops.overrides import resolve_paths
from engine.registry import default_registry
from engine.replay.tap import recording
from engine.runtime import Switchboard
from engine.sim.biller import BillerSim
from engine.sim.mainframe import MainframeSim
from replaykit import config_copy

BSP = Path(sys.executable).parent / "bsp"

DEPLOYMENT = '''version: 1
routes:
  - bill/bill_payment.route
environments:
  uat:
    channels:
      biller: {timeout: 5s}
'''


def _record(tmp: Path, deployment: Path, env: str, count: int) -> tuple[Path, str]:
    """A session served as `bsp run platform.yaml --env ENV --record` serves it: the program versioned over
    the route files, the files they name and the environment's overrides (the test's sockets on port 0)."""
    registry = default_registry()
    dep = load_deployment(deployment, env=env)
    program = compile_paths(list(dep.route_files), registry).program
    program = with_deployment(with_referenced_files(program), dep.channel_overrides, registry)
    capture = tmp / "session.duckdb"
    with recording(program, registry, capture, mask=False) as (rreg, _):
        async def main() -> None:
            biller = BillerSim()
            async with trio.open_nursery() as sims:
                await sims.start(biller.serve)
                async with open_ledger(tmp / "ledger.duckdb", audit_key=None, keyring=None) as ledger:
                    bound = resolve_paths(dep.channel_overrides, program, registry)
                    bound["mainframe"] = {"address": "127.0.0.1:0"}
                    bound["biller"] = {**bound.get("biller", {}), "address": f"127.0.0.1:{biller.port}"}
                    sb = Switchboard(program, rreg, ledger=ledger, overrides=bound)
                    async with trio.open_nursery() as nursery:
                        await nursery.start(sb.run)
                        mf = MainframeSim(sb.ctx.codec("BillPayReq"))
                        res = await mf.run(sb.channel("mainframe").port, total=count, connections=2)
                        assert res.replies == count
                        sb.drain()
                sims.cancel_scope.cancel()

        trio.run(main)
    return capture, program.version


def _replay(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BSP), "replay", *args, "--progress-every", "0"], cwd=tmp, capture_output=True,
                          text=True, timeout=180)


def test_the_deployment_file_is_the_candidate_and_its_version_is_the_recorded_one(tmp_path: Path) -> None:
    config_copy(tmp_path / "bill")
    deployment = tmp_path / "platform.yaml"
    deployment.write_text(DEPLOYMENT)
    capture, recorded = _record(tmp_path, deployment, "uat", 20)
    plain = with_referenced_files(compile_paths([tmp_path / "bill" / "bill_payment.route"],
                                                default_registry()).program).version
    assert recorded != plain                                   # the override is part of the recorded version

    r = _replay(tmp_path, str(capture), "--config", str(deployment), "--env", "uat", "--json", "r.json")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads((tmp_path / "r.json").read_text())["summary"]
    assert report["config_version"] == recorded == report["recorded_config_version"], report
    assert report["result"] == "pass"

    # another environment (here: the base settings, no override) is another configuration
    r = _replay(tmp_path, str(capture), "--config", str(deployment), "--json", "base.json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads((tmp_path / "base.json").read_text())["summary"]["config_version"] == plain


def test_env_without_a_deployment_file_and_a_deployment_file_with_others_are_usage_errors(tmp_path: Path) -> None:
    config_copy(tmp_path / "bill")
    deployment = tmp_path / "platform.yaml"
    deployment.write_text(DEPLOYMENT)
    capture, _ = _record(tmp_path, deployment, "uat", 3)
    r = _replay(tmp_path, str(capture), "--config", "bill", "--env", "uat")
    assert r.returncode == 2
    assert "error: --env uat: an environment is chosen in a deployment file; give --config platform.yaml" in r.stderr
    r = _replay(tmp_path, str(capture), "--config", str(deployment), "--config", "bill")
    assert r.returncode == 2
    assert f"error: --config {deployment}: a deployment file is given alone, as bsp run takes it" in r.stderr
