"""ISO 8583 decode/encode rate for a ~300-byte 0200 (ASCII and BCD specs).

Run:  .venv/bin/python bench/bench_iso8583.py [--seconds 2]
Goal: decode >= 30k msgs/s on one core (ASCII 0200 of ~300 bytes), with validation on (field
contents and the 0200 message rules; the default).  "lenient" is the same spec with validate=False.
"""
from __future__ import annotations

import argparse
import time

from formats.iso8583 import codec_for

MSG_0200 = {
    "t": "0200", "2": "4761739001010119", "3": "000000", "4": "000000012500", "7": "0209130746",
    "11": "000123", "12": "130746", "13": "0209", "14": "2512", "18": "5999", "22": "051", "25": "00",
    "32": "00000012345", "35": "4761739001010119=25122011143804489", "37": "604012345678",
    "41": "TERM0001", "42": "MERCHANT0000001", "43": {"name": "ACME STORES", "city": "WELLINGTON", "country": "NZ"},
    "49": "554",
    "55": {"9F02": "000000012500", "9F03": "000000000000", "9F1A": "0554", "95": "0000000000", "5F2A": "0554",
           "9A": "260209", "9C": "00", "9F37": "19F95B87", "82": "5C00", "9F36": "0002",
           "9F10": "06011203000000", "9F26": "ABF56CD3FE014691"},
    "64": "80FB32F3FFFFFFFF",
}


def rate(fn, arg, seconds: float) -> float:
    n = 0
    batch = 2000
    t0 = time.perf_counter()
    while True:
        for _ in range(batch):
            fn(arg)
        n += batch
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    for spec in ("iso8583_1987_ascii", "iso8583_1987_bcd"):
        codec = codec_for(spec)
        raw = codec.encode(MSG_0200)
        assert codec.encode(codec.decode(raw)) == raw
        dec = rate(codec.decode, raw, args.seconds)
        enc = rate(codec.encode, MSG_0200, args.seconds)
        lenient = codec_for(spec, validate=False)
        ldec = rate(lenient.decode, raw, args.seconds)
        print(f"{spec}: 0200 of {len(raw)} bytes, {len(MSG_0200) - 1} fields: "
              f"decode {dec:,.0f} msgs/s, encode {enc:,.0f} msgs/s (validated); lenient decode {ldec:,.0f} msgs/s")


if __name__ == "__main__":
    main()
