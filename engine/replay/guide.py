"""Which declared formats a channel's frames are written in, from the Program.

    guide = FormatGuide(program, binder.codec)
    guide.decode("mainframe", "inbound", "in", raw)   -> ("BillPayReq", {...}) or (None, None)

Inbound ``in``: the receive formats of the channel's routes.  Inbound ``out``:
the formats of their replies (``reply``, ``on error reply``) and of the
channel's ``on error reply``.  Outbound ``out``: the request formats of the
``call`` steps to the channel; outbound ``in``: their reply formats.  A frame is
decoded with the first candidate that accepts it.
"""
from __future__ import annotations

from typing import Any, Callable

from formats.classify import classified_values, mask, mask_known, tags_of
from formats.errors import FormatError


class FormatGuide:
    def __init__(self, program: Any, codec: Callable[[str], Any]) -> None:
        self.program = program
        self._codec = codec
        self._cands: dict[tuple[str, str, str], list[str]] = {}
        for route in program.routes:
            ch = route.channel
            if route.format:
                self._add((ch, "inbound", "in"), route.format)
            for step in _all_steps(route):
                o = step.options
                if step.kind == "reply":
                    fmt = o.get("format") or route.format
                    if fmt:
                        self._add((ch, "inbound", "out"), fmt)
                elif step.kind == "call":
                    target = o.get("channel")
                    if o.get("format"):
                        self._add((target, "outbound", "out"), o["format"])
                    rf = o.get("reply_format")
                    if rf:
                        self._add((target, "outbound", "in"), rf)
        for name, decl in program.channels.items():
            if decl.error_reply is not None and decl.error_reply.options.get("format"):
                self._add((name, "inbound", "out"), decl.error_reply.options["format"])

    def _add(self, key: tuple[str, str, str], fmt: str) -> None:
        lst = self._cands.setdefault(key, [])
        if fmt not in lst:
            lst.append(fmt)

    def candidates(self, channel: str, role: str, direction: str) -> list[str]:
        return list(self._cands.get((channel, role, direction), ()))

    def codec(self, name: str) -> Any:
        return self._codec(name)

    def decode(self, channel: str, role: str, direction: str, raw: bytes | None,
               prefer: str | None = None) -> tuple[str | None, Any]:
        if raw is None:
            return None, None
        cands = self.candidates(channel, role, direction)
        if prefer is not None:
            cands = [prefer] + [c for c in cands if c != prefer]
        for name in cands:
            try:
                return name, self._codec(name).decode(raw)
            except FormatError:
                continue
            except Exception:   # noqa: BLE001 - a codec bug: try the next candidate
                continue
        return None, None

    def mask(self, channel: str, role: str, direction: str, raw: bytes,
             known: dict[str, str] | None = None, fakes: Any = None) -> tuple[bytes | None, str | None]:
        """(bytes to store, what was masked).  Frames without classified fields come back as they are;
        a frame that does not decode, or whose masked values do not encode, gives (None, reason).

        ``known`` (one exchange's frames share it) gathers the text of this frame's classified fields
        and masks those texts wherever they appear in this frame, under any field: an account classified
        in the request is masked in the call that carries it too, whatever that call's format says.

        ``fakes`` (a ``formats.pseudonym.Pseudonyms``, one per output): a classified value the route may
        check (an IBAN, a card number) gets a made-up stand-in of the same shape instead of a mask."""
        name, values = self.decode(channel, role, direction, raw)
        if name is None:
            if channel not in getattr(self.program, "channels", {channel: None}):
                return None, "channel unknown to the configuration masking it: not stored"
            if not self.candidates(channel, role, direction):
                return raw, None           # no declared format: nothing is classified
            return None, "undecodable: not stored (it could hold classified data)"
        codec = self._codec(name)
        tags = tags_of(codec)
        found = classified_values(values, tags) if known is not None or fakes is not None else {}
        if known is not None:
            known.update(found)
        stand_ins = None
        if fakes is not None:
            extra = fakes.add(known if known is not None else found)
            if known is not None:
                known.update({k: t for k, t in extra.items() if k not in known})
            stand_ins = fakes.mapping
        masked_values = mask(values, tags, stand_ins)
        masked_values, carried = mask_known(masked_values, known or {}, stand_ins)
        if not tags and not carried:
            return raw, None
        what = ",".join([*sorted(tags), *(["values of classified fields"] if carried else [])])
        try:
            out = codec.encode(masked_values)
            codec.decode(out)
        except Exception as exc:   # noqa: BLE001
            # a numeric field (ISO 8583 DE 2 is type n, a copybook PIC 9) cannot hold 411111******1111:
            # the hidden digits as zeros (4111110000001111) keep the message valid and replayable; a secret
            # field that cannot hold *** (a PIN block, ISO 8583 DE 52 type b) gets a same-length filler
            fill = filler(codec)
            fitted, zeroed, filled = fit_mask(values, masked_values, fill)
            if not zeroed and not filled:
                return None, f"unmaskable ({name}: {exc}): not stored"
            out, exc2 = _encoded(codec, fitted)
            dated: list[str] = []
            while exc2 is not None:
                # a field whose zeroed mask its codec refuses (an expiry date YYMM: 2*** -> 2000, month 00)
                # gets the codec's filler for it (a valid date of its layout carrying nothing of the value)
                path = getattr(exc2, "field", None)
                if not isinstance(fitted, dict) or path not in fitted or path in dated \
                        or not isinstance(values, dict) or path not in values:
                    return None, f"unmaskable ({name}: {exc2}): not stored"
                value = fill(path, values[path])
                if value is None or value == fitted[path]:
                    return None, f"unmaskable ({name}: {exc2}): not stored"
                fitted = {**fitted, path: value}
                dated.append(path)
                out, exc2 = _encoded(codec, fitted)
            if zeroed:
                what += " (hidden digits as 0 in numeric values)"
            if filled:
                what += f" (secret {', '.join(filled)} as a same-length filler: *** does not fit)"
            if dated:
                what += f" ({', '.join(dated)} as a same-length filler of its layout: the mask does not fit)"
        return out, what


def _encoded(codec: Any, values: Any) -> tuple[bytes | None, Exception | None]:
    try:
        out = codec.encode(values)
        codec.decode(out)
    except Exception as exc:   # noqa: BLE001 - told as "unmaskable" by the caller
        return None, exc
    return out, None


def filler(codec: Any) -> Callable[[str, Any], Any]:
    """``fill(path, value)``: a same-length value of the field's kind carrying nothing of ``value`` (the
    codec's ``mask_filler``, e.g. ISO 8583: 0xFF bytes in a ``b`` field, zeros in an ``n`` one), or None.
    Without one, a value of digits only gets zeros."""
    own = getattr(codec, "mask_filler", None)

    def fill(path: str, value: Any) -> Any:
        if callable(own):
            return own(path, value)
        text = str(value)
        return "0" * len(text) if text.isascii() and text.isdigit() else None
    return fill


def fit_mask(original: Any, masked: Any, fill: Callable[[str, Any], Any]) -> tuple[Any, bool, list[str]]:
    """``masked`` made to fit fields that cannot hold the mask text: (values, digits zeroed, paths
    filled).  The hidden digits of an all-digit value as 0 (``zero_hidden_digits``); a secret's ``***``
    replaced by ``fill(path, original value)`` where that gives a value."""
    digits = zero_hidden_digits(original, masked)
    filled: list[str] = []

    def walk(orig: Any, m: Any, path: str) -> Any:
        if isinstance(m, dict) and isinstance(orig, dict):
            return {k: walk(orig.get(k), v, f"{path}.{k}" if path else str(k)) for k, v in m.items()}
        if isinstance(m, list) and isinstance(orig, list) and len(m) == len(orig):
            return [walk(o, v, f"{path}[{i}]") for i, (o, v) in enumerate(zip(orig, m))]
        if m == "***" and orig not in (None, "", "***") and not isinstance(orig, bool) \
                and isinstance(orig, (str, int)):
            value = fill(path, orig)
            if value is not None:
                filled.append(path)
                return value
        return m

    out = walk(original, digits, "")
    return (out if filled else digits), digits is not masked, filled


def zero_hidden_digits(original: Any, masked: Any) -> Any:
    """``masked`` where a value that was all digits (a card number in a numeric field) and is masked
    with ``*`` has ``0`` in their place; ``masked`` itself when there is none."""
    if isinstance(masked, dict) and isinstance(original, dict):
        out = {k: zero_hidden_digits(original.get(k), v) for k, v in masked.items()}
        return masked if all(out[k] is masked[k] for k in masked) else out
    if isinstance(masked, list) and isinstance(original, list) and len(masked) == len(original):
        items = [zero_hidden_digits(o, m) for o, m in zip(original, masked)]
        return masked if all(a is b for a, b in zip(items, masked)) else items
    if (isinstance(masked, str) and "*" in masked and not isinstance(original, bool)
            and isinstance(original, (str, int)) and str(original).isdigit()
            and len(masked) == len(str(original))):
        return masked.replace("*", "0")
    return masked


def _all_steps(route: Any) -> list[Any]:
    return list(route.steps) + list(route.on_error)
