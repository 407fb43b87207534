"""The field keyring against the transaction log it is to read, when the log is opened (``TxnManager.log``).

With a field keyring the transaction log (``<ledger>.txn``) holds sealed values: the replies a repeat of a deal
key is answered with, the requests and call values of deals in flight, queued reversals.  An engine started
with another keyring (a key id given to a new key, another environment's ring) or with none could not open
them: the first repeat of a kept key failed inside the engine (an HTTP 500 with a traceback in the log, no
deal, no dead letter) and recovery could not resolve a deal left in flight.  So the log's sealed values are
tried when it is opened, a few per key id (one that opens proves the key), and a keyring that opens none of
a key id's is refused with one error naming the log, the key id and where the keyring came from, never a key
(``KeyMismatch``, as for an audit key the chain does not verify with; ``bsp run`` exits 2)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from engine.fieldcrypt import PREFIX, KeyringError

TRIES = 3          # sealed values tried per key id before the key is taken for another one
SEALED = "$sealed"


def _token(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        token = value.get("k", value.get(SEALED))
        if isinstance(token, str) and token.startswith(PREFIX):
            return token
    return None


def sealed_values(log: Any) -> Iterator[tuple[str, str]]:
    """``(token, associated data)`` of the sealed values the log holds (``TxnManager.seal`` / ``seal_values``)."""
    ends = log.ends
    sample = ends.sealed_sample() if hasattr(ends, "sealed_sample") else list(ends.values())
    for e in [*sample, *log.unrecorded.values()]:      # the answers files: a few per key id and file
        for name in ("reply", "raw"):
            token = _token(e.get(name))
            if token is not None:
                yield token, f"{name}|{e.get('id')}"
    for p in log.pending.values():
        token = _token(p.begin.get("raw"))
        if token is not None:
            yield token, f"raw|{p.id}"
        for kind, values in (("reply", p.replies), ("values", p.values)):
            for step, value in values.items():
                token = _token(value)
                if token is not None:
                    yield token, f"{kind}|{p.id}|{step}"
    for r in log.reversals.values():
        token = _token(r.get("values"))
        if token is not None:
            yield token, f"values|{r.get('id')}|{r.get('step')}"


def check_keyring(log: Any, keyring: Any, path: Path) -> None:
    """Raise ``KeyMismatch`` when ``keyring`` cannot open the sealed values of the log at ``path``."""
    from engine.ledger_store import KeyMismatch

    proven: set[str] = set()
    tried: dict[str, int] = {}
    for token, aad in sealed_values(log):
        kid = token[len(PREFIX):].split(":", 1)[0]
        if kid in proven or tried.get(kid, 0) >= TRIES:
            continue
        if keyring is None:
            raise KeyMismatch(
                f"{path}: the transaction log holds values sealed with the field keyring (key id {kid!r}: kept "
                f"answers, deals in flight) and no field keyring is given: a repeat of a kept deal key could not "
                f"be answered, nor a deal in flight resolved. Start with the keyring the engine ran with "
                f"(ledger.field_keys in the deployment file, or BSP_FIELD_KEYS_FILE / BSP_FIELD_KEYS; "
                f"docs/security.md#keys-and-rotation)")
        if kid not in keyring.keys:
            raise KeyMismatch(
                f"{path}: the transaction log holds values sealed with field key {kid!r}, which the field "
                f"keyring{_from(keyring)} does not hold (it has {', '.join(sorted(keyring.keys))}): keep the "
                f"old key in the ring when adding a new one (docs/security.md#keys-and-rotation)")
        try:
            keyring.decrypt(token, aad.encode())
        except KeyringError:
            tried[kid] = tried.get(kid, 0) + 1
            continue
        proven.add(kid)
    for kid, n in tried.items():
        if kid not in proven:
            raise KeyMismatch(
                f"{path}: field key {kid!r} of the keyring{_from(keyring)} is not the key the transaction "
                f"log's values were sealed with (none of the {n} tried opens with it): another environment's "
                f"keyring, or a key id given to a new key. Start with the keyring the engine ran with; a new key "
                f"takes a new key id, the old one kept in the ring (docs/security.md#keys-and-rotation)")


def _from(keyring: Any) -> str:
    source = getattr(keyring, "source", "")
    return f" from {source}" if source else ""
