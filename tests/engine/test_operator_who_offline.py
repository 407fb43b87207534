"""Who a command run on this machine records (engine/operator.py): two rules, one function each, named for the
rule.  engine/four_eyes.py and engine/reveal_log.py each had a ``where_offline`` with the same name and signature
and opposite answers (the OS user as who, --by beside; --by as who, the OS user beside): a caller importing the
wrong one recorded the wrong operator without a word."""
from __future__ import annotations

import socket

import pytest

import engine.four_eyes
import engine.reveal_log
from engine.operator import by_else_os_user, os_user, os_user_not_by


def test_by_else_os_user_names_the_by_and_keeps_the_os_user_beside() -> None:
    me = os_user()
    assert by_else_os_user("  carol ") == ("carol", {"host": socket.gethostname(), "os_user": me})
    assert by_else_os_user(None) == (me, {"host": socket.gethostname(), "os_user": None})
    assert by_else_os_user(me) == (me, {"host": socket.gethostname(), "os_user": None})


def test_os_user_not_by_names_the_os_user_and_keeps_the_by_beside() -> None:
    me = os_user()
    assert os_user_not_by("carol") == (me, {"host": socket.gethostname(), "os_user": me, "stated_by": "carol"})
    assert os_user_not_by(None) == (me, {"host": socket.gethostname(), "os_user": me, "stated_by": None})
    assert os_user_not_by(me)[1]["stated_by"] is None


@pytest.mark.parametrize("rule", [by_else_os_user, os_user_not_by])
def test_a_by_the_audit_trail_cannot_take_is_refused(rule) -> None:
    with pytest.raises(ValueError, match="--by: expected who did it"):
        rule("bad\x1bname")


def test_no_module_keeps_a_look_alike_of_its_own() -> None:
    assert not hasattr(engine.four_eyes, "where_offline") and not hasattr(engine.reveal_log, "where_offline")
