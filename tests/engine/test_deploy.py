"""The deployment file: valid files, each kind of error at its line, secrets, environments."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.deploy import DEFAULT_LEDGER, DeploymentError, SecretError, load_deployment

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "a.route").write_text("# a\n")
    (tmp_path / "svc" / "b.route").write_text("# b\n")
    (tmp_path / "svc" / "deep").mkdir()
    (tmp_path / "svc" / "deep" / "c.route").write_text("# c\n")
    (tmp_path / "svc" / "notes.txt").write_text("not a route\n")
    return tmp_path


def write(site: Path, text: str) -> Path:
    p = site / "platform.yaml"
    p.write_text(textwrap.dedent(text).lstrip("\n"))
    return p


def problems(path: Path, env: str | None = None) -> list[str]:
    with pytest.raises(DeploymentError) as info:
        load_deployment(path, env=env)
    return str(info.value).splitlines()


GOOD = """
version: 1
routes:
  - svc/*.route
  - svc/deep
ledger: data/ledger.duckdb
admin:
  listen: "127.0.0.1:7080"
  token: {file: secrets/admin.token}
secrets:
  biller_key: {env: TEST_BILLER_KEY}
channels:
  biller: {timeout: 3s}
environments:
  uat:
    ledger: data/uat.duckdb
    channels:
      mainframe: {address: "127.0.0.1:7101"}
      biller: {address: "127.0.0.1:7102"}
"""


def test_valid_file(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BSP_ENV", raising=False)
    dep = load_deployment(write(site, GOOD))
    assert dep.env is None
    assert dep.route_files == [site / "svc" / "a.route", site / "svc" / "b.route", site / "svc" / "deep" / "c.route"]
    assert dep.ledger_path == site / "data" / "ledger.duckdb"
    assert dep.admin.listen == "127.0.0.1:7080"
    assert dep.channel_overrides == {"biller": {"timeout": "3s"}}
    assert dep.where("channels", "biller") == f"{site / 'platform.yaml'}:12:11"


def test_env_override_applied(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BSP_ENV", raising=False)
    dep = load_deployment(write(site, GOOD), env="uat")
    assert dep.env == "uat"
    assert dep.ledger_path == site / "data" / "uat.duckdb"
    assert dep.channel_overrides == {
        "mainframe": {"address": "127.0.0.1:7101"},
        "biller": {"timeout": "3s", "address": "127.0.0.1:7102"},    # merged over the base
    }
    assert dep.channel_origin("mainframe").endswith("platform.yaml:17:18")
    assert dep.channel_origin("biller").endswith("platform.yaml:18:15")


def test_env_from_bsp_env(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BSP_ENV", "uat")
    assert load_deployment(write(site, GOOD)).channel_overrides["mainframe"] == {"address": "127.0.0.1:7101"}


def test_unknown_env(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BSP_ENV", raising=False)
    [p] = problems(write(site, GOOD), env="uta")
    assert p.endswith("platform.yaml:13:1: environments: environment 'uta' (from --env) is not defined here; "
                      "did you mean 'uat'? defined: uat")


def test_an_env_in_the_wrong_case_gets_a_did_you_mean(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BSP_ENV", raising=False)
    [p] = problems(write(site, GOOD), env="UAT")
    assert p.endswith("environments: environment 'UAT' (from --env) is not defined here; "
                      "did you mean 'uat'? defined: uat")


def test_secrets_read_at_use_time(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dep = load_deployment(write(site, GOOD))
    key = dep.secrets["biller_key"]
    monkeypatch.delenv("TEST_BILLER_KEY", raising=False)
    with pytest.raises(SecretError, match=r"platform.yaml:10:15: secret 'biller_key': environment variable TEST_BILLER_KEY is not set"):
        key.value()
    monkeypatch.setenv("TEST_BILLER_KEY", "s3cret")
    assert key.value() == "s3cret"
    assert "s3cret" not in repr(dep)
    with pytest.raises(SecretError, match="cannot read"):
        dep.admin.token.value()
    (site / "secrets").mkdir()
    (site / "secrets" / "admin.token").write_text("tok-123\n")
    assert dep.admin.token.value() == "tok-123"


def test_default_ledger(site: Path) -> None:
    dep = load_deployment(write(site, "routes: [svc/a.route]\n"))
    assert dep.ledger_path == DEFAULT_LEDGER and dep.secrets == {} and dep.channel_overrides == {}
    assert (dep.txn_backlog_entries, dep.txn_backlog_bytes) == (None, None)      # the engine's defaults


@pytest.mark.parametrize("size, expected", [("64MiB", 64 << 20), ("512KiB", 512 << 10), ("2GiB", 2 << 30),
                                            ("1000B", 1000), ("123456", 123456)])
def test_the_transaction_log_backlog_bounds(site: Path, size: str, expected: int) -> None:
    """ledger.txn_backlog_entries / txn_backlog_bytes (docs/transactions.md), the environment's winning; a size
    in bytes or with a binary unit."""
    dep = load_deployment(write(site, f"""
        routes: [svc/a.route]
        ledger: {{txn_backlog_entries: 500, txn_backlog_bytes: {size}}}
        environments:
          uat:
            ledger: {{txn_backlog_entries: 900}}
        """))
    assert (dep.txn_backlog_entries, dep.txn_backlog_bytes) == (500, expected)
    uat = load_deployment(site / "platform.yaml", env="uat")
    assert (uat.txn_backlog_entries, uat.txn_backlog_bytes) == (900, expected)


@pytest.mark.parametrize("text, expected", [
    # inline secret
    ("routes: [svc/a.route]\nsecrets:\n  db: hunter2\n",
     "3:7: secrets.db: inline secret values are refused"),
    # inline admin token
    ("routes: [svc/a.route]\nadmin:\n  token: abc\n",
     "3:10: admin.token: inline token values are refused"),
    # a secret with both sources
    ("routes: [svc/a.route]\nsecrets:\n  db: {env: A, file: b}\n",
     "3:7: secrets.db: a secret reference names exactly one source"),
    # a secret with a value key
    ("routes: [svc/a.route]\nsecrets:\n  db: {value: x}\n",
     "3:8: secrets.db.value: unknown key 'value'"),
    # unknown top-level key, with a suggestion
    ("routes: [svc/a.route]\nledgr: x.duckdb\n",
     "2:1: ledgr: unknown key 'ledgr'; did you mean 'ledger'?"),
    # missing routes
    ("ledger: x.duckdb\n",
     "1:1: (top level): missing required key 'routes'"),
    # wrong type
    ("routes: svc/a.route\n",
     "1:9: routes: expected a list, got a string 'svc/a.route'; write a list, e.g. routes: [svc/a.route]"),
    # empty route list
    ("routes: []\n",
     "1:9: routes: the list is empty"),
    # bad listen address
    ("routes: [svc/a.route]\nadmin:\n  listen: 7080\n",
     '3:11: admin.listen: expected a string, got a number 7080; write host:port in quotes, e.g. '
     'listen: "127.0.0.1:7080"'),
    ("routes: [svc/a.route]\nledger:\n  path: 42\n",
     '3:9: ledger.path: expected a string, got a number 42; quote the value: path: "42"'),
    ("routes: [svc/a.route]\nledger:\n  sync: fast\n",
     "3:9: ledger.sync: expected one of journal, duckdb, none, got 'fast'"),
    ("routes: [svc/a.route]\nledger:\n  key_retention: 5y\n",
     "3:18: ledger.key_retention: '5y' is not a duration; write a number with d, h, m or s, or forever"),
    ("routes: [svc/a.route]\nledger:\n  reversal_alert_after: 0\n",
     "3:25: ledger.reversal_alert_after: 0 is less than the minimum of 1"),
    ("routes: [svc/a.route]\nledger:\n  txn_backlog_entries: 0\n",
     "3:24: ledger.txn_backlog_entries: 0 is less than the minimum of 1"),
    ("routes: [svc/a.route]\nledger:\n  txn_backlog_bytes: 64MB\n",
     "3:22: ledger.txn_backlog_bytes: '64MB' is not a size; write bytes, or a number with KiB, MiB or GiB "
     "(e.g. txn_backlog_bytes: 64MiB)"),
    ("routes: [svc/a.route]\nadmin:\n  listen: localhost\n",
     "3:11: admin.listen: 'localhost' is not host:port"),
    # channel override that is not a mapping
    ("routes: [svc/a.route]\nenvironments:\n  uat:\n    channels:\n      mainframe: 127.0.0.1\n",
     "5:18: environments.uat.channels.mainframe: expected a mapping, got a string '127.0.0.1'; write the "
     "channel's options as a mapping, e.g. mainframe: {address: \"127.0.0.1:7101\"}"),
    # unknown key inside an environment
    ("routes: [svc/a.route]\nenvironments:\n  uat:\n    chanels: {}\n",
     "4:5: environments.uat.chanels: unknown key 'chanels'; did you mean 'channels'?"),
    # route glob matching nothing, and a missing file
    ("routes:\n  - svc/a.route\n  - other/*.route\n  - svc/zz.route\n",
     "3:5: routes[1]: 'other/*.route' matches no route file"),
    ("routes:\n  - svc/a.route\n  - svc/zz.route\n",
     "3:5: routes[1]: 'svc/zz.route': no such file or directory"),
    # duplicate key
    ("routes: [svc/a.route]\nledger: a.duckdb\nledger: b.duckdb\n",
     "3:1: ledger: duplicate key 'ledger' (first written on line 2)"),
    # YAML syntax
    ("routes: [svc/a.route\nledger: x\n",
     "not valid YAML"),
    # a flow mapping not closed: the parser gives up lines later; the line it began on is named too
    ("routes: [svc/a.route]\nchannels:\n  mainframe: {address: \"127.0.0.1:7101\"\n  biller: {timeout: 5s}\n"
     "business_day: {tz: UTC}\n",
     "(the flow mapping began at line 3, column 14: is a closing bracket or a comma missing there?)"),
    # empty file
    ("", "1:1: the deployment file is empty"),
    # wrong version
    ("version: 2\nroutes: [svc/a.route]\n", "1:10: version: expected 1, got 2"),
    # the business day of bsp report / reconcile: a zone that does not exist, a cut-off YAML reads as a number
    ("routes: [svc/a.route]\nbusiness_day:\n  tz: Asia/Shangai\n",
     "3:7: business_day.tz: 'Asia/Shangai' is not a known time zone; did you mean 'Asia/Shanghai'?"),
    ("routes: [svc/a.route]\nbusiness_day:\n  cutoff: 17:00\n",
     '3:11: business_day.cutoff: expected a string, got a number 1020; write the time in quotes, e.g. '
     'cutoff: "17:00" (YAML reads 17:00 unquoted as the number 1020)'),
    ("routes: [svc/a.route]\nbusiness_day:\n  cutoff: 5pm\n",
     "3:11: business_day.cutoff: '5pm' is not a time of day; write HH:MM, 24-hour, in quotes"),
    ("routes: [svc/a.route]\nbusiness_day:\n  zone: UTC\n",
     "3:3: business_day.zone: unknown key 'zone'"),
    ("routes: [svc/a.route]\nenvironments:\n  hk:\n    business_day: {tz: Asia/HongKong}\n",
     "4:24: environments.hk.business_day.tz: 'Asia/HongKong' is not a known time zone; did you mean "
     "'Asia/Hong_Kong'?"),
])
def test_errors_name_file_line_and_key(site: Path, text: str, expected: str) -> None:
    path = site / "platform.yaml"
    path.write_text(text)
    found = problems(path)
    assert any(p.startswith(f"error: {path}:") and expected in p for p in found), found


def test_the_business_day_with_an_environment_replacing_its_keys(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BSP_ENV", raising=False)
    path = write(site, """
        routes: [svc/a.route]
        business_day: {tz: Asia/Shanghai, cutoff: "17:00"}
        environments:
          fra:
            business_day: {tz: Europe/Berlin}
          plain: {}
        """)
    day = load_deployment(path).business_day
    assert (day.tz, day.cutoff) == ("Asia/Shanghai", "17:00") and day.places["tz"] == f"{path}:2:20"
    fra = load_deployment(path, env="fra").business_day
    assert (fra.tz, fra.cutoff) == ("Europe/Berlin", "17:00") and fra.places["tz"] == f"{path}:5:24"
    assert fra.pick(None, "00:00") == ("Europe/Berlin", "00:00") and fra.pick("UTC", None) == ("UTC", "17:00")
    assert load_deployment(write(site, "routes: [svc/a.route]\n")).business_day is None


def test_all_problems_reported_at_once_in_line_order(site: Path) -> None:
    path = write(site, """
        routes: [svc/a.route]
        secrets:
          db: hunter2
        admin:
          listen: nowhere
        ledgr: x
        """)
    found = problems(path)
    assert all(p.startswith("error: ") for p in found), found
    assert [p.split(": ")[1].rsplit(":", 2)[1] for p in found] == ["3", "5", "6"]


def test_missing_file(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.yaml") == [f"error: {tmp_path / 'nope.yaml'}:1:1: no such deployment file"]


def test_shipped_example_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BSP_ENV", raising=False)
    example = REPO / "routes" / "platform.yaml"
    dep = load_deployment(example, env="uat")
    assert REPO / "routes" / "bill_payment" / "bill_payment.route" in dep.route_files
    assert dep.channel_overrides["mainframe"] == {"address": "127.0.0.1:7101"}
    assert dep.ledger_path == REPO / "var" / "bsp-uat.duckdb"
    assert load_deployment(example).ledger_path == REPO / "var" / "bsp.duckdb"
    # the demo bank's day (CNY services, Chinese calendars): midnight to midnight in Beijing, not UTC's
    # (a daily `limit` total would otherwise turn at 08:00 Beijing time)
    for d in (dep, load_deployment(example)):
        assert d.business_day is not None and (d.business_day.tz, d.business_day.cutoff) == ("Asia/Shanghai", None)


PRODUCTION = """
routes: [svc/a.route]
ledger:
  path: data/ledger.duckdb
  audit_key: {file: keys/audit.key}
  field_keys: {env: TEST_FIELD_KEYS}
admin:
  listen: "0.0.0.0:7443"
  token: {file: keys/admin.token}
  tls:
    cert: tls/admin.pem
    key: {file: tls/admin.key}
    client_ca: tls/ca.pem
  access: ["cn:OPS-CONSOLE", "ip:10.0.0.0/8"]
record:
  path: "captures/cap-{started}.duckdb"
  mask: true
environments:
  uat:
    ledger: {audit_key: {env: UAT_AUDIT_KEY}}
    admin:
      tls: {cert: tls/uat.pem, key: {env: UAT_ADMIN_KEY}}
      access: access-uat.txt
    record: {mask: false}
  dev:
    record: false
"""


def test_production_settings_resolve_relative_to_the_file(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BSP_ENV", raising=False)
    path = write(site, PRODUCTION)
    dep = load_deployment(path)
    assert dep.audit_key is not None and dep.audit_key.file == site / "keys" / "audit.key"
    assert dep.audit_key.origin == f"{path}:4:14"
    assert dep.field_keys is not None and dep.field_keys.env == "TEST_FIELD_KEYS"
    assert dep.admin.tls_cert == site / "tls" / "admin.pem" and dep.admin.client_ca == site / "tls" / "ca.pem"
    assert dep.admin.tls_key is not None and dep.admin.tls_key.file == site / "tls" / "admin.key"
    assert dep.admin.access == ["cn:OPS-CONSOLE", "ip:10.0.0.0/8"]
    assert dep.admin.places["tls.cert"] == f"{path}:10:11"
    assert dep.record is not None and dep.record.mask is True
    assert dep.record.path == site / "captures" / "cap-{started}.duckdb"
    assert dep.record.place == f"{path}:15:9" and dep.record.key == "record.path"
    from datetime import datetime, timezone
    assert dep.record.capture_path(datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)).name == \
        "cap-20260301T090000Z.duckdb"
    settings = dep.channel_overrides.settings        # what a reload cannot change: references, never values
    assert settings["ledger.audit_key"] == f"SecretRef('ledger.audit_key', file={str(site / 'keys' / 'audit.key')!r})"
    assert settings["admin.access"] == ["cn:OPS-CONSOLE", "ip:10.0.0.0/8"] and settings["record"][1] is True


def test_environments_override_the_production_settings(site: Path) -> None:
    path = write(site, PRODUCTION)
    uat = load_deployment(path, env="uat")
    assert uat.audit_key is not None and uat.audit_key.env == "UAT_AUDIT_KEY"
    assert uat.audit_key.origin == f"{path}:19:25"
    assert uat.field_keys is not None and uat.field_keys.env == "TEST_FIELD_KEYS"     # from the base
    assert uat.ledger_path == site / "data" / "ledger.duckdb"
    assert uat.admin.tls_cert == site / "tls" / "uat.pem" and uat.admin.client_ca is None   # tls as a whole
    assert uat.admin.tls_key is not None and uat.admin.tls_key.env == "UAT_ADMIN_KEY"
    assert uat.admin.access == site / "access-uat.txt"
    assert uat.record is not None and uat.record.mask is False
    assert uat.record.path == site / "captures" / "cap-{started}.duckdb"
    assert load_deployment(path, env="dev").record is None                          # record: false


@pytest.mark.parametrize("text, expected", [
    ("routes: [svc/a.route]\nledger:\n  audit_key: c2VjcmV0\n",
     "3:14: ledger.audit_key: inline audit key values are refused (a deployment file is no place for "
     "secrets); write {env: NAME} (read from an environment variable) or {file: path} (read from a file, "
     "relative to this deployment file), e.g. audit_key: {file: keys/audit.key}"),
    ("routes: [svc/a.route]\nledger:\n  field_keys: 'k1:c2VjcmV0'\n",
     "3:15: ledger.field_keys: inline field keyring values are refused"),
    ("routes: [svc/a.route]\nledger:\n  audit_key: {path: k}\n",
     "3:15: ledger.audit_key.path: unknown key 'path'"),
    ("routes: [svc/a.route]\nadmin:\n  tls:\n    cert: a.pem\n    key: \"-----BEGIN PRIVATE KEY-----\"\n",
     "5:10: admin.tls.key: inline private key values are refused"),
    ("routes: [svc/a.route]\nadmin:\n  tls: {cert: a.pem}\n",
     "3:8: admin.tls: missing required key 'key' (the certificate's private key, e.g. key: {file: tls/admin.key})"),
    ("routes: [svc/a.route]\nadmin:\n  tls: a.pem\n",
     "3:8: admin.tls: expected a mapping, got a string 'a.pem'; e.g. tls: {cert: tls/admin.crt, key: "
     "{file: tls/admin.key}, client_ca: tls/ca.crt}"),
    ("routes: [svc/a.route]\nadmin:\n  tls: {cert: a.pem, key: {file: a.key}, ca: c.pem}\n",
     "3:42: admin.tls.ca: unknown key 'ca'; expected one of: cert, client_ca, key"),
    ("routes: [svc/a.route]\nadmin:\n  access: 42\n",
     "3:11: admin.access: expected a list or a string, got a number 42; write the rules as a list, e.g. "
     "access: [\"cn:OPS-CONSOLE\", \"ip:10.0.0.0/8\"], or a file name"),
    ("routes: [svc/a.route]\nadmin:\n  access:\n    - cn:OPS\n    - host:x\n",
     "5:7: admin.access[1]: access list entry 2 ('host:x'): unknown kind 'host'"),
    ("routes: [svc/a.route]\nrecord: true\n",
     "2:9: record: true names no capture file; write record: {path: \"../var/capture-{started}.duckdb\", "
     "mask: true} (or record: false for none)"),
    ("routes: [svc/a.route]\nrecord: var/cap.duckdb\n",
     "2:9: record: expected a mapping or true or false, got a string 'var/cap.duckdb'; e.g. record: "
     "{path: \"../var/capture-{started}.duckdb\", mask: true}, or record: false"),
    ("routes: [svc/a.route]\nrecord:\n  mask: yes please\n",
     "3:9: record.mask: expected true or false, got a string 'yes please'; write mask: true or mask: false"),
    ("routes: [svc/a.route]\nrecord:\n  masked: true\n",
     "3:3: record.masked: unknown key 'masked'; did you mean 'mask'?"),
    ("routes: [svc/a.route]\nenvironments:\n  uat:\n    record: {path: 7}\n",
     '4:20: environments.uat.record.path: expected a string, got a number 7; quote the value: path: "7"'),
])
def test_production_setting_errors_name_file_line_and_key(site: Path, text: str, expected: str) -> None:
    path = site / "platform.yaml"
    path.write_text(text)
    found = problems(path)
    assert len(found) == 1 and found[0].startswith(f"error: {path}:{expected}"), found


def test_a_reload_names_the_production_settings_that_changed(site: Path) -> None:
    """They are read once, at start: a reload that finds them changed warns (engine.ops.live)."""
    from engine.ops.live import restart_warning
    path = write(site, PRODUCTION)
    before = load_deployment(path).channel_overrides.settings
    path.write_text(path.read_text().replace("tls/admin.pem", "tls/admin-2027.pem")
                    .replace("{file: keys/audit.key}", "{file: keys/audit-2.key}").replace("mask: true", "mask: false"))
    after = load_deployment(path).channel_overrides.settings
    assert restart_warning(before, after, "platform.yaml") == [
        "ledger.audit_key / admin.tls / record changed in platform.yaml: they take effect at the next restart"]


def test_the_documented_production_example_is_valid(tmp_path: Path) -> None:
    """docs/deployment.md's production example passes the schema, and its error examples name its lines."""
    import re
    doc = (REPO / "docs" / "deployment.md").read_text(encoding="utf-8")
    example = re.search(r"### A production deployment\n.*?```yaml\n(.*?)```", doc, re.S).group(1)
    (tmp_path / "keys").mkdir()
    path = tmp_path / "platform.yaml"
    path.write_text(example.replace("/opt/bsp/routes", str(REPO / "routes")))
    dep = load_deployment(path, env="uat")
    assert dep.admin.tls_cert == tmp_path / "tls" / "uat-admin.pem" and dep.admin.client_ca is None
    prod = load_deployment(path)
    shown = re.findall(r"error: platform\.yaml:(\d+):(\d+): ([a-z_.]+):", doc)
    assert len(shown) == 7
    for line, col, key in shown:
        if key != "admin.tls":            # that one is shown for the file without its admin.listen line
            assert prod.where(*key.split(".")) == f"{path}:{line}:{col}", (line, col, key)


def test_a_reload_that_changes_the_business_day_says_it_takes_a_restart(site: Path) -> None:
    """`business_day` is read at start (the day a `limit` total with per = "day" starts again): a reload that
    finds it changed applies the rest and says so, as for the ledger (it used to say nothing: an admin who
    moved the cut-off and reloaded saw "reload ok" while the totals kept the old day)."""
    from engine.ops.live import restart_warning
    path = write(site, "routes: [svc/a.route]\nbusiness_day: {tz: Asia/Shanghai}\n")
    before = load_deployment(path).channel_overrides.settings
    path.write_text(path.read_text().replace("{tz: Asia/Shanghai}", '{tz: Asia/Shanghai, cutoff: "17:00"}'))
    after = load_deployment(path).channel_overrides.settings
    assert restart_warning(before, after, "platform.yaml") == [
        "business_day changed in platform.yaml: it takes effect at the next restart"]
    assert restart_warning(after, load_deployment(path).channel_overrides.settings, "platform.yaml") == []
