"""`bsp check`: rendered diagnostics, summary, exit codes 0 / 1 / 2, --json, --explain."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from engine.cli import app

from dslkit import BILL_PAYMENT

runner = CliRunner()

BAD = '''channel mf = memory
format Req = fixed {
    code string(4)
}
route r {
    receive from mff as Req
    reply Req { code = trimm(msg.code) }
}
'''


def test_clean_file_exits_0_with_summary():
    r = runner.invoke(app, ["check", str(BILL_PAYMENT)])
    assert r.exit_code == 0, r.output
    assert r.output.strip().splitlines()[-1].startswith("0 errors, 0 warnings; 1 file compiled, version ")


def test_errors_are_rendered_and_exit_1(tmp_path):
    p = tmp_path / "bad.route"
    p.write_text(BAD)
    r = runner.invoke(app, ["check", str(p)])
    assert r.exit_code == 1
    out = r.output
    assert f"{p}:6:18: error[E020]: unknown channel `mff`" in out
    assert "    receive from mff as Req" in out and "help: did you mean `mf`?" in out
    assert f"{p}:7:24: error[E070]: unknown function `trimm`" in out
    assert out.strip().splitlines()[-1] == "2 errors, 0 warnings"


def test_missing_path_exits_2(tmp_path):
    r = runner.invoke(app, ["check", str(tmp_path / "nope.route")])
    assert r.exit_code == 2
    assert "no such file or directory" in r.output


def test_json_and_explain(tmp_path):
    r = runner.invoke(app, ["check", "--json", "--explain", str(BILL_PAYMENT)])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["ok"] is True and data["errors"] == 0
    assert [x["name"] for x in data["program"]["routes"]] == ["bill_payment", "bill_enquiry"]
    p = tmp_path / "bad.route"
    p.write_text(BAD)
    r = runner.invoke(app, ["check", "--json", str(p)])
    assert r.exit_code == 1
    diags = json.loads(r.output)["diagnostics"]
    assert [(d["code"], d["line"], d["col"]) for d in diags] == [("E020", 6, 18), ("E070", 7, 24)]


def test_explain_prints_the_ir(tmp_path):
    r = runner.invoke(app, ["check", "--explain", str(BILL_PAYMENT)])
    assert r.exit_code == 0
    # stdout is the plan alone, so that a tool can read it; the summary goes to stderr
    assert json.loads(r.stdout)["channels"]["mainframe"]["kind"] == "tcp.listen"
    assert r.stderr.startswith("0 errors, 0 warnings; 1 file compiled, version ")
    # one configuration, one version: the plan's is the summary's (the one bsp run serves)
    assert json.loads(r.stdout)["version"] == r.stderr.split("version ")[1].split()[0]
    data = json.loads(runner.invoke(app, ["check", "--json", "--explain", str(BILL_PAYMENT)]).stdout)
    assert data["program"]["version"] == data["version"]


def test_the_version_covers_the_files_the_routes_name(tmp_path):
    """The version bsp check prints is the one bsp run serves and the ledger keeps: a table edited in place
    changes it."""
    import shutil
    folder = tmp_path / "bill"
    shutil.copytree(BILL_PAYMENT.parent, folder)

    def version() -> str:
        r = runner.invoke(app, ["check", str(folder)])
        assert r.exit_code == 0, r.output
        return r.output.strip().split("version ", 1)[1].split()[0]

    before = version()
    csv = next(folder.glob("*.csv"))
    csv.write_text(csv.read_text() + "\n")
    assert version() != before


def test_a_deployment_file_stands_for_its_route_files(tmp_path):
    from pathlib import Path
    platform = Path(__file__).resolve().parents[2] / "routes" / "platform.yaml"
    r = runner.invoke(app, ["check", str(platform)])
    assert r.exit_code == 0, r.output
    assert "compiled, version " in r.output
    bad = tmp_path / "platform.yaml"
    bad.write_text("version: 1\nroutes:\n  - nowhere/\n")
    r = runner.invoke(app, ["check", str(bad)])
    assert r.exit_code == 1 and f"{bad}:3:" in r.output, r.output


def test_a_deployment_files_channel_overrides_are_checked_in_every_environment(tmp_path):
    from pathlib import Path
    routes = Path(__file__).resolve().parents[2] / "routes" / "bill_payment"
    dep = tmp_path / "platform.yaml"
    dep.write_text(f"""version: 1
routes:
  - {routes}/
channels:
  mainfrme: {{address: "127.0.0.1:17001"}}
environments:
  uat:
    channels:
      biller: {{timeout: fast}}
""")
    r = runner.invoke(app, ["check", str(dep)])
    assert r.exit_code == 1, r.output
    assert (f"error: {dep}:5:3: channels.mainfrme: unknown channel 'mainfrme'; did you mean 'mainframe'?"
            in r.output)
    assert f"{dep}:9:25: environments.uat.channels.biller.timeout: channel biller (tcp connect): expected a " \
           f"duration such as 3s or 200ms, got 'fast'" in r.output
    assert "2 errors in the deployment file's channel overrides" in r.output


def test_a_place_named_in_a_help_is_shown_as_the_file_is(tmp_path, monkeypatch):
    """`receive from Req` (a format where a channel goes): the help's place is relative like the diagnostic's."""
    (tmp_path / "bad.route").write_text(BAD.replace("receive from mff", "receive from Req"))
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["check", "bad.route"])
    assert r.exit_code == 1
    assert "bad.route:6:18: error[E021]: `Req` is a format, not a channel" in r.output
    assert "help: `Req` is declared at bad.route:2:8" in r.output, r.output
    assert str(tmp_path) not in r.output


def test_env_needs_one_deployment_file_alone():
    r = runner.invoke(app, ["check", "--env", "uat", str(BILL_PAYMENT)])
    assert r.exit_code == 2
    assert "--env uat: an environment is chosen in a deployment file" in r.output, r.output


def test_the_count_of_files_compiled_includes_those_pulled_in_with_use(tmp_path):
    """`bsp check routes/fund_management/` said `2 files compiled` while it compiled three: the folder's two
    and `../common/mainframe.route`, pulled in with `use`."""
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "shared.route").write_text("format Shared = json\n")
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "svc.route").write_text('use "../common/shared.route"\nformat Own = json\n')
    r = runner.invoke(app, ["check", str(tmp_path / "svc")])
    assert r.exit_code == 0, r.output
    assert "; 2 files compiled, version " in r.output.strip().splitlines()[-1], r.output
