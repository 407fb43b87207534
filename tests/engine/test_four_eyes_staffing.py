"""Four eyes with nobody to approve: a deployment listing actions under ``operators.four_eyes`` with the admin
API off, or with fewer than two admin tokens holding the ``operate`` role, could never have a request approved
(the requester cannot approve their own; approvals are taken only through the admin API).  ``bsp run`` says so at
start, as an error line naming the fix (engine/ops/serve.py); ``staffing_problem`` tells the cases apart."""
from __future__ import annotations

from engine.admin.auth import NamedToken
from engine.four_eyes import Policy, staffing_problem

POLICY = Policy(("dead.retry", "deal.release"))


def token(name: str, *roles: str) -> NamedToken:
    return NamedToken(name, name * 8, frozenset(roles))


def test_no_policy_or_two_operators_is_no_problem() -> None:
    assert staffing_problem(None, None) is None
    assert staffing_problem(Policy(()), ()) is None
    assert staffing_problem(POLICY, [token("alice", "operate"), token("bob", "operate", "read")]) is None


def test_the_admin_api_off_is_said_with_the_fix() -> None:
    text = staffing_problem(POLICY, None)
    assert text is not None and "admin API is off" in text and "dead.retry, deal.release" in text


def test_one_operator_or_none_is_said_with_the_fix() -> None:
    one = staffing_problem(POLICY, [token("admin", "operate", "read"), token("prom", "monitor")])
    assert one is not None and "only 'admin' has the operate role" in one and "a token of their own" in one
    none = staffing_problem(POLICY, [token("prom", "monitor"), token("reader", "read")])
    assert none is not None and "no admin token has the operate role" in none
