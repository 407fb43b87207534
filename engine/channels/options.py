"""Option helpers shared by the channel kinds (addresses, framings, durations)."""
from __future__ import annotations

import os
import re
from decimal import Decimal
from typing import Any

from formats.component import OptionSpec
from formats.framing import DEFAULT_MAX_FRAME, FRAMINGS


class ChannelConfigError(ValueError):
    """A channel option the engine cannot use; the message names channel and option, ``hint`` (optional)
    how to fix it: ``bsp check`` shows it as the error's help line (else the option's description)."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def read_secret(channel: str, option: str, how: str, where: str) -> str:
    """A secret a channel option names: ``how`` "env" (an environment variable) or "file" (a UTF-8
    file), its trailing newlines dropped, and from then on masked in every log line (``scrub_secret``).  ``ChannelConfigError`` naming the channel and option when
    it cannot be read; the message never holds the value."""
    from engine.ops.logs import scrub_secret      # here, not at the top: engine.ops imports channel options

    if how == "env":
        from formats.secret_env import mark
        mark(where)                  # a route's env() never reads it (dsl.functions.f_env)
        value = os.environ.get(where)
        if value is None:
            raise ChannelConfigError(f"channel {channel}: option {option}: environment variable {where} is not set "
                                     f"(export it before `bsp run`)")
        value = value.rstrip("\r\n")
        scrub_secret(value)          # whatever the channel does with it, no log line shows it from now on
        return value
    try:
        with open(where, encoding="utf-8") as fh:
            value = fh.read().rstrip("\r\n")
        scrub_secret(value)
        return value
    except OSError as exc:
        raise ChannelConfigError(f"channel {channel}: option {option}: cannot read secret file {where!r}: "
                                 f"{exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ChannelConfigError(f"channel {channel}: option {option}: secret file {where!r} is not UTF-8 "
                                 f"text") from None


def built_check(cls: Any, **kwargs: Any) -> Any:
    """A ``bsp check`` hook for a channel kind whose constructor only checks its options (no
    files, secrets or sockets): build it, and report what it refuses, as ``bsp run`` would at
    start.  Kinds that read TLS files or secrets when built write their own hook instead."""

    def check(decl: Any, base_dir: Any = None) -> list[Any]:
        from formats.errors import SpecError
        try:
            cls(decl.name, dict(decl.options), **kwargs)
        except ChannelConfigError as exc:
            return [SpecError(str(exc), hint=exc.hint)]
        return []

    return check


def parse_address(channel: str, value: Any) -> tuple[str, int]:
    """``"host:port"`` -> (host, port).  Port 0 asks the OS for a free port (tests)."""
    if not isinstance(value, str) or ":" not in value:
        raise ChannelConfigError(
            f"channel {channel}: option address: expected \"host:port\", got {value!r} "
            f"(e.g. address = \"127.0.0.1:7001\")")
    host, _, port_text = value.rpartition(":")
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise ChannelConfigError(
            f"channel {channel}: option address: port {port_text!r} is not a number "
            f"(e.g. address = \"127.0.0.1:7001\")") from None
    if not 0 <= port <= 65535:
        raise ChannelConfigError(f"channel {channel}: option address: port {port} is outside 0..65535")
    return host or "0.0.0.0", port


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")
_UNIT = {"ms": Decimal("0.001"), "s": Decimal(1), "m": Decimal(60), None: Decimal(1)}


def duration_above_zero(channel: str, options: dict[str, Any], name: str, default: float) -> float:
    """A duration option that must be above 0 (0 would mean "never" or "the server's default"); a bad
    value names the channel and the option."""
    try:
        value = seconds(options.get(name), default)
    except ChannelConfigError as exc:
        raise ChannelConfigError(f"channel {channel}: option {name}: {exc}") from None
    if value <= 0:
        raise ChannelConfigError(f"channel {channel}: option {name}: expected a duration above 0 "
                                 f"(e.g. {name} = {default:g}s), got {value:g}s")
    return value


def seconds(value: Any, default: float) -> float:
    """A duration option (seconds as Decimal in the IR, or text like "3s") -> float seconds."""
    if value is None:
        return default
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(Decimal(m.group(1)) * _UNIT[m.group(2)])
    raise ChannelConfigError(f"expected a duration such as 3s or 200ms, got {value!r}")


REVERSAL_IN_FLIGHT = 16     # ISO 8583 reversals stored and forwarded: attempts in flight per channel


def reversal_in_flight(channel: str, options: dict[str, Any]) -> int:
    """``reversal_in_flight`` of a tcp connect channel: how many store-and-forward reversal attempts
    (engine/txn/saf.py) may wait for the host's answer at a time."""
    value = options.get("reversal_in_flight", REVERSAL_IN_FLIGHT)
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if isinstance(value, bool) or n <= 0 or n != value:
        raise ChannelConfigError(f"channel {channel}: option reversal_in_flight: expected a positive count "
                                 f"(reversal attempts in flight at the host at a time, default "
                                 f"{REVERSAL_IN_FLIGHT}), got {value!r}")
    return n


REVERSAL_IN_FLIGHT_OPTION = OptionSpec(
    "reversal_in_flight", "int", "ISO 8583 reversals stored and forwarded (docs/transactions.md): attempts "
    "waiting for the host's answer at a time on this channel; the others wait their turn, oldest first, so "
    "a host back from an outage is not hit by every reversal queued during it at once.",
    default=REVERSAL_IN_FLIGHT)


ADDRESS = OptionSpec("address", "string", "Where to listen or connect, \"host:port\".", required=True)
FRAMING = OptionSpec(
    "framing", "ident",
    "How messages are delimited on the stream: length2 / length4 = 2- or 4-byte big-endian "
    "length prefix counting the payload only.",
    default="length2", choices=tuple(sorted(FRAMINGS)))
MAX_FRAME = OptionSpec(
    "max_frame", "int",
    "Largest payload accepted, in bytes; a bigger declared length is a framing error "
    "(error reply where the channel has one, then the connection is closed).",
    default=DEFAULT_MAX_FRAME)


def framing_options(name: str, options: dict[str, Any]) -> tuple[str, int]:
    framing = options.get("framing", FRAMING.default)
    if framing not in FRAMINGS:
        raise ChannelConfigError(
            f"channel {name}: option framing: unknown framing {framing!r}; "
            f"expected one of {', '.join(sorted(FRAMINGS))}")
    max_frame = options.get("max_frame", MAX_FRAME.default)
    if not isinstance(max_frame, int) or isinstance(max_frame, bool) or max_frame <= 0:
        raise ChannelConfigError(f"channel {name}: option max_frame: expected a positive byte count, got {max_frame!r}")
    return framing, max_frame
