"""E103 (a route test's value of the other kind than its field: text for a number, a number for text) for the
formats whose description fixes their fields' kinds without a field block: ISO 8583 (every field decodes to
text; an `n` field is digits, an `an`/`ans` one takes no number), SWIFT MT (header values and block 4 tags
and values are text, a typed field's amount a decimal), ISO 20022 read through its XSD (xs:decimal, the
integer types, text) and generic XML (every value text).  `bsp check` tells each with its place, the kind
the format declares and the value to write; the right kinds compile clean and their tests pass."""
from __future__ import annotations

from pathlib import Path

from dsl.load import compile_paths
from engine.registry import default_registry
from engine.routetest.runner import run_paths

REPO = Path(__file__).resolve().parents[2]
XSD = REPO / "routes" / "account_consolidation" / "xsd" / "camt.053.001.02.xsd"

ROUTE = f'''format Card = iso8583 iso8583_1987_ascii
format Mt = swift mt940
format Camt = iso20022 camt.053.001.02 xsd "{XSD}"
format Order = xml
format Js = json
channel pos = memory
channel swin = memory
channel cin = memory
channel host = tcp connect {{ address = "127.0.0.1:1"  match = iso8583 }}
channel fin = tcp connect {{ address = "127.0.0.1:1" }}
channel camt = tcp connect {{ address = "127.0.0.1:1" }}
channel shop = tcp connect {{ address = "127.0.0.1:1" }}
route auth {{
    receive from pos as Card
    call h = host as Card reply Card {{
        t = "0200"  "2" = msg["2"]  "3" = "000000"  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]
        "37" = msg["37"]  "41" = msg["41"]  "49" = msg["49"]
    }}
    call o = shop as Order reply Js {{ Order.Id = msg["37"]  Order.Amount = 12.50 }}
    reply Card {{
        t = "0210"  "3" = "000000"  "4" = msg["4"]  "7" = msg["7"]  "11" = msg["11"]  "37" = msg["37"]
        "39" = h["39"]  "41" = msg["41"]  "49" = msg["49"]
    }}
}}
route statement {{
    receive from swin as Js
    call f = fin as Mt reply Mt {{ block1 = msg.b1  block2 = msg.b2  block4 = msg.b4 }}
    reply Js {{ ok = true }}
}}
route camt053 {{
    receive from cin as Js
    call c = camt as Camt reply Camt {{ message = "camt.053.001.02"  BkToCstmrStmt = msg.doc }}
    reply Js {{ ok = true }}
}}
'''

SEND = ('    given pos sends Card { t = "0200"  "2" = "6228480000000011"  "3" = "000000"  "4" = 12550\n'
        '        "7" = "1125120000"  "11" = "000001"  "37" = "CP000000001G"  "41" = "ATM00001"  "49" = "156" }\n')
CARD = '''    given host answers { t = "0210"  "3" = "000000"  "4" = "000000012550"  "7" = "1125120000"  "11" = "000001"
        "37" = "CP000000001G"  "39" = "00"  "41" = "ATM00001"  "49" = "156" }
    given shop answers { ok = true }
'''
ANSWERS = CARD + '''    given fin answers Mt {
        block1.app = "F"  block1.service = "01"  block1.lt = "BANKBEBBAXXX"  block1.session = "0000"
        block1.sequence = "000000"  block2.io = "I"  block2.type = "940"  block2.receiver = "BANKDEFFXXXX"
        block2.priority = "N"  block2.rest = ""
        block4[0].tag = "20"  block4[0].value = "REF1"  block4[1].tag = "25"  block4[1].value = "NL26VAYB8060476890"
        block4[2].tag = "28C"  block4[2].value = "1/1"
        block4[3].tag = "60F"  block4[3].value.mark = "C"  block4[3].value.date = parse_date("20261124", "%Y%m%d")
        block4[3].value.currency = "EUR"  block4[3].value.amount = 1000.00
        block4[4].tag = "62F"  block4[4].value.mark = "C"  block4[4].value.date = parse_date("20261124", "%Y%m%d")
        block4[4].value.currency = "EUR"  block4[4].value.amount = 1000.00
    }
    given camt answers {
        message = "camt.053.001.02"
        BkToCstmrStmt.GrpHdr.MsgId = "M1"  BkToCstmrStmt.GrpHdr.CreDtTm = "2026-11-25T06:00:00"
        BkToCstmrStmt.Stmt[0].Id = "S1"  BkToCstmrStmt.Stmt[0].CreDtTm = "2026-11-25T06:00:00"
        BkToCstmrStmt.Stmt[0].Acct.Id.IBAN = "DE89370400440532013000"  BkToCstmrStmt.Stmt[0].Acct.Ccy = "EUR"
        BkToCstmrStmt.Stmt[0].Bal[0].Tp.CdOrPrtry.Cd = "OPBD"  BkToCstmrStmt.Stmt[0].Bal[0].Amt.value = 100.00
        BkToCstmrStmt.Stmt[0].Bal[0].Amt.Ccy = "EUR"  BkToCstmrStmt.Stmt[0].Bal[0].CdtDbtInd = "CRDT"
        BkToCstmrStmt.Stmt[0].Bal[0].Dt.Dt = parse_date("20261124", "%Y%m%d")
    }
'''


def _write(tmp_path: Path, body: str) -> list[Path]:
    (tmp_path / "r.route").write_text(ROUTE)
    (tmp_path / "r_test.route").write_text('use "r.route"\n\ntest "t" {\n' + body + "}\n")
    return sorted(tmp_path.glob("*.route"))


def _at(tmp_path: Path, line: int, needle: str) -> tuple[int, int]:
    """(line, column) of ``needle`` on that line of the test file: where the caret must go."""
    text = (tmp_path / "r_test.route").read_text().splitlines()[line - 1]
    assert needle in text, (line, text)
    return line, text.index(needle) + 1


def _diags(tmp_path: Path, body: str) -> dict[tuple[int, int], object]:
    res = compile_paths(_write(tmp_path, body), default_registry())
    assert all(d.code == "E103" for d in res.diagnostics), [(d.code, d.message) for d in res.diagnostics]
    return {(d.pos.line, d.pos.col): d for d in res.diagnostics}


def test_the_right_kinds_compile_clean_and_the_test_passes(tmp_path: Path) -> None:
    card = '''    expect call host { t = "0200"  "4" = "000000012550"  "41" = "ATM00001" }
    expect call shop { Order.Id = "CP000000001G"  Order.Amount = "12.50" }
    expect reply { t = "0210"  "4" = "000000012550"  "39" = "00" }
'''
    others = '''    expect call fin { block2.type = "940"  block4[0].tag = "20"  block4[3].value.amount = 1000.00
                      block4[3].value.currency = "EUR"  block4[1].value = "NL26VAYB8060476890" }
    expect call camt { BkToCstmrStmt.Stmt[0].Bal[0].Amt.value = 100.00  BkToCstmrStmt.Stmt[0].Bal[0].Amt.Ccy = "EUR"
                       BkToCstmrStmt.Stmt[0].Acct.Ccy = "EUR"  message = "camt.053.001.02" }
'''
    res = compile_paths(_write(tmp_path, SEND + ANSWERS + card + others), default_registry())
    assert not res.diagnostics, [(d.code, d.message) for d in res.diagnostics]
    _write(tmp_path, SEND + CARD + card)
    ran = run_paths([tmp_path], default_registry())
    assert not ran.broken, [d.message for b in ran.broken for d in b.diagnostics]
    [out] = ran.outcomes
    assert out.passed, out.failures


def test_iso8583_expectations_and_sends_of_the_other_kind(tmp_path: Path) -> None:
    # line 4: the send; 6..: the answers; then these expectations
    first = 4 + SEND.count("\n") + ANSWERS.count("\n")
    body = SEND.replace('"41" = "ATM00001"', '"41" = 12345678') + ANSWERS + '''    expect call host { "4" = 12550  t = 200 }
    expect reply { "39" = 0  "4" = "125.50"  "11" = "000001" }
'''
    got = _diags(tmp_path, body)
    at = [_at(tmp_path, 5, "12345678"), _at(tmp_path, first, "12550"), _at(tmp_path, first, "200"),
          _at(tmp_path, first + 1, "0 "), _at(tmp_path, first + 1, '"125.50"')]
    assert sorted(got) == at, [(k, d.message) for k, d in got.items()]
    sent = got[at[0]]
    assert sent.message == ('field `"41"` of format `Card` is text (ISO 8583 type ans, 8 characters): the number '
                            '12345678 cannot be sent in it: the format does not encode it')
    assert sent.help == 'write it as text: `"41" = "12345678"`'
    amount = got[at[1]]
    assert amount.message == ('field `"4"` of format `Card` is text (ISO 8583 type n, 12 digits): the number 12550 '
                              'is never equal to it')
    assert amount.help == 'write the digits as text, zero-padded as on the wire: `"4" = "000000012550"`'
    assert got[at[2]].help == 'write the digits as text, zero-padded as on the wire: `t = "0200"`'
    assert got[at[3]].message == ('field `"39"` of format `Card` is text (ISO 8583 type an, 2 characters): '
                                            'the number 0 is never equal to it')
    assert got[at[3]].help == 'write it as text: `"39" = "0"`'
    assert got[at[4]].message == ('field `"4"` of format `Card` is text of digits only (ISO 8583 type n, '
                                            '12 digits): the text "125.50" is never equal to it')
    assert got[at[4]].help == 'write digits only, zero-padded as on the wire: `"4" = "000000012550"`'


def test_swift_values_of_the_other_kind(tmp_path: Path) -> None:
    answers = ANSWERS.replace('block4[3].value.amount = 1000.00', 'block4[3].value.amount = "1000.00"')
    line = 4 + SEND.count("\n") + ANSWERS[:ANSWERS.index('block4[3].value.currency')].count("\n")
    body = SEND + answers + '''    expect call fin { block2.type = 940  block4[0].tag = 20  block4[1].value = 25 }
    expect call fin { block4[3].value.amount = "1000.00"  block4[3].value.currency = "EUR" }
'''
    got = _diags(tmp_path, body)
    first = 4 + SEND.count("\n") + ANSWERS.count("\n")
    at = [_at(tmp_path, line, '"1000.00"'), _at(tmp_path, first, "940"), _at(tmp_path, first, "20 "),
          _at(tmp_path, first, "25 "), _at(tmp_path, first + 1, '"1000.00"')]
    assert sorted(got) == at, [(k, d.message) for k, d in got.items()]
    assert got[at[0]].message == ('field `block4[3].value.amount` of format `Mt` is a number (decimal, the amount '
                                       'of a typed SWIFT field (32A, 60F ...)): the text "1000.00" cannot be sent in '
                                       'it: the format does not encode it')
    assert got[at[0]].help == "write the number without quotes: `block4[3].value.amount = 1000.00`"
    assert got[at[1]].message == ('field `block2.type` of format `Mt` is text (a SWIFT block2 value): the number '
                                        '940 is never equal to it')
    assert got[at[1]].help == 'write it as text: `block2.type = "940"`'
    assert got[at[2]].help == 'write it as text: `block4[0].tag = "20"`'
    assert "block4[1].value" in got[at[3]].message
    assert got[at[4]].message.startswith("field `block4[3].value.amount` of format `Mt` is a number "
                                                   "(decimal")
    assert got[at[4]].message.endswith('the text "1000.00" is never equal to it')


def test_iso20022_and_xml_values_of_the_other_kind(tmp_path: Path) -> None:
    first = 4 + SEND.count("\n") + ANSWERS.count("\n")
    body = SEND + ANSWERS + '''    expect call shop { Order.Amount = 12.50  Order.Id = "CP000000001G" }
    expect call camt { BkToCstmrStmt.Stmt[0].Bal[0].Amt.value = "100.00"  BkToCstmrStmt.Stmt[0].Acct.Ccy = 978 }
    expect call camt { BkToCstmrStmt.Stmt[0].Bal[0].Amt.Ccy = 978  BkToCstmrStmt.Stmt[0].Bal[0].Amt.value = 100 }
'''
    got = _diags(tmp_path, body)
    at = [_at(tmp_path, first, "12.50"), _at(tmp_path, first + 1, '"100.00"'), _at(tmp_path, first + 1, "978"),
          _at(tmp_path, first + 2, "978")]
    assert sorted(got) == at, [(k, d.message) for k, d in got.items()]
    assert got[at[0]].message == ('field `Order.Amount` of format `Order` is text (XML without a schema: every '
                                        'value is text): the number 12.50 is never equal to it')
    assert got[at[0]].help == 'write it as text: `Order.Amount = "12.50"`'
    assert got[at[1]].message == ('field `BkToCstmrStmt.Stmt[0].Bal[0].Amt.value` of format `Camt` is a '
                                            'number (decimal, XSD type decimal): the text "100.00" is never equal '
                                            'to it')
    assert got[at[1]].help == "write the number without quotes: `BkToCstmrStmt.Stmt[0].Bal[0].Amt.value = 100.00`"
    assert got[at[2]].message.startswith("field `BkToCstmrStmt.Stmt[0].Acct.Ccy` of format `Camt` is "
                                                    "text (XSD type str)")
    assert got[at[3]].message.startswith("field `BkToCstmrStmt.Stmt[0].Bal[0].Amt.Ccy` of format `Camt` "
                                                   "is text (an XSD attribute)")


def test_the_shipped_tests_of_these_formats_check_clean() -> None:
    for service in ("card_payments", "account_consolidation", "remittance", "trade_receiving"):
        files = sorted((REPO / "routes" / service).glob("*.route"))
        res = compile_paths(files, default_registry())
        assert not [d for d in res.diagnostics if d.code == "E103"], \
            [(service, d.pos, d.message) for d in res.diagnostics]
