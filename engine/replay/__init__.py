"""Record and replay: capture frames at channel edges, replay them against a candidate.

    context.py   ExchangeCtx (one inbound request and everything it caused) + its contextvar
    capture.py   the capture file (DuckDB): schema, CaptureWriter (writer thread), Capture (reader)
    guide.py     FormatGuide: which declared formats a channel's frames are in; decode, mask
    tap.py       recording taps: channel wrappers + ledger wrapper, ``recording_registry``
    virtual.py   virtual channels for an isolated engine (replay and route tests)
    replayer.py  feed a capture into a candidate configuration; collect what it produced
    profile.py   the replay profile (YAML): ignored and expected differences
    diff.py      field-by-field comparison of recorded and produced frames
    report.py    terminal, JSON and HTML reports
    totests.py   route tests written from recorded exchanges (``bsp replay --to-tests``)

The capture format is documented in docs/testing.md.
"""
