"""Classified values (card numbers, accounts, secrets) out of a capture recorded in clear: recording without
--mask says so in one line naming --mask, and `bsp replay --to-tests` masks them in the tests it writes
(the file is committed and shared) unless --no-mask is given."""
from __future__ import annotations


from dsl.load import compile_paths
from engine.registry import default_registry
from engine.replay.tap import recording
from engine.routetest.runner import run_paths
from replaykit import config_copy, record_session, replay_cli as cli


def _said(tmp_path, **kw) -> list[str]:
    config = config_copy(tmp_path / "config")
    reg = default_registry()
    program = compile_paths([config / "bill_payment.route"], reg).program
    lines: list[str] = []
    with recording(program, reg, tmp_path / f"cap-{len(list(tmp_path.iterdir()))}.duckdb", echo=lines.append, **kw):
        pass
    return lines


def test_recording_in_clear_warns_in_one_line_naming_mask(tmp_path):
    clear = [line for line in _said(tmp_path) if line.startswith("warning:")]
    assert len(clear) == 1, clear
    assert "classified fields in clear (BillPayReq.account, BillerPost.account" in clear[0]
    assert "add --mask to mask them" in clear[0]
    assert not [line for line in _said(tmp_path, mask=True) if line.startswith("warning:")]
    assert not [line for line in _said(tmp_path, mask_hint=None) if line.startswith("warning:")]   # --no-mask


def test_to_tests_masks_classified_values_unless_no_mask(tmp_path):
    config = config_copy(tmp_path / "config")
    capture = record_session(tmp_path, config, 30)          # recorded in clear: accounts ACC...
    res = cli(str(capture), "--config", str(config), "--to-tests", str(tmp_path / "masked"))
    assert res.exit_code == 0, res.output
    (masked,) = (tmp_path / "masked").glob("*_test.route")
    text = masked.read_text()
    assert "account = \"A***\"" in text and "ACC" not in text
    assert "Classified values (card numbers, accounts, secrets) are masked" in text
    result = run_paths([masked], default_registry())          # the masked tests still pass
    assert len(result.outcomes) > 20 and not result.failed, result.failed[0].failures

    res = cli(str(capture), "--config", str(config), "--to-tests", str(tmp_path / "clear"), "--no-mask")
    assert res.exit_code == 0 and "classified values in clear" in res.output, res.output
    (clear,) = (tmp_path / "clear").glob("*_test.route")
    assert "account = \"ACC" in clear.read_text() and "WARNING: classified values" in clear.read_text()
