"""Opening the transaction log in a worker thread when the key store's index must be made again.

When ``index.sqlite`` of the answers files (engine/txn/answers.py) is lost or damaged, opening the log makes
it again from the files: ~19 us an answer, ~11 minutes at 35M keys.  Made on the event loop, that stopped
everything: the admin API did not answer, a signal was not heard.  So the engine opens such a log here:

    start(mgr)          begins the open in a worker thread (``trio.to_thread.run_sync``), when the index must
                        be made again (``answers.rebuild_needed``: a cheap look); None otherwise (the open stays
                        where it was: ``TxnManager.log``, on first use, a few ms)
    await open_log(mgr) returns once the log is open (every user of the key store awaits it: recovery of the
                        deals in flight, ``TxnManager.write``, the ``limit`` totals' rebuild); traffic waits here
    stop(mgr)           the engine stops: the rebuild stops at its next chunk (or inside a long SQLite statement)
                        and rolls back; nothing of it is kept, and the next start makes the index again

Over an engine's dispatchers (``LiveEngine`` for ``bsp run``, ``Switchboard`` for ``run_program`` and the tests):

    await recover(nursery, disps)   recovery of the deals in flight: awaited, or, while the index is made again,
                                    run in ``nursery`` (channels listen, each batch waits in ``TxnManager.ready``)
    await stop_all(disps)           the drain: the rebuilds stopped; the requests that were waiting for them
                                    (``Dispatcher.waiting``) counted in the drain's warning (``stopped_warning``)

While it runs, ``mgr.opening.rebuild`` (``answers.Rebuild``) says how far it got: ``bsp status`` shows
``rebuilding key index: N of M MB read``, and ``GET /ready`` answers not ready with that reason.

The open runs in a system task (not in the task of the first request that waited for it: a request whose
client went away must not stop a rebuild the others wait for).  When the trio run ends with the rebuild still
going, the task is cancelled: the worker thread is abandoned and told to stop, which it does at its next chunk
(a SIGKILL there is a crash the index survives: nothing of a rebuild is committed before its end).
"""
from __future__ import annotations

import logging
from typing import Any

import trio

from engine.txn.answers import answers_dir
from engine.txn.answers_rebuild import Rebuild, RebuildStopped, rebuild_needed
from engine.txn.log import TxnLogError, log_path

log = logging.getLogger("bsp.txn")


class Opening:
    """One open of a manager's log running in a worker thread."""

    def __init__(self) -> None:
        self.rebuild = Rebuild()
        self.done = trio.Event()
        self.error: BaseException | None = None
        self.stopped = False


def start(mgr: Any) -> Opening | None:
    """Begin opening ``mgr``'s log in a worker thread if its key index must be made again (module docstring);
    the open under way, or None when the log is open already or opens quickly where it is first used."""
    if mgr._log is not None:
        return None
    if mgr.opening is not None:
        return mgr.opening
    if getattr(mgr.ledger, "path", None) is None or not rebuild_needed(answers_dir(log_path(mgr.ledger.path))):
        return None
    op = mgr.opening = Opening()
    trio.lowlevel.spawn_system_task(_run, mgr, op, name="key index rebuild")
    return op


async def _run(mgr: Any, op: Opening) -> None:
    try:
        opened = await trio.to_thread.run_sync(mgr.open_blocking, op.rebuild, abandon_on_cancel=True)
    except trio.Cancelled:
        op.rebuild.stop()           # the run ends: the abandoned thread stops at its next chunk, rolled back
        op.stopped = True
        raise
    except RebuildStopped:
        op.stopped = True
        log.warning("%s: the rebuild of the key store's index was stopped (the engine stops) after %d answers; "
                    "nothing of it was kept: the next start makes it again", mgr.ledger.path, op.rebuild.answers)
    except BaseException as exc:        # a system task must not raise: the waiters raise it (open_log)
        op.error = exc
    else:
        mgr._log = opened
        if mgr.saf is not None:         # reversals queued by the previous run: attach() left them for now
            try:
                mgr.saf.load()
            except Exception as exc:    # noqa: BLE001 - a value the keyring cannot read: as the open would say
                op.error = exc
    finally:
        if mgr.opening is op:
            mgr.opening = None
        op.done.set()


async def open_log(mgr: Any) -> Any:
    """``mgr``'s log, opened: at once when it is, else once the open in a worker thread is done (started here
    when the key index must be made again).  A stopped open (the engine stops) never returns: the waiting work
    is cancelled by the drain, nothing of it recorded."""
    op = start(mgr)
    if op is None:
        return mgr.log
    await op.done.wait()
    if op.stopped:
        await trio.sleep_forever()
    if op.error is not None:
        err = op.error
        if isinstance(err, TxnLogError):
            raise TxnLogError(str(err)) from err        # (each waiter its own: one object raised in many tasks)
        raise err
    return mgr.log


def opening(mgr: Any) -> Rebuild | None:
    """The rebuild under way for ``mgr`` (None: no rebuild runs)."""
    op = mgr.opening
    return op.rebuild if op is not None else None


async def stop(mgr: Any) -> bool:
    """Stop the open under way (the engine stops) and wait for its thread to end; True when one was stopped."""
    op = mgr.opening
    if op is None:
        return False
    op.rebuild.stop()
    with trio.CancelScope(shield=True):
        await op.done.wait()
    return True


def _managers(disps: Any) -> list[Any]:
    """The transaction managers of these dispatchers, each once."""
    return list({id(m): m for m in (getattr(d, "txn", None) for d in disps) if m is not None}.values())


def rebuilds(disps: Any) -> list[Rebuild]:
    """The rebuilds of the key store's index under way for these dispatchers (``bsp status``)."""
    return [op.rebuild for op in (m.opening for m in _managers(disps)) if op is not None]


async def recover(nursery: trio.Nursery, disps: Any) -> None:
    """Resolve the deals these dispatchers' channels left in flight before they take traffic; when a key index
    must be made again (minutes at millions of keys), in ``nursery`` instead: the channels listen, the admin API
    answers and a drain stops it meanwhile, and each batch waits in its dispatcher (``TxnManager.ready``) until
    the log is open and its channel's deals in flight are resolved."""
    from engine.txn import recover as recover_in_flight
    disps = list(disps)
    if any([start(m) is not None for m in _managers(disps)]):
        log.warning("the key store's index is being made again (index.sqlite lost or damaged): channels "
                    "listen, and their requests wait until it is done; `bsp status` shows how far it got")
        nursery.start_soon(recover_in_flight, disps)
    else:
        await recover_in_flight(disps)


async def stop_all(disps: Any) -> int | None:
    """The engine drains: stop the rebuilds under way for these dispatchers and wait for their threads to end.
    None when none ran; else how many requests were waiting for them (not run: the drain cancels them)."""
    disps = list(disps)
    stopped = False
    for mgr in _managers(disps):
        stopped |= await stop(mgr)
    return sum(getattr(d, "waiting", 0) for d in disps) if stopped else None


def stopped_warning(waiting: int) -> str:
    """The drain's warning when it stopped a rebuild, ``waiting`` requests waiting for it."""
    return ("drain: the key store's index was still being made again: stopped, nothing of it kept (the next "
            f"start makes it again); {waiting} request(s) waiting for it were not run, nothing of them recorded: "
            "their clients get no reply and may send them again")
