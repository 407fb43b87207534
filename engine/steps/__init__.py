"""Step kinds: one module each, ``COMPONENT.build(step, ctx, route) -> runner``.

A runner is either synchronous (``batch = False``; ``run(ex)``) or works on a
whole batch of exchanges at once (``batch = True``; ``await run_batch(exs)``,
used by ``call`` so that a batch's requests leave in one write).  A runner
signals a business outcome by raising (or, in a batch, recording with
``ex.fail``) a ``StepFailure``; any other exception becomes kind ``internal``.
See ``engine/steps/base.py``.
"""
