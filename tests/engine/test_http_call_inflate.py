"""http call inflates a gzip / deflate answer itself, never past max_reply: a counterpart's small gzip of
gigabytes (a decompression bomb) was inflated by httpx as it streamed in, CPU spent until the call's timeout
whatever max_reply kept.  A real loopback HTTP server sends the bodies."""
from __future__ import annotations

import functools
import gzip
import zlib

import pytest
import trio

from engine.channels.http_call import HttpConnector, HttpReply
from engine.channels.http_inflate import BadCoding, Inflater, Over

MiB = 1 << 20


def bomb_parts() -> tuple[bytes, bytes]:
    """A gzip stream of zeros as (its head, a block that can follow it any number of times): 1 MiB of zeros each,
    about 1 KB as sent (a full flush resets the compressor, so the same input gives the same bytes)."""
    c = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(MiB)
    head = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    return head, block


async def serve(nursery, answer) -> int:
    async def handler(stream) -> None:
        await stream.receive_some(65536)
        try:
            await answer(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass                    # the engine stopped reading and closed: what a bomb should meet
        await stream.aclose()

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]


async def call(nursery, port: int, max_reply: int = 65536, timeout: float = 10) -> object:
    c = HttpConnector("biller", {"url": f"http://127.0.0.1:{port}/payments", "max_reply": max_reply})
    await nursery.start(c.run)
    (r,) = await c.request_many([b'{"reference": "B1"}'], timeout)
    return r


async def test_a_gzip_answer_inflating_past_max_reply_fails_the_call_naming_the_bytes(nursery) -> None:
    head, block = bomb_parts()
    body = head + block * 1023                # about 1 MB as sent, 1 GiB inflated

    async def answer(stream) -> None:
        await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n"
                              b"content-length: %d\r\n\r\n" % len(body) + body)

    r = await call(nursery, await serve(nursery, answer), max_reply=2 * MiB)     # over 1 MB as sent: within it
    assert not isinstance(r, HttpReply) and r.kind == "refused", r
    text = str(r)
    assert text.startswith("channel biller: POST http://127.0.0.1:") and "answered 200 with a body over max_reply " \
           f"({2 * MiB} bytes; gzip body inflating past it after " in text and "bytes as sent); not read" in text, text


async def test_an_endless_gzip_answer_is_refused_at_max_reply_not_inflated_until_the_timeout(nursery) -> None:
    """The counterpart sends gzip blocks of 1 MiB of zeros for as long as the engine reads: before, httpx
    inflated them all until the call's timeout (kind timeout); now the call is refused once max_reply is passed."""
    head, block = bomb_parts()

    async def answer(stream) -> None:
        await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n"
                              b"transfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(head), head))
        while True:
            await stream.send_all(b"%x\r\n%s\r\n" % (len(block), block))

    r = await call(nursery, await serve(nursery, answer), timeout=30)
    assert not isinstance(r, HttpReply) and r.kind == "refused", r
    assert "over max_reply (65536 bytes; gzip body inflating past it" in str(r), r


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate"])
async def test_a_compressed_answer_within_max_reply_is_read_inflated(nursery, coding: str) -> None:
    doc = b'{"status": "OK", "confirmation": "C-1", "pad": "' + b"ab" * 10000 + b'"}'
    if coding == "gzip":
        body = gzip.compress(doc)
    elif coding == "deflate":
        body = zlib.compress(doc)
    else:                                   # deflate without its zlib header, as some servers send it
        c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        body = c.compress(doc) + c.flush()
    name = coding.replace("raw-", "").encode()

    async def answer(stream) -> None:
        await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: %s\r\n"
                              b"content-length: %d\r\n\r\n" % (name, len(body)) + body)

    r = await call(nursery, await serve(nursery, answer), max_reply=len(doc))
    assert isinstance(r, HttpReply) and bytes(r) == doc, r
    assert "content-encoding" not in r.http_headers


async def test_a_broken_gzip_answer_fails_the_call_as_refused(nursery) -> None:
    body = gzip.compress(b'{"status": "OK"}')[:12] + b"garbage!" * 4

    async def answer(stream) -> None:
        await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n"
                              b"content-length: %d\r\n\r\n" % len(body) + body)

    r = await call(nursery, await serve(nursery, answer))
    assert not isinstance(r, HttpReply) and r.kind == "refused", r
    assert "with a body that is not its Content-Encoding (gzip: " in str(r), r


def test_the_inflater_never_gives_more_than_its_bound_whatever_goes_in() -> None:
    head, block = bomb_parts()
    inf = Inflater("gzip", 3 * MiB)
    out = len(inf.feed(head)) + len(inf.feed(block)) + len(inf.feed(block))
    assert out == 3 * MiB
    with pytest.raises(Over):
        inf.feed(block)
    assert Inflater("identity", 4).feed(b"abcd") == b"abcd"
    with pytest.raises(Over):
        Inflater(None, 3).feed(b"abcd")
    assert Inflater("br", 10).feed(b"as sent") == b"as sent"        # a coding httpx does not read: as it came
    with pytest.raises(BadCoding):
        Inflater("gzip", 10).feed(b"not gzip at all")
