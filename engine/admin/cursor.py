"""The cursor of a listing that goes on over several pages (``GET /deals``, ``GET /dead-letters``).

Rows are listed newest first, ordered by (time, id) descending (``received_at, deal_id`` for deals,
``at, id`` for dead letters): times can tie, the id never does, so the pair is a total order and a
page's last row says exactly where the next page starts, whatever was added meanwhile (a newer row
comes before the first page, never between two).  The cursor is that pair as text,
``2026-11-26T18:40:00.123456Z~<id>``: no character a URL must escape, so the ``next`` of a page can be
pasted into the next request as it is.

    text = encode(row["received_at"], row["deal_id"])
    at, ident = decode(text)          # ValueError naming what was expected
"""
from __future__ import annotations

from datetime import datetime, timezone

SEP = "~"


def encode(at: datetime, ident: str) -> str:
    """The cursor after a row at ``at`` (aware) with id ``ident``."""
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ") + SEP + str(ident)


def decode(text: str) -> tuple[datetime, str]:
    """``(time, id)`` of a cursor ``encode`` made; ValueError when ``text`` is not one."""
    at, sep, ident = text.strip().partition(SEP)
    if not sep or not ident:
        raise ValueError("the `next` of a previous page (TIME~ID)")
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise ValueError("the `next` of a previous page (TIME~ID, TIME in ISO 8601)") from None
    return (moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)), ident
