"""A compensation that goes to a channel no call goes to (a result file voided in another file, say) is
answered and expected in route tests as any call: `given undo answers ...` and `expect call undo` are not
E094 ("no route calls channel"), while the runner asked for exactly that answer."""
from __future__ import annotations

from engine.registry import default_registry
from engine.routetest.runner import run_paths

ROUTE = '''format Req = json
channel front = memory
channel post = tcp connect { address = "127.0.0.1:1" }
channel undo = tcp connect { address = "127.0.0.1:1" }
channel last = tcp connect { address = "127.0.0.1:1" }
route r {
    receive from front as Req
    call p = post as Req reply Req { ref = msg.ref }
        compensate call undo as Req reply Req { ref = msg.ref  posted = p.id } expect p.ok == true
    call l = last as Req reply Req { ref = msg.ref } expect l.ok == true
    reply Req { code = "00" }
    on error reply Req { code = error.code }
}
test "the last call refused: the post is undone on its own channel" {
    given front sends { ref = "R1" }
    given post answers { id = "P1" }
    given last answers { ok = false }
    given undo answers { ok = true }
    expect call undo { ref = "R1"  posted = "P1" } once
    expect reply { code = "05" }
    expect deal r { status = "failed"  flagged = false }
}
'''


def test_a_compensation_on_a_channel_of_its_own_is_answered_and_expected(tmp_path):
    d = tmp_path / "svc"
    d.mkdir()
    (d / "svc_test.route").write_text(ROUTE)
    res = run_paths([d], default_registry())
    assert not res.broken, res.broken
    assert [(o.name, o.failures) for o in res.outcomes] == [
        ("the last call refused: the post is undone on its own channel", [])]
