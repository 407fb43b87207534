"""A key file others can read is named at start, as the admin token file is: whoever reads the field
keyring decrypts every classified field, whoever reads the audit key can re-seal a rewritten ledger."""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from engine.ops.runsettings import run_keys


def write(path: Path, text: str, mode: int) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize("mode, warned", [(0o644, True), (0o640, True), (0o600, False), (0o400, False)])
def test_a_key_file_readable_by_others_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int,
                                                warned: bool) -> None:
    ring = write(tmp_path / "field-keys.json",
                 json.dumps({"current": "k1", "keys": {"k1": base64.b64encode(bytes(32)).decode()}}), mode)
    audit = write(tmp_path / "audit.key", base64.b64encode(bytes(range(32))).decode(), mode)
    for name in ("BSP_FIELD_KEYS", "BSP_AUDIT_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BSP_FIELD_KEYS_FILE", str(ring))
    monkeypatch.setenv("BSP_AUDIT_KEY_FILE", str(audit))
    keys = run_keys(None)
    assert keys.keyring is not None and keys.audit_key is not None
    found = [w for w in keys.warnings if "readable by group/others" in w]
    if not warned:
        assert found == []
        return
    assert len(found) == 2, keys.warnings
    assert any(f"BSP_FIELD_KEYS_FILE={ring}" in w and f"chmod 600 {ring}" in w for w in found), found
    assert any(f"BSP_AUDIT_KEY_FILE={audit}" in w and f"chmod 600 {audit}" in w for w in found), found
    assert not any(base64.b64encode(bytes(32)).decode() in w for w in keys.warnings)


def test_every_key_is_scrubbed_from_the_log_whatever_file_gave_it(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The keys' texts bsp run scrubs from every log line: each field key and the audit key as base64, also
    when they come from BSP_AUDIT_KEY_FILE / BSP_FIELD_KEYS_FILE (their texts were not scrubbed at all, and a
    deployment file's audit key file was scrubbed with its line break, which a log line quoting it lacks)."""
    from engine.ops.logs import Scrubber
    k1, k2, audit_key = os.urandom(32), os.urandom(32), os.urandom(32)
    b64 = [base64.b64encode(k).decode() for k in (k1, k2, audit_key)]
    ring = write(tmp_path / "field-keys.json", json.dumps({"current": "k2", "keys": {"k1": b64[0], "k2": b64[1]}}),
                 0o600)
    audit = write(tmp_path / "audit.key", b64[2] + "\n", 0o600)
    for name in ("BSP_FIELD_KEYS", "BSP_AUDIT_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BSP_FIELD_KEYS_FILE", str(ring))
    monkeypatch.setenv("BSP_AUDIT_KEY_FILE", str(audit))
    scrub = Scrubber(run_keys(None).values)
    for text in b64:
        assert text not in scrub(f"error: something quoted {text} here"), text


def test_each_key_of_an_audit_keyring_is_scrubbed_from_the_log(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """An audit keyring (rotation): its older keys are scrubbed too, not only the current one (a log line
    quoting the old key, which still verifies and, once leaked, re-seals the records before the rotation)."""
    from engine.ops.logs import Scrubber
    old, new = os.urandom(32), os.urandom(32)
    b64 = [base64.b64encode(k).decode() for k in (old, new)]
    audit = write(tmp_path / "audit-keys.json", json.dumps({"current": "a2", "keys": {"a1": b64[0], "a2": b64[1]}}),
                  0o600)
    for name in ("BSP_FIELD_KEYS", "BSP_FIELD_KEYS_FILE", "BSP_AUDIT_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BSP_AUDIT_KEY_FILE", str(audit))
    scrub = Scrubber(run_keys(None).values)
    for text in b64:
        assert text not in scrub(f"error: something quoted {text} here"), text
