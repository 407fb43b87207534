"""Commands with long output on stdout, and a reader that stops early (``bsp deals | head``).

A reader that has gone is not an error, as for Unix tools: what is left to print is dropped quietly
(stdout is pointed at /dev/null, so nothing tries to flush into the closed pipe again, not even at exit)
and the command's exit code is still its own (a test run's or a replay's verdict), not click's 1.

    say(line, ...)          # lines on stdout; a closed pipe is dropped and the command goes on
    @quiet_pipe             # a command whose output is its work: a closed pipe ends it, exit 0
"""
from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])


def stdout_gone() -> None:
    """Point stdout at /dev/null so that nothing tries to flush into the closed pipe again (at exit)."""
    import os
    import sys
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):     # not a real file (a test runner's buffer): nothing will flush it
        pass


def say(*lines: str) -> None:
    """Lines on stdout; a reader that has gone drops them (and every later line) quietly."""
    try:
        for line in lines:
            typer.echo(line)
    except BrokenPipeError:
        stdout_gone()


def _rich_pipe_gone(exc: SystemExit) -> bool:
    """Whether ``exc`` is rich's answer to a closed pipe (``Console.on_broken_pipe``: stdout pointed at
    /dev/null, then exit 1), which would turn a listing cut short into a failure."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return exc.code == 1 and tb is not None and tb.tb_frame.f_code.co_name == "on_broken_pipe"


def quiet_pipe(command: F) -> F:
    """A command whose output is what it does (a listing, a report, decoded records): a reader that has
    gone ends it, quietly and with exit 0; any other exit code the command raises before is kept."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except BrokenPipeError:
            stdout_gone()
            return None
        except SystemExit as exc:
            if not _rich_pipe_gone(exc):
                raise
            return None                   # rich has pointed stdout at /dev/null already

    return run  # type: ignore[return-value]
