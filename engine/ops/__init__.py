"""Operations: hot reload that loses nothing, the admin backend, metrics wiring, logs, triggers.

    files.py       files a configuration references (copybooks, specs, tables); version over all of them
    plan.py        the reload plan: a pure diff of two Programs (added, changed, kept, removed)
    generation.py  one bound generation, and HandlerRef: the indirection a listening channel calls through
    live.py        LiveEngine: run a generation, reload transactionally, swap, drain the old one
    observe.py     per-deal metrics and the masked one-line-per-deal log, seen at the ledger's door
    calls.py       outbound call metrics: a wrapper on each outbound channel's request_many
"""
