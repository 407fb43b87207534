"""Every shipped route file compiles, alone and all together in one engine."""
from __future__ import annotations

from pathlib import Path

import pytest

from dsl.diagnostics import render
from dsl.load import compile_paths
from engine.sim.services.catalog import SERVICES
from engine.sim.services.registry import services_registry

ROUTES = Path(__file__).resolve().parents[2] / "routes"
ROUTE_FILES = sorted(ROUTES.rglob("*.route"))
SERVICE_DIRS = sorted({p.parent.name for p in ROUTE_FILES} - {"common", "bill_payment"})


def _errors(res) -> str:
    sources = {}
    for d in res.diagnostics:
        f = getattr(d.pos, "file", None)
        if f and f not in sources and Path(f).exists():
            sources[f] = Path(f).read_text()
    return "\n".join(render(d, sources) for d in res.diagnostics if d.severity == "error")


@pytest.mark.parametrize("path", ROUTE_FILES, ids=lambda p: str(p.relative_to(ROUTES)))
def test_route_file_compiles(path):
    res = compile_paths([path], services_registry())
    assert res.program is not None, _errors(res)
    assert not [d for d in res.diagnostics if d.severity == "error"]


def test_all_routes_compile_into_one_engine():
    res = compile_paths(ROUTE_FILES, services_registry())
    assert res.program is not None, _errors(res)
    # distinct ports per channel (docs/services/README.md's port plan)
    addresses = [c.options["address"] for c in res.program.channels.values() if "address" in c.options]
    assert len(addresses) == len(set(addresses)), sorted(addresses)


def unsimulated(folders, simulated) -> str:
    """What to do about route folders without a simulation and simulations without a folder ("" when none)."""
    missing, stale = sorted(set(folders) - set(simulated)), sorted(set(simulated) - set(folders))
    lines = [f"routes/{name}/ has no simulator: add engine/sim/services/{name}.py (a request generator and its "
             f"counterparts' answers, as engine/sim/services/premium_collection.py) and list its SERVICE in "
             f"engine/sim/services/catalog.py (docs/tour-analyst.md, section 5)" for name in missing]
    lines += [f"engine/sim/services/catalog.py lists a service {name!r} that has no folder routes/{name}/"
              for name in stale]
    return "\n".join(lines)


def test_an_unsimulated_folder_is_told_with_what_to_add():
    said = unsimulated(["customs_duty", "sales"], ["sales", "gone"])
    assert "routes/customs_duty/ has no simulator: add engine/sim/services/customs_duty.py" in said
    assert "engine/sim/services/catalog.py" in said and "'gone' that has no folder routes/gone/" in said
    assert unsimulated(["sales"], ["sales"]) == ""


def test_every_service_folder_has_a_simulation_and_a_page():
    simulated = {s.name for s in SERVICES}
    assert set(SERVICE_DIRS) == simulated, unsimulated(SERVICE_DIRS, simulated)
    docs = Path(__file__).resolve().parents[2] / "docs" / "services"
    for name in SERVICE_DIRS:
        assert (docs / f"{name}.md").exists(), f"docs/services/{name}.md is missing"


def test_simulators_name_declared_channels_and_formats():
    res = compile_paths(ROUTE_FILES, services_registry())
    prog = res.program
    for svc in SERVICES:
        assert prog.channels[svc.inbound].kind == {"file": "file.watch", "http": "http.listen"}.get(
            svc.transport, "tcp.listen"), svc.name
        if svc.transport == "http":
            assert prog.channels[svc.inbound].options["path"] == svc.http_path, svc.name
        if svc.transport == "file":
            assert prog.channels[svc.ack_channel].kind == "file.write", svc.name
        for channel, _factory in svc.hosts:
            assert prog.channels[channel].kind == "tcp.connect", (svc.name, channel)
        for fmt in (svc.request_format, svc.reply_format):
            assert fmt in prog.formats, (svc.name, fmt)
        for cp in svc.counterparts:
            assert prog.channels[cp.channel].kind == "tcp.connect", (svc.name, cp.channel)
            assert cp.framing == prog.channels[cp.channel].options.get("framing", "length2"), (svc.name, cp.channel)
