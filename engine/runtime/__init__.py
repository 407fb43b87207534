"""The switchboard: binds a compiled Program to channels, steps, codecs and the ledger.

    exchange.py   Exchange (one request's way through) and StepFailure (error kinds and codes)
    binder.py     codecs, tables, compiled expressions and assignments for one Program
    assign.py     ``a.b[0] = value`` paths -> nested dicts
    limits.py     CountLimiter (per-route concurrency, many tokens at once)
    dispatch.py   per-channel dispatch: route choice, steps over a batch, deals, replies
    switchboard.py  start every channel in a nursery, drain on SIGINT/SIGTERM
"""
from engine.runtime.switchboard import Switchboard, run_program

__all__ = ["Switchboard", "run_program"]
