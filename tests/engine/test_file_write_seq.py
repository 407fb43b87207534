"""`file write`'s `{seq}` numbers files per name: with `name = "claim-{claim_id}-{seq}.json"` each
claim's files are numbered from 1 (it used to be one counter for the whole channel, so claim 123's
first file could be `claim-123-000002.json` because claim 456 had taken 1).  A number is never
reused in a run (even when the receiver moved the file away), a restart skips every file that
exists, and two writers taking the same name at once never write the same file."""
from __future__ import annotations

from pathlib import Path

import orjson
import trio

from engine.channels.file_names import NameValues
from engine.channels.file_write import FileWriter


def _claims(*ids: str) -> list[NameValues]:
    return [NameValues({"claim_id": i}) for i in ids]


async def _files(w: FileWriter, payloads: list[bytes], ids: list[str]) -> list[str]:
    got = await w.request_many(payloads, names=_claims(*ids))
    return [orjson.loads(g)["file"] for g in got]


async def test_seq_numbers_each_claims_files_from_one(tmp_path: Path) -> None:
    out = tmp_path / "out"
    w = FileWriter("o", {"dir": str(out), "name": "claim-{claim_id}-{seq}.json", "fsync": False})
    await w.run()
    got = await _files(w, [b"a1", b"b1", b"a2"], ["123", "456", "123"])
    assert got == ["claim-123-000001.json", "claim-456-000001.json", "claim-123-000002.json"]
    assert await _files(w, [b"c1"], ["789"]) == ["claim-789-000001.json"]
    # the receiver took claim 123's files away: their numbers are not used again in this run
    (out / "claim-123-000001.json").unlink()
    (out / "claim-123-000002.json").unlink()
    assert await _files(w, [b"a3"], ["123"]) == ["claim-123-000003.json"]
    # a restart: numbering per claim again, skipping every file that exists, replacing none
    again = FileWriter("o", {"dir": str(out), "name": "claim-{claim_id}-{seq}.json", "fsync": False})
    await again.run()
    got = await _files(again, [b"b2", b"d1", b"a4"], ["456", "999", "123"])
    assert got == ["claim-456-000002.json", "claim-999-000001.json", "claim-123-000001.json"]
    assert (out / "claim-456-000001.json").read_bytes() == b"b1"
    assert (out / "claim-123-000003.json").read_bytes() == b"a3"


async def test_seq_same_name_at_once_never_the_same_file(tmp_path: Path) -> None:
    """Two channels on one folder (or two engines) and concurrent deals of each, all rendering
    `claim-7-{seq}.json`: every request is its own file, numbered 1..N without a gap."""
    out = tmp_path / "out"
    writers = [FileWriter(n, {"dir": str(out), "name": "claim-{claim_id}-{seq}.json", "fsync": False})
               for n in ("a", "b")]
    for w in writers:
        await w.run()
    sent: list[bytes] = []

    async def deal(w: FileWriter, k: int) -> None:
        p = f"{w.name}-{k}".encode()
        sent.append(p)
        await _files(w, [p, p + b"+"], ["7", "7"])

    async with trio.open_nursery() as nursery:
        for k in range(20):
            for w in writers:
                nursery.start_soon(deal, w, k)
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"claim-7-{n:06d}.json" for n in range(1, 81)]
    bodies = sorted(p.read_bytes() for p in out.iterdir())
    assert bodies == sorted(sent + [p + b"+" for p in sent])


async def test_a_write_never_touches_another_writers_temporary_file(tmp_path: Path) -> None:
    """Each write has its own temporary file: it used to be `.NAME.tmp`, shared by two writers of
    one name at once (two channels on a folder, two engines), one truncating and removing the other's
    half-written file, so a file could hold the other's bytes or a write fail."""
    out = tmp_path / "out"
    w = FileWriter("o", {"dir": str(out), "name": "claim-{claim_id}-{seq}.json", "fsync": False})
    await w.run()
    (out / ".claim-7-000001.json.tmp").write_bytes(b"another writer, half way")
    assert await _files(w, [b"mine"], ["7"]) == ["claim-7-000001.json"]
    assert (out / "claim-7-000001.json").read_bytes() == b"mine"
    assert (out / ".claim-7-000001.json.tmp").read_bytes() == b"another writer, half way"
    assert sorted(p.name for p in out.iterdir()) == [".claim-7-000001.json.tmp", "claim-7-000001.json"]
    (out / ".claim-7-000001.json.tmp").unlink()     # test_file_write_names looks for *.tmp in every test's folder
