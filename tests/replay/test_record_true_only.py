"""Without --record FILE, only the channels that say `record = true` are recorded: a channel without it
was wrapped (and written to the capture, in clear without --mask) because the default capture path set
for the `record = true` case counted as `--record`."""
from __future__ import annotations

import os
from pathlib import Path

from dsl.load import compile_paths
from engine.registry import default_registry
from engine.replay.tap import TapChannel, recording

ROUTE = '''
format Req = json
channel front = tcp listen { address = "127.0.0.1:0"  framing = length2  record = true }
channel other = tcp listen { address = "127.0.0.1:0"  framing = length2 }
route a {
    receive from front as Req
    reply Req { ok = 1 }
}
route b {
    receive from other as Req
    reply Req { ok = 2 }
}
'''


def test_only_record_true_channels_are_tapped_without_a_capture_path(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "r.route").write_text(ROUTE)
    reg = default_registry()
    program = compile_paths([tmp_path / "r.route"], reg).program
    assert program is not None
    monkeypatch.chdir(tmp_path)                     # the default capture goes to var/ here
    os.makedirs("var", exist_ok=True)
    with recording(program, reg, None) as (tapped_reg, rec):
        assert rec is not None
        built = {name: tapped_reg.get("channel", decl.kind).build(decl) for name, decl in program.channels.items()}
    assert isinstance(built["front"], TapChannel)
    assert not isinstance(built["other"], TapChannel)
