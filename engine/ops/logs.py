"""Structured logging for ``bsp run``: text or JSON lines, with secrets and card numbers scrubbed.

    setup_logging(level="info", fmt="json", file=Path("var/bsp.log"), secrets=[token, env_secret])

Every line goes through ``Scrubber`` after formatting, whatever logger wrote
it: each known secret value (the admin token, deployment secrets read from
the environment or files) is replaced by ``***``, and any 13-19 digit number
that passes the Luhn check (a card number) is masked like a classified
``pan`` (first 6, last 4).  Deal lines (logger ``bsp.deal``) are already
masked by their format's classification (``engine.ops.observe``); the scrub
is the second line of defence for text the engine did not expect, such as a
value quoted in an error message.

JSON lines carry ``ts`` (ISO 8601 UTC), ``level``, ``logger``, ``msg`` and,
for deal lines, the deal's fields (``deal_id``, ``route``, ``status``, ...).

A text line is one line whatever a sender put in the values it quotes (a file name, a reference, a
header): control characters in a message (line feeds, carriage returns, ANSI escapes, NUL, C1 controls,
U+2028/U+2029) are written as escapes (``\\n``, ``\\x1b``), so a value cannot forge a line of its own or
drive the terminal of whoever reads the log.  A traceback keeps its line breaks, its other control
characters are escaped.  JSON lines are escaped by JSON itself.
"""
from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import orjson

from engine.filemodes import create_private
from formats.classify import mask_value

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")
MIN_SECRET = 6            # shorter "secrets" would scrub ordinary words and numbers

# a card number, alone or right after the escape of a control character (``\x01``, ``\u0001``: this text
# formatter's and JSON's), whose digits would otherwise join it into one longer run that fails the Luhn check
_CARD = re.compile(r"(?<!\d)()(\d{13,19})(?!\d)")
_CARD_OR_ESCAPED = re.compile(r"(?:(\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}))|(?<!\d))(\d{13,19})(?!\d)")
_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")     # tab stays
_CONTROLS_BUT_LF = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def escape_controls(text: str, keep_newlines: bool = False) -> str:
    """``text`` with its control characters written as escapes (``\\n``, ``\\x1b``, ``\\u2028``): one line."""
    if text.isprintable():                  # the common case: nothing to escape
        return text
    return (_CONTROLS_BUT_LF if keep_newlines else _CONTROLS).sub(_escape, text)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


class Scrubber:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: list[str] = []
        for s in secrets:
            self.add(s)

    def add(self, secret: str | None) -> None:
        # A new list swapped in by one assignment: a log call on another thread iterates either the old
        # list or the new one, never one being sorted in place (which can skip a secret for that line).
        if secret and len(secret) >= MIN_SECRET and secret not in self.secrets:
            self.secrets = sorted([*self.secrets, secret], key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for s in self.secrets:
            if s in text:
                text = text.replace(s, "***")
        if any(c.isdigit() for c in text):
            text = (_CARD_OR_ESCAPED if "\\" in text else _CARD).sub(_mask_card, text)
        return text


def _mask_card(m: re.Match[str]) -> str:
    escape, digits = m.group(1) or "", m.group(2)
    return escape + mask_value(digits, "pan") if luhn_ok(digits) else m.group()


class TextFormatter(logging.Formatter):
    def __init__(self, scrub: Scrubber) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        return self.scrub(super().format(record))

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return escape_controls(super().formatException(ei), keep_newlines=True)


class JsonFormatter(logging.Formatter):
    def __init__(self, scrub: Scrubber) -> None:
        super().__init__()
        self.scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "bsp", None)
        if isinstance(fields, dict):
            for k, v in fields.items():
                doc.setdefault(k, v)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return self.scrub(orjson.dumps(doc, default=str).decode())


class LogFile(logging.handlers.WatchedFileHandler):
    """``--log-file``: written line by line and opened again when it is moved or removed (logrotate's
    default rotation renames it; a plain ``FileHandler`` would go on writing into the renamed file for
    ever); a file bsp makes, at start or after a rotation, is owner-only (0600) whatever the umask."""

    def _open(self) -> Any:
        create_private(Path(self.baseFilename))
        return super()._open()


# the secrets every log line is scrubbed of, whichever command logs (bsp run adds its admin token's file)
SECRET_ENV = ("BSP_ADMIN_TOKEN", "BSP_AUDIT_KEY", "BSP_FIELD_KEYS")


_LATE: list[str] = []      # secrets a component read (a channel's token): every scrubber set up gets them too


def scrub_secret(value: str | None) -> None:
    """A secret a component read itself (a NATS channel's token or password): scrubbed from every log line
    written from now on, by the scrubber of each handler ``setup_logging`` installed (and of those to come)."""
    if not value or len(value) < MIN_SECRET:
        return
    if value not in _LATE:
        _LATE.append(value)
    for h in logging.getLogger().handlers:
        scrub = getattr(h.formatter, "scrub", None) if getattr(h, "_bsp", False) else None
        if isinstance(scrub, Scrubber):
            scrub.add(value)


def command_logging(level: str = "warning") -> Scrubber:
    """The log of a command that runs routes without ``bsp run``'s log options (``bsp test``, ``bsp replay``,
    ``bsp dead retry``): warnings and errors on stderr, formatted, masked and scrubbed as ``bsp run``'s are,
    instead of Python's bare last-resort handler (which printed a route's internal error and its values as
    they came)."""
    scrub = setup_logging("error" if level == "critical" else level, "text")
    if level == "critical":
        logging.getLogger().setLevel(logging.CRITICAL)
    for name in SECRET_ENV:
        scrub.add(os.environ.get(name))
    return scrub


def setup_logging(level: str = "warning", fmt: str = "text", file: Path | None = None,
                  secrets: Iterable[str] = ()) -> Scrubber:
    """Configure the root logger (stderr, plus ``file`` when given); returns the scrubber to add secrets to."""
    if fmt not in FORMATS:
        raise ValueError(f"--log-format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if level not in LEVELS:
        raise ValueError(f"--log-level: expected one of {', '.join(LEVELS)}, got {level!r}")
    scrub = Scrubber([*secrets, *_LATE])
    formatter: logging.Formatter = JsonFormatter(scrub) if fmt == "json" else TextFormatter(scrub)
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_bsp", False):
            root.removeHandler(h)
            h.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(LogFile(file, encoding="utf-8"))
    for h in handlers:
        h.setFormatter(formatter)
        h._bsp = True  # type: ignore[attr-defined]
        root.addHandler(h)
    root.setLevel(getattr(logging, level.upper()))
    return scrub
