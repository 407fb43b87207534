"""SWIFT MT103 parse / write rate.

Run:  .venv/bin/python bench/bench_swift.py [--seconds 2]
"""
from __future__ import annotations

import argparse
import datetime as dt
import time
from decimal import Decimal

from formats.swift import SwiftCodec

MT103 = {
    "block1": {"app": "F", "service": "01", "lt": "BANKBEBBAXXX", "session": "0000", "sequence": "000000"},
    "block2": {"io": "I", "type": "103", "receiver": "BANKDEFFXXXX", "priority": "N", "rest": ""},
    "block3": {"108": "MUR0001", "121": "8579f4a4-a547-463e-ae63-e7c6620d59b4"},
    "block4": [
        {"tag": "20", "value": "REF-0001"}, {"tag": "23B", "value": "CRED"},
        {"tag": "32A", "value": {"date": dt.date(2019, 10, 14), "currency": "USD", "amount": Decimal("1814.28")}},
        {"tag": "33B", "value": {"currency": "USD", "amount": Decimal("1814.28")}},
        {"tag": "50K", "value": "/12345678\nFOO CAPITAL MARKETS LP\n99 WALL ST STE 9999\nNEW YORK, NY 10005"},
        {"tag": "52A", "value": {"account": None, "bic": "FOODESMM"}},
        {"tag": "57A", "value": {"account": None, "bic": "BANKDEFFXXX"}},
        {"tag": "59", "value": "/00123456789012345678\nMERCADOS Y GESTION DE VALORES SA\nFOOSTREET 65\nMADRID"},
        {"tag": "70", "value": "INVOICE 4711 AND 4712"}, {"tag": "71A", "value": "SHA"},
        {"tag": "72", "value": "/ACC/ 00940060752415000231"},
    ],
    "block5": {"CHK": "B3BF0D846AFD"},
    "eol": "\r\n",
}


def rate(fn, arg, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(500):
            fn(arg)
        n += 500
        if (dt_ := time.perf_counter() - t0) >= seconds:
            return n / dt_


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    codec = SwiftCodec("mt103")
    raw = codec.encode(MT103)
    assert codec.decode(raw) == MT103
    print(f"MT103 of {len(raw)} bytes, {len(MT103['block4'])} fields: "
          f"parse {rate(codec.decode, raw, args.seconds):,.0f} msgs/s, "
          f"write {rate(codec.encode, MT103, args.seconds):,.0f} msgs/s")


if __name__ == "__main__":
    main()
