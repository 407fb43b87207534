"""The error catalogue: every diagnostic code, with a bad example that yields it.

One table, three uses: ``tests/dsl/test_dsl_catalogue.py`` compiles every
example and checks the code appears at ``line:col``; ``markdown()`` renders
the table for ``docs/language.md`` (a test checks the doc is current); and
analysts look codes up there.  Examples compile as ``main.route`` in an
empty folder holding ``files`` (name -> text), against the test registry
(channels ``tcp listen``, ``tcp connect``, ``memory``, ``file watch``, ``file write``; formats ``json``,
``fixed``, ``csv``, ``iso8583``, ``copybook``; steps ``audit``, ``limit``, ``continuity`` and ``screen``).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Entry:
    code: str
    title: str
    message: str            # the message template as printed
    example: str            # a bad main.route
    line: int               # where the diagnostic points
    col: int
    files: dict[str, str] = field(default_factory=dict)
    severity: str = "error"
    file: str = "main.route"   # the file the diagnostic points into


_REQ = 'format Req = fixed {\n    code string(4)\n}\n'
_MF = 'channel mf = memory\n'
_HEAD = _MF + _REQ          # 4 lines
_OUT = 'channel out = file write {\n    dir  = "."\n    name = "R-{ref}.txt"\n}\n'   # 4 lines
_CSV = {"billers.csv": "biller_id,api_code,name\nEL0001,ELEC,Electric\n"}
_KEYED = 'deal PAY { ref = msg.code  amount = 1  key = msg.code }'
_ISO = 'format Iso = iso8583 iso8583_1987_ascii\n'
_RATES = {"rates.csv": "code,valid_from,rate\nA,2020-01-01,0.03\nA,2026-07-01,0.025\n"}
_HOLIDAYS = {"target2.csv": "date,name\n2026-12-25,Christmas Day\n"}


def _route(*body: str, head: str = _HEAD) -> str:
    return head + "route r {\n    receive from mf as Req\n" + "".join(f"    {b}\n" for b in body) + "}\n"


# Lines of a _route(...) example: 1-4 head, 5 `route r {`, 6 receive, 7 first body line.
CATALOGUE: tuple[Entry, ...] = (
    # ------------------------------------------------------------ syntax
    Entry("E001", "unexpected character",
          "unexpected character `C` / unterminated string (help: `and` for `&&`, `=` for `:` ...)",
          _route("let x = 'text'"), 7, 13),
    Entry("E002", "unexpected token",
          "unexpected `T` (help lists what was expected; `=` in a condition: did you mean `==`?; "
          "a `,` between body fields or options: none is needed; `decimal(12.2)`: write decimal(12, 2); "
          "`on error reply {`: name its format) / "
          "`WORD`: expected `from` after `receive` (a keyword run into a word, `frommf`: put a space after "
          "`from`; or misspelt, `fromx`: did you mean `from`?)",
          'format F = json\nformat = json\n', 2, 8),
    Entry("E003", "validation rule without `else reject`",
          'a validation rule needs `else reject "CODE" "TEXT"`',
          _route('validate {', '    msg.code == "BP01"', '}'), 9, 5),
    Entry("E004", "`reject` without quoted code and text", "`reject` needs a code and a text, both quoted",
          _route('validate {', '    msg.code == "BP01" else reject 13 "bad code"', '}'), 8, 40),
    Entry("E005", "body line is not `name = value`", "expected `name = value` in a message body",
          _route('reply Req { code }'), 7, 22),
    Entry("E006", "field declarations share a line", "a field declaration is `name type` on its own line",
          'format F = fixed {\n    a string(1) b string(2)\n}\n', 2, 19),
    Entry("E007", "missing `}`",
          "unexpected end of file: the `{` opened at L:C (route `r`) is never closed / a `}` is missing: the `{` "
          "opened at L:C (...) is not closed before `route` at L:C; the caret goes to the innermost `{` left open",
          _HEAD + 'route r {\n    receive from mf as Req\n', 5, 9),
    Entry("E008", "`receive` without `from`", "`receive` needs `from CHANNEL`",
          _HEAD + 'route r {\n    receive mf as Req\n}\n', 6, 13),
    Entry("E009", "malformed `call`", "`call` is `call NAME = CHANNEL as FORMAT [reply FORMAT] { ... }`",
          _route('call mf as Req { code = "1" }'), 7, 13),
    Entry("E013", "statement outside a route or unknown declaration",
          "expected a declaration: `use`, `format`, `channel`, `table` or `route` / "
          "unknown declaration `WORD` (with did you mean)",
          _HEAD + 'receive from mf as Req\n', 5, 1),
    Entry("E014", "incomplete expression", "an expression is incomplete or malformed",
          _route('let x = (msg.code + 1', 'reply Req { code = x }'), 8, 5),
    Entry("E015", "`if` without `then`/`else`", "`if` needs `then` and `else`",
          _route('let x = if msg.code == "A" then 1', 'reply Req { code = "1" }'), 8, 5),
    Entry("E016", "malformed number or duration",
          "`3sec` is not a duration / exponent notation is not supported: write 100000",
          'channel c = tcp connect {\n    address = "127.0.0.1:7002"\n    timeout = 3sec\n}\n', 3, 15),
    Entry("E133", "malformed timestamp literal",
          "`2026-11-25t10:00z` is not a timestamp: write `T` and `Z` in capitals (also: the offset with a colon, "
          "+01:00; month and day in two digits; HH:MM:SS with colons; not the basic form 20261125T100000Z; at most "
          "6 digits after the second's point) (help: write it ISO 8601: 2026-11-25T10:00:00Z (UTC), "
          "2026-11-25T11:00:00+01:00, or 2026-11-25T10:00:00 without a zone)",
          _route('validate {', '    now() < 2026-11-25t10:00z else reject "13" "too late"', '}'), 8, 17),
    Entry("E134", "timestamp literal that names no real time",
          "`2026-02-30T10:00:00Z` names no real time: 2026-02 has no day 30 (also: no month 13, no hour 24, no "
          "second 60; an offset of 24 hours or more; the year 0000)",
          _route('validate {', '    now() < 2026-02-30T10:00:00Z else reject "13" "too late"', '}'), 8, 17),
    Entry("E142", "malformed date literal, or one that names no real day",
          "`2026-02-30` names no real day: 2026-02 has no day 30 (also: `2026-1-5` is not a date: month and day "
          "take two digits each; no month 13; the year 0000) (help: write it 2026-11-25; for arithmetic, put "
          "spaces around the minus)",
          _route('validate {', '    today() < 2026-02-30 else reject "13" "too late"', '}'), 8, 19),
    Entry("E111", "unknown escape in a string",
          "unknown escape `\\d` in a string: a route string knows only `\\\"` `\\\\` `\\n` `\\t` `\\r` `\\0`, "
          "and drops the backslash of any other (it reads d alone); the string has N more: ... (help: write "
          "`\\\\d` for a backslash followed by d); in any string: a value, a pattern, a path, a reject text, "
          "a test name; what is said about the string as misread (E078, E047, E010 ...) is left out",
          _route('validate {', '    matches(msg.code, "\\d{4}") else reject "13" "bad code"', '}',
                 'reply Req { code = "00" }'), 8, 28),
    # ------------------------------------------------------------ files
    Entry("E010", "file not found", "file not found: PATH",
          'use "common.route"\n' + _route('reply Req { code = "00" }'), 1, 1),
    Entry("E011", "include cycle", "include cycle: a.route -> b.route -> a.route",
          'use "b.route"\n', 1, 1, files={"b.route": 'use "main.route"\n'}, file="b.route"),
    Entry("E012", "`use` of a file that is not a route file", "`use` takes a .route file: NAME is not one",
          'use "billers.csv"\n' + _route('reply Req { code = "00" }'), 1, 1, files=_CSV),
    # ------------------------------------------------------------ names
    Entry("E020", "unknown declaration", "unknown channel `NAME` (with did you mean; for a name a route file "
          "beside it or in a sibling folder declares, `routes/common/mainframe.route`'s `MfRsp` say, the help "
          "names that file and the `use` line to add)",
          _HEAD + 'route r {\n    receive from mff as Req\n    reply Req { code = "00" }\n}\n', 6, 18),
    Entry("E021", "wrong kind of name", "`NAME` is a format, not a channel",
          _HEAD + 'route r {\n    receive from Req as Req\n    reply Req { code = "00" }\n}\n', 6, 18),
    Entry("E022", "declared twice", "`NAME` is declared twice (help: where it was first declared)",
          _route('reply Req { code = "00" }', head=_HEAD + 'format Req = json\n'), 5, 8),
    Entry("E023", "route declared twice", "route `NAME` is declared twice",
          _route('reply Req { code = "00" }') + 'route r {\n    receive from mf as Req\n    reply Req { code = "01" }\n}\n',
          9, 7),
    Entry("E024", "unknown name in an expression", "unknown name `NAME` (with did you mean)",
          _route('reply Req { code = mgs.code }'), 7, 24),
    Entry("E025", "used before its step", "`NAME` is used before its step",
          _route('reply Req { code = post.code }', 'call post = mf as Req { code = "1" }'), 7, 24),
    Entry("E026", "`msg` before decoding", "`msg` is not decoded yet",
          _HEAD + 'route r {\n    receive from mf when msg.code == "A"\n    decode as Req\n    reply Req { code = "00" }\n}\n',
          6, 26),
    Entry("E027", "`error` outside `on error`", "`error` exists only inside `on error`",
          _route('reply Req { code = error.code }'), 7, 24),
    # ------------------------------------------------------------ route structure
    Entry("E030", "route without `receive`", "route `NAME` has no `receive from CHANNEL`",
          _HEAD + 'route r {\n    reply Req { code = "00" }\n}\n', 5, 7),
    Entry("E031", "`receive` twice or not first", "a route receives exactly once",
          _route('receive from mf as Req', 'reply Req { code = "00" }'), 7, 5),
    Entry("E032", "name bound twice", "`NAME` is already bound in this route",
          _route('let x = 1', 'let x = 2', 'reply Req { code = "00" }'), 8, 9),
    Entry("E033", "more than one `on error`", "route `NAME` has more than one `on error`",
          _route('reply Req { code = "00" }', 'on error reply Req { code = error.code }',
                 'on error reply Req { code = "96" }'), 9, 5),
    Entry("E034", "statement not allowed in `on error { }`", "this statement is not allowed inside `on error { }`",
          _route('reply Req { code = "00" }', 'on error {', '    receive from mf', '}'), 9, 9),
    Entry("E035", "unknown deal field", "unknown deal field `NAME`",
          _route('deal PAY { ref = msg.code  amount = 1  curency = "CNY" }', 'reply Req { code = "00" }'),
          7, 44),
    Entry("E116", "deal `match` without `key`", "deal `TYPE` has a `match` but no `key`",
          _route('deal PAY { ref = msg.code  amount = 1  match = msg.code }', 'reply Req { code = "00" }'),
          7, 44),
    Entry("E117", "`limit` without a name", "`limit` needs a name: the total it counts into",
          _route(_KEYED, 'limit { key = msg.code  max = 100 }'), 8, 5),
    Entry("E118", "`limit` before the `deal` step, or in `on error`",
          "`limit NAME` comes before the route's `deal` step (or the route has none): it counts the deal's amount "
          "and currency / `limit NAME` inside `on error`",
          _route('limit cap { key = msg.code  max = 100 }', _KEYED), 7, 5),
    Entry("E119", "`limit` after a call", "`limit NAME` comes after call `C`: by then the money may have moved "
          "(help: put the limit before the route's first call)",
          _MF + 'channel back = memory\n' + _REQ + 'route r {\n    receive from mf as Req\n    ' + _KEYED
          + '\n    call c = back as Req { code = "1" }\n    limit cap { key = msg.code  max = 100 }\n}\n', 10, 5),
    Entry("E120", "`limit` option that must be a literal",
          '`limit NAME`: `per` / `code` / `text` must be a quoted literal / per = "week": the only period is "day" / '
          'max must be a number',
          _route(_KEYED, 'limit cap { key = msg.code  max = 100  per = "week" }'), 8, 50),
    Entry("E121", "one total counted with two periods",
          "total `NAME` is counted per day here and without a period (it runs on) at FILE:LINE:COL: routes that "
          "count into one total must agree on its period",
          _route(_KEYED, 'limit cap { key = msg.code  max = 100  per = "day" }')
          + 'route s {\n    receive from mf as Req\n    ' + _KEYED + '\n    limit cap { key = msg.code  max = 100 }\n}\n',
          13, 5),
    Entry("E122", "options rejected by the step's kind",
          "step `KIND`: (the kind's own message: a threshold out of range, a list file's line without a name)",
          _route('screen hit { name = msg.code  list = s  threshold = 1.5 }',
                 head=_HEAD + 'table s = csv "list.csv" key entry_id\n'), 8, 57,
          files={"list.csv": "entry_id,source,name,aliases,ids\nS1,UN,Viktor Kurganov,,\n"}),
    Entry("E123", "`screen` step's on_hit neither refuse nor hold",
          'step `screen`: on_hit = \'VALUE\': expected "refuse" (the deal is refused) or "hold" (held for a '
          'compliance officer, who releases or rejects it)',
          _route('screen hit { name = msg.code  list = s  on_hit = "park" }',
                 head=_HEAD + 'table s = csv "list.csv" key entry_id\n'), 8, 54,
          files={"list.csv": "entry_id,source,name,aliases,ids\nS1,UN,Viktor Kurganov,,\n"}),
    Entry("E124", "`store and forward` on a call that is not ISO 8583",
          "call `NAME` is `store and forward`, but its format `F` is fixed, not ISO 8583: only an ISO 8583 advice "
          "(0120, 0220, 0400, 0420) is repeated until the host acknowledges it",
          _route('call d = back as Req { code = msg.code } store and forward',
                 head=_HEAD + 'channel back = memory\n'), 8, 46),
    Entry("E125", "`store and forward` with `readonly` or `compensate call`",
          "call `NAME` is `store and forward` and has `readonly` (or `compensate call ...`): an advice left in "
          "doubt is repeated until the host acknowledges it, so it is neither an enquiry nor undone by another call",
          _route('call d = back as Iso readonly { t = "0420" } store and forward',
                 head=_HEAD + 'channel back = memory\n' + _ISO), 9, 50),
    Entry("E126", "`store and forward` on a message that is not an advice",
          "call `NAME` is `store and forward` but sends a 0200: only an advice or a reversal (0120, 0220, 0400, "
          "0420) is repeated as itself (0121, 0221, 0401, 0421) until acknowledged (also: sets no message type `t`)",
          _route('call d = back as Iso { t = "0200" } store and forward',
                 head=_HEAD + 'channel back = memory\n' + _ISO), 9, 32),
    Entry("E127", "`continuity` without a name", "`continuity` needs a name: the chain its accounts' statements "
          "follow",
          _route(_KEYED, 'continuity { key = msg.code  statement = msg.code }'), 8, 5),
    Entry("E128", "`continuity` before the `deal` step, after a call, or in `on error`",
          "`continuity NAME` comes before the route's `deal` step (or the route has none): the chain moves on when "
          "the statement's deal commits / comes after call `C`: the statement is posted by then / inside `on error`",
          _route('continuity stmts { key = msg.code  statement = msg.code }', _KEYED), 7, 5),
    Entry("E130", "`record` without a name or a field",
          "`record` needs a name and at least one field: the deal's event names the record, the fields are what "
          "it keeps",
          _route(_KEYED, 'record { fee = 1 }'), 8, 5),
    Entry("E132", "configuration folder with too many files to version",
          "format `F`: option xsd_dir: folder 'DIR' holds N files (*.xsd) the format reads; a configuration folder "
          "is versioned file by file (each configuration version keeps their text in the ledger) and may hold at "
          "most 2000 (help: point the option at a folder holding only the files the routes use, or split the "
          "format in several, each with its own folder)",
          'format J = json schema "."\n', 1, 17,
          files={f"s{i:04d}.json": "{}" for i in range(2000)}),
    Entry("E135", "a statement reader given a message that holds no bank statement",
          "statement_check(): `msg.block4` is of format `F` (swift mt103: an MT103 (Single Customer Credit "
          "Transfer)), which holds no bank statement: it reads an MT940 (customer statement), MT942 (interim "
          "transaction report) or MT950 (statement message) (a swift format of that type, or of any type) or a "
          "camt.053 / camt.052 (an iso20022 format) (help: give it a statement's message, received through a "
          "format of the statement's type); also statement_kind() and a `continuity` step's `statement`, for a "
          "swift format of another type, an iso20022 format of another message (pain.001), an iso8583, fixed, csv "
          "or copybook record; at the argument",
          _route('let chk = statement_check(msg)', 'reply Req { code = "00" }'), 7, 31),
    Entry("E141", "`file.header.FIELD` on a channel that reads no header record",
          "channel `C` reads no header record: `file.header.FIELD` is always null (help: give the channel "
          "`header = FORMAT`, the format of the file's first record, and `skip_header = 1`)",
          _REQ + 'channel inbox = file watch {\n    dir = "."\n}\n'
          + 'route r {\n    receive from inbox as Req\n    deal PAY { ref = file.header.batch  amount = 1 }\n}\n',
          9, 22),
    Entry("E146", "`end_message = true` on a file watch channel none of whose routes takes the end message",
          "channel `C` has `end_message = true` but none of its routes takes the end-of-file message: each file's "
          "would be recorded as UNROUTED (help: add a route `receive from C when file.end`, or drop end_message)",
          _REQ + 'channel inbox = file watch {\n    dir = "."\n    end_message = true\n}\n'
          + 'route r {\n    receive from inbox as Req\n    deal PAY { ref = msg.code  amount = 1  key = msg.code }\n}\n',
          4, 9),
    Entry("E147", "a route taking the end-of-file message `as` a format that cannot read it",
          "route `R` takes the end-of-file message of channel `C` as format `F` (K): the message is the file's "
          "summary in JSON, not a record, so a K format cannot read it and the route never runs (help: drop "
          "`as F` and read the summary as file.name, file.status, file.reason, file.records ...)",
          _REQ + 'channel inbox = file watch {\n    dir = "."\n    end_message = true\n}\n'
          + 'route r {\n    receive from inbox as Req\n    deal PAY { ref = msg.code  amount = 1  key = msg.code }\n}\n'
          + 'route ended {\n    receive from inbox as Req when file.end\n}\n',
          13, 27),
    Entry("W029", "a route reading `file.end` on a channel without `end_message = true`",
          "route `R` takes the end-of-file message of channel `C` (its `when` reads file.end), but the channel "
          "sends none: file.end is never true, the route never runs (help: give the channel `end_message = true`)",
          _REQ + 'channel inbox = file watch {\n    dir = "."\n}\n'
          + 'route r {\n    receive from inbox as Req\n    deal PAY { ref = msg.code  amount = 1  key = msg.code }\n}\n'
          + 'route ended {\n    receive from inbox when file.end\n}\n',
          12, 29, severity="warning"),
    Entry("W030", "a `validate` after the first call of a route on a channel with `all_or_nothing = true`",
          "route `R` receives from channel `C` with all_or_nothing = true, but this validate comes after its call "
          "`N` (line L): its rules are checked only when a record runs, not before the file does, so a record "
          "that fails them fails alone while the others of its file run (help: move the rules before the "
          "route's first call)",
          _REQ + 'channel inbox = file watch {\n    dir = "."\n    all_or_nothing = true\n}\n' + _OUT
          + 'route r {\n    receive from inbox as Req\n    deal PAY { ref = msg.code  amount = 1  key = msg.code }\n'
          + '    call w = out as Req { code = msg.code } name { ref = msg.code }\n'
          + '    validate {\n        msg.code != "XX" else reject "30" "bad code"\n    }\n}\n',
          16, 5, severity="warning"),
    Entry("E036", "deal without ref or amount", "deal `TYPE` needs ref and amount",
          _route('deal PAY { currency = "CNY" }', 'reply Req { code = "00" }'), 7, 10),
    Entry("E037", "body field set twice", "`PATH` is set twice",
          _route('reply Req { code = "00"  code = "01" }'), 7, 30),
    Entry("E038", "`reply` without a format on a raw route", "`reply` needs a format: this route receives raw bytes",
          _HEAD + 'route r {\n    receive from mf\n    reply { code = "00" }\n}\n', 7, 5),
    # ------------------------------------------------------------ components
    Entry("E039", "receive format the channel cannot hand its requests",
          "channel `C` cannot hand format `F` its requests: (the channel kind's reason)",
          'format Line = json\nchannel inbox = file watch {\n    dir = "."\n    record = "csv"\n'
          '    header_row = true\n}\nroute r {\n    receive from inbox as Line\n}\n', 8, 27),
    Entry("E040", "unknown format kind", "unknown format kind `KIND` (with did you mean)",
          'format F = jsn\n', 1, 12),
    Entry("E041", "unknown channel kind", "unknown channel kind `KIND` (with did you mean)",
          'channel c = tcp lisen { address = "127.0.0.1:1" }\n', 1, 13),
    Entry("E042", "unknown statement or step kind", "unknown statement or step kind `KIND` (with did you mean), at the statement's first word",
          _route('audt { text = "x" }', 'reply Req { code = "00" }'), 7, 5),
    Entry("E043", "unknown option", "unknown option `NAME` for channel `C` (tcp listen)",
          'channel c = tcp listen {\n    address = "127.0.0.1:7001"\n    framng = length2\n}\n', 3, 5),
    Entry("E044", "missing required option",
          "channel `C` (tcp listen) needs option `address` (not given when an E043 for a misspelt "
          "option already says: did you mean `address`?)",
          'channel c = tcp listen { framing = length2 }\n', 1, 9),
    Entry("E045", "option value of the wrong type", "option `NAME` of ... expects a whole number, got ...",
          'channel c = tcp listen {\n    address = "127.0.0.1:7001"\n    max_frame = "big"\n}\n', 3, 17),
    Entry("E046", "option value not among the choices", "option `framing` of ... must be one of length2, length4",
          'channel c = tcp listen {\n    address = "127.0.0.1:7001"\n    framing = length3\n}\n', 3, 15),
    Entry("E047", "referenced file or folder not found", "file not found: \"PATH\" (looked for ABSOLUTE PATH) / "
          "folder not found: ... for a `dir` option (a `file write` or `file watch` folder, `xsd_dir`; help: "
          "bsp does not create it, mkdir -p ...); for a file that is there under another path, "
          "`copybook/REQ.cpy` for `copybooks/REQ.cpy`, the help names it (did you mean \"copybooks/REQ.cpy\"?)",
          'format F = json schema "missing.schema.json"\n', 1, 24),
    Entry("E048", "unexpected format argument", "unexpected value `...` (a quoted string) in format `F`: it follows no option name",
          'format F = fixed "x" {\n    a string(1)\n}\n', 1, 18),
    Entry("E049", "option given twice", "option `NAME` given twice",
          'channel c = tcp listen {\n    address = "127.0.0.1:7001"\n    address = "127.0.0.1:7002"\n}\n', 3, 5),
    Entry("E050", "format definition rejected by its kind", "format `F`: (the format kind's own message)",
          'format F = fixed {\n    a string\n}\n', 2, 5),
    Entry("E051", "field block on a kind without one", "format kind `KIND` does not take a field block",
          'format F = json {\n    a string(1)\n}\n', 1, 12),
    Entry("E052", "bad field type or arguments", "unknown field type `T` / bad arguments for field type `T`",
          'format F = fixed {\n    a strng(1)\n}\n', 2, 7),
    Entry("E053", "unknown classification", "unknown classification `C` for field `F`",
          'format F = fixed {\n    a string(1) secrte\n}\n', 2, 17),
    Entry("E054", "field declared twice", "field `F` is declared twice in format `NAME`",
          'format F = fixed {\n    a string(1)\n    a string(2)\n}\n', 3, 5),
    Entry("E055", "channel options rejected by its kind", "channel C: option NAME: (the kind's own message)",
          'channel c = tcp listen {\n    address = "127.0.0.1:7001"\n    header = "6000030000"\n}\n', 3, 5),
    Entry("E058", "two channels listen on one address", "channels `A` and `B` both listen on HOST:PORT",
          'channel a = tcp listen { address = "127.0.0.1:7001" }\n'
          'channel b = tcp listen { address = "127.0.0.1:7001" }\n', 2, 36),
    # ------------------------------------------------------------ fields, tables, functions
    Entry("E060", "unknown field of a message", "format `F` has no field `NAME` (with did you mean)",
          _route('reply Req { code = msg.cod }'), 7, 24),
    Entry("E061", "unknown field in a message body",
          "format `F` has no field `NAME` (with did you mean; for a copybook, at any depth: "
          "format `F`: group `hdr` has no field `resp_cod`, a table not indexed, an elementary item given fields)",
          _route('reply Req { cde = "00" }'), 7, 17),
    Entry("E112", "literal that a copybook field cannot hold",
          "format `F`: field `resp_code` (PIC X(2)) cannot hold \"000\": 3 characters, the field holds 2 (also: "
          "more decimal places than the V, a negative for a picture without S, text for a COMP-3 or zoned number, "
          "more digits than the picture, a count above an OCCURS DEPENDING ON table's size, an index past a "
          "table's end; help: the value that fits, or what to change in the copybook)",
          _route('reply Rsp { resp_code = "000" }',
                 head=_HEAD + 'format Rsp = copybook "RSP.cpy" encoding cp037 names lower\n'), 8, 29,
          files={"RSP.cpy": "       01  RSP.\n           05  RESP-CODE  PIC X(2).\n"
                            "           05  AMOUNT     PIC S9(13)V99 COMP-3.\n"}),
    Entry("E062", "unknown table column", "table `T` has no column `NAME`",
          _route('reply Req { code = billers[msg.code].apicode }',
                 head=_HEAD + 'table billers = csv "billers.csv" key biller_id\n'), 8, 24, files=_CSV),
    Entry("E063", "table key column missing", "table `T`: key column `K` is not in FILE",
          'table billers = csv "billers.csv" key id\n', 1, 39, files=_CSV),
    Entry("E064", "unknown table kind", "unknown table kind `KIND`",
          'table billers = xls "billers.csv" key biller_id\n', 1, 17, files=_CSV),
    Entry("E065", "table read without a key", "`T` is a table: read a row with `T[KEY].column` / `T` is a table: `x in T` tests its key column (for `x in T.column`)",
          _route('reply Req { code = billers.name }',
                 head=_HEAD + 'table billers = csv "billers.csv" key biller_id\n'), 8, 24, files=_CSV),
    Entry("E148", "as-of read of a table without effective dates",
          "table `T` has no effective dates: `T[KEY at DATE]` needs them",
          _route('reply Req { code = billers[msg.code at today()].name }',
                 head=_HEAD + 'table billers = csv "billers.csv" key biller_id\n'), 8, 24, files=_CSV),
    Entry("E149", "as-of date that is not a date", "the as-of date (X) must be a date, got a string",
          _route('reply Req { code = rates[msg.code at msg.code].rate }',
                 head=_HEAD + 'table rates = csv "rates.csv" key code effective from valid_from\n'), 8, 42,
          files=_RATES),
    Entry("E150", "bad effective-date column or effective-dated table file",
          "table `T`: key 'K' has two rows in force from DATE (first on line N) / valid_from 'X' is not a date: "
          "write it YYYY-MM-DD / effective-date column `C` is not in the file (in the route, at `C`)",
          'table rates = csv "rates.csv" key code effective from valid_from\n', 3, 1,
          files={"rates.csv": "code,valid_from,rate\nA,2026-01-01,0.03\nA,2026-01-01,0.04\n"}, file="rates.csv"),
    Entry("E157", "effective-dated calendar not keyed by its date column",
          "is_business_day(): calendar `T` is effective-dated (effective from C) but keyed by `K`: a day's status is "
          "its own row in force on that day, which needs the rows of one day to be the versions of one key (help: "
          "`key date effective from C`); at the calendar argument of is_business_day, next_business_day, "
          "add_business_days or value_date",
          _route('let ok = is_business_day(today(), hols)', 'reply Req { code = "00" }',
                 head=_HEAD + 'table hols = csv "hols.csv" key id effective from valid_from\n'), 8, 39,
          files={"hols.csv": "id,date,valid_from\nX1,2026-12-25,2026-01-01\nX2,2027-12-25,2026-01-01\n"
                             "X3,2028-12-25,2026-01-01\n"}),
    Entry("E066", "request without the MUX key fields",
          "call `NAME` sends a request without the key field `K` that channel `C` matches replies by",
          'channel mf = memory\nformat Req = fixed {\n    code string(4)\n    ref string(6)\n}\n'
          'channel back = tcp connect {\n    address = "127.0.0.1:7001"\n    match = ["ref"]\n}\n'
          'route r {\n    receive from mf as Req\n    call post = back as Req { code = msg.code }\n'
          '    reply Req { code = "00" }\n}\n', 12, 5),
    Entry("E067", "calendar that is not a declared table",
          "is_business_day(): the calendar, `NAME`, is not a table declared in the route file (with did you mean; "
          "also a quoted name or any other value)",
          _route('let ok = is_business_day(today(), "target2")',
                 head=_HEAD + 'table target2 = csv "target2.csv" key date\n'), 8, 39, files=_HOLIDAYS),
    Entry("E068", "calendar table without a date column, or with a row that is not a date",
          "is_business_day(): table `T` has no column `date` (FILE: columns): it cannot be a calendar / calendar "
          "`T`: FILE:LINE: '2026-13-01' in column date is not a date of the calendar (no such day)",
          _route('let ok = is_business_day(today(), billers)',
                 head=_HEAD + 'table billers = csv "billers.csv" key biller_id\n'), 8, 39, files=_CSV),
    Entry("E069", "malformed cut-off time",
          "value_date(): '3:30pm' is not a cut-off time: write it \"HH:MM\" on the 24-hour clock, two digits each",
          _route('let vd = value_date(now(), "3:30pm", target2)',
                 head=_HEAD + 'table target2 = csv "target2.csv" key date\n'), 8, 32, files=_HOLIDAYS),
    Entry("E070", "unknown function", "unknown function `NAME` (with did you mean)",
          _route('reply Req { code = trimm(msg.code) }'), 7, 24),
    Entry("E071", "wrong number of arguments", "NAME() takes N arguments, got M",
          _route('reply Req { code = substr(msg.code) }'), 7, 24),
    Entry("E072", "argument of the wrong type",
          "NAME(): argument N must be ..., got ... / is_date(), parse_date(), format_date(): argument 2 (fmt) is "
          "not a date pattern: 'Q' is a bad directive in format '%Q' (a literal pattern)",
          _route('reply Req { code = pad_left(msg.code, "4") }'), 7, 43),
    Entry("E073", "operands of incompatible types",
          "cannot compare a string (msg.code) > an integer (0) / cannot apply * to ... / ... never holds",
          _route('validate {', '    msg.code > 0 else reject "13" "bad code"', '}', 'reply Req { code = "00" }'),
          8, 9),
    Entry("E074", "value of the wrong type for a field", "field `F` of format `R` is a string(4): it cannot take a date "
          "(also a date sent to a copybook's number field, PIC 9(8): help `number(format_date(d, \"%Y%m%d\"))`)",
          _route('reply Req { code = today() }'), 7, 24),
    Entry("E075", "literal too long for its fixed field", '"TEXT" is N characters, field `F` of format `R` holds W',
          _route('reply Req { code = "TOO LONG" }'), 7, 24),
    Entry("E076", "message body without the schema's required fields",
          "the reply body in format `F` does not set `NAME`: its schema requires it",
          _MF + 'format Req = json schema "req.schema.json"\nroute r {\n    receive from mf as Req\n'
          '    reply Req { note = "x" }\n}\n', 5, 11,
          files={"req.schema.json": '{"type": "object", "required": ["id"], '
                 '"properties": {"id": {"type": "string"}, "note": {"type": "string"}}}'}),
    Entry("E077", "pattern (or `env()` name) that is not a string literal",
          "matches(): argument 2 (pattern) must be a string literal (\"...\"), not NAME (a `let`, a field, a "
          "table cell; help: write the pattern itself in quotes: bsp check compiles and vets it, which it cannot "
          "do for a value known only when a message comes)",
          _route('let p = "[A-Z]{4}"', 'validate {', '    matches(msg.code, p) else reject "13" "bad code"', '}',
                 'reply Req { code = "00" }'), 9, 27),
    Entry("E078", "regular expression that does not compile, or that bsp refuses",
          "matches(): argument 2 (pattern) is not a valid regular expression: (Python's message) at position N of "
          "the pattern / has a repeat inside a repeated part (`(a+)+`, `(a*)*`) / has alternatives inside a "
          "repeated part (`(a|a)*`) / has a backreference / has a lookahead or lookbehind / has repeats that "
          "together can try more than 1,000,000 ways (`a+b+c+`) / can take more than 10,000,000 steps on a "
          "1,000-character text (`\\d{0,99}\\d{0,99}\\d{0,99}\\d{700}x`); see Regular expressions (a pattern "
          "written with `\\d` rather than `\\\\d` is E111, said alone)",
          _route('validate {', '    matches(msg.code, "([A-Z]+)+") else reject "13" "bad code"', '}',
                 'reply Req { code = "00" }'), 8, 27),
    Entry("E151", "`env()` of a variable holding one of the engine's secrets",
          "env(): argument 1 (name) names NAME, which holds a secret of the engine's (a key or a token): a route "
          "never reads it (its value would reach a reply, the ledger or a log): BSP_ADMIN_TOKEN, BSP_AUDIT_KEY, "
          "BSP_FIELD_KEYS, and a variable a channel of the files reads a secret from (an option `..._env`, a "
          "header `Name:env:VARIABLE`); at run time also a variable a format or the deployment file read a key "
          "from (the deal fails). An `env()` name must be a literal (E077)",
          _route('reply Req { code = env("BSP_AUDIT_KEY") }'), 7, 28),
    Entry("E080", "channel option is not a literal", "option `NAME` of channel `C` must be a literal value",
          'channel c = tcp listen {\n    address = "127.0.0.1:" + "7001"\n}\n', 2, 15),
    Entry("E100", "unknown restart policy", "unknown restart policy `NAME` (with did you mean)",
          _route('on restart compensat', 'reply Req { code = "00" }'), 7, 16),
    Entry("E101", "more than one `on restart`", "route `NAME` has more than one `on restart`",
          _route('on restart flag', 'on restart complete', 'reply Req { code = "00" }'), 8, 5),
    Entry("E108", "unknown doubt policy", "unknown doubt policy `NAME` (with did you mean: `flag` or `compensate`)",
          _route('on doubt compensat', 'reply Req { code = "00" }'), 7, 14),
    Entry("E109", "more than one `on doubt`", "route `NAME` has more than one `on doubt`",
          _route('on doubt flag', 'on doubt compensate', 'reply Req { code = "00" }'), 8, 5),
    Entry("E114", "unknown refusal policy", "unknown refusal policy `NAME` (with did you mean: `keep` or `free`)",
          _route('on refusal fre', 'reply Req { code = "00" }'), 7, 16),
    Entry("E115", "more than one `on refusal`", "route `NAME` has more than one `on refusal`",
          _route('on refusal keep', 'on refusal free', 'reply Req { code = "00" }'), 8, 5),
    Entry("E104", "file name value missing or unknown",
          "the file name of channel `C` ('R-{ref}.txt') uses {ref}, which this call does not give (also: unknown "
          "file name value `NAME`: the name of channel `C` has no {NAME}, with the word to write instead or the {NAME} to add to the name; a value given twice)",
          _route('call w = out as Req { code = msg.code }', head=_HEAD + _OUT), 11, 14),
    Entry("E105", "file name values for a channel that names no file",
          "channel `C` (memory) takes no file name values: `name { ... }` gives the {word} fields of a file "
          "write channel's name",
          _route('call w = back as Req { code = msg.code } name { ref = msg.code }',
                 head=_HEAD + 'channel back = memory\n'), 8, 46),
    Entry("E106", "compensation `expect` that cannot judge the compensation's answer",
          "the `expect` of the compensation of call `NAME` does not read its answer `NAME`: it cannot tell a "
          "cancel the counterpart accepted from one it refused / `NAME.F` in the `expect` of the compensation of "
          "call `NAME`: there `NAME` is the compensation's answer (format `A`), which has no field `F`; the "
          "call's answer (format `B`) has it",
          _route('call d = back as Req { code = msg.code } expect d.code == "OK"',
                 '    compensate call back as Req { code = "CANC" } expect msg.code != ""',
                 head=_HEAD + 'channel back = memory\n'), 9, 62),
    Entry("E107", "`readonly` call that changes something",
          "call `NAME` is `readonly`: it changes nothing at the counterpart, so it has nothing to compensate / "
          "call `NAME` is `readonly`, but channel `C` (file write) writes a file: the call changes something",
          _route('call d = back as Req readonly { code = msg.code }',
                 'compensate call back as Req { code = "CANC" }',
                 head=_HEAD + 'channel back = memory\n'), 9, 5),
    # ------------------------------------------------------------ warnings
    Entry("W001", "unused format (not in a file of formats only that no `use` includes: a layout library for `bsp decode --route`)", "format `NAME` is never used",
          _route('reply Req { code = "00" }', head=_HEAD + 'format Extra = json\n'), 5, 8, severity="warning"),
    Entry("W002", "unused table", "table `NAME` is never used",
          _route('reply Req { code = "00" }', head=_HEAD + 'table billers = csv "billers.csv" key biller_id\n'),
          5, 7, files=_CSV, severity="warning"),
    Entry("W003", "unused channel", "channel `NAME` is never used",
          _route('reply Req { code = "00" }', head=_HEAD + 'channel spare = memory\n'), 5, 9, severity="warning"),
    Entry("W004", "condition that is not true or false", "a string (msg.code) is used as a condition",
          _route('let x = if msg.code then 1 else 2', 'reply Req { code = "00" }'), 7, 16, severity="warning"),
    Entry("W006", "classified value copied where it is not protected",
          "msg.pan, classified pan in format `Card`, is copied into field `card` of format `Rsp`, which does not "
          "classify it: the ledger stores the reply (deals.response) with the value in clear (also: a call body, "
          "a deal's ref / party / key ...; through lets, trim, substr, `+` ...; help: classify the field, or "
          "mask_pan(...))",
          _MF + 'format Card = fixed {\n    pan string(16) pan\n}\nformat Rsp = fixed {\n    card string(16)\n}\n'
          'route r {\n    receive from mf as Card\n    reply Rsp { card = msg.pan }\n}\n', 10, 24, severity="warning"),
    Entry("W017", "classified value kept by a `record` step",
          "`record NAME`: msg.pan, classified pan in format `Card`, is kept in field `F` of the deal's `recorded` "
          "event, which the ledger stores as it is: the value is kept in clear (help: record a value that is not "
          "classified, or its mask or digest)",
          _MF + 'format Card = fixed {\n    pan string(16) pan\n}\n'
          'route r {\n    receive from mf as Card\n    deal PAY { ref = "1"  amount = 1 }\n'
          '    record card { pan = msg.pan }\n}\n', 8, 25, severity="warning"),
    Entry("W007", "ISO 8583 calls paired in order",
          "ISO 8583 call `NAME` goes to channel `C`, which pairs answers with requests in the order they were "
          "sent: a host that answers out of order, or twice, gives deals each other's answers (help: match = "
          "iso8583)",
          'channel mf = memory\nformat Auth = iso8583 iso8583_1987_ascii\n'
          'channel host = tcp connect {\n    address = "127.0.0.1:7001"\n}\n'
          'route r {\n    receive from mf as Auth\n    call auth = host as Auth { t = "0200" }\n'
          '    reply Auth { t = "0210" }\n}\n', 8, 17, severity="warning"),
    Entry("W009", "one deal type recorded by routes of different files",
          "deal type `TYPE` is recorded by route `A` here and by route `B` at FILE:LINE:COL, in another file: "
          "reports group deals by type, so both routes' deals count as one business (help: give each its own "
          "type, or record it from routes of one file; routes of one file may share a type)",
          'use "cards.route"\n' + _route('deal PAY { ref = msg.code  amount = 1 }', 'reply Req { code = "00" }'),
          8, 10, severity="warning",
          files={"cards.route": 'route cards {\n    receive from mf as Req when msg.code == "CARD"\n'
                 '    deal PAY { ref = msg.code  amount = 2 }\n    reply Req { code = "00" }\n}\n'}),
    Entry("W010", "failure that gets no answer",
          "route `R` replies on channel `C` (tcp listen), but it has no `on error` and the channel has no "
          "`on error reply`: when a step fails, nothing is sent and the sender waits for its own timeout (also: "
          "an `on error { }` block without `reply`; help: the `on error reply FORMAT { ... }` to add, to the route "
          "or the channel; not told of an http listen channel, which answers a failure with a problem+json, nor "
          "of an echo route whose reply only copies the request's fields and literals)",
          'channel front = tcp listen {\n    address = "127.0.0.1:7000"\n}\n' + _REQ
          + 'route r {\n    receive from front as Req\n    reply Req { code = trim(msg.code) }\n}\n',
          7, 7, severity="warning"),
    Entry("W012", "batch file route without a deal key",
          "route `R` receives from file watch channel `C` and its deal `TYPE` has no `key`: a crash in the middle "
          "of a file runs the batch it was in again at the restart (up to the channel's `batch` records, 1,000 "
          "unless set), each then a deal twice (also: a route without a `deal` step, at its name; help: give "
          "the deal a key on the record's own reference, e.g. `key = msg.ref`: a repeated record is then "
          "answered from the ledger, status duplicate)",
          _REQ + 'channel inbox = file watch {\n    dir = "."\n}\n'
          + 'route r {\n    receive from inbox as Req\n    deal PAY { ref = msg.code  amount = 1 }\n}\n',
          9, 5, severity="warning"),
    Entry("W013", "`limit` on a deal without a key",
          "`limit NAME`: deal `TYPE` has no `key`: a request sent again (after a time-out) is a new deal and counts "
          "a second time (help: give the deal a business key: a repeat is then answered as a duplicate and its "
          "amount is counted once)",
          _route('deal PAY { ref = msg.code  amount = 1 }', 'limit cap { key = msg.code  max = 100 }'), 8, 5,
          severity="warning"),
    Entry("W014", "deal amount computed with `*` or `/` and not rounded",
          "deal `TYPE`: amount `EXPR` is computed with `*` (`msg.amount * 0.015`) and not rounded: a recorded "
          "amount with more decimals than its currency has (100.5 JPY, 12.345 EUR) is refused (13) (help: round "
          "it where the business rule says so: `round(msg.amount * 0.015, minor_units(ccy))` (half up), or cut "
          "it: `x - x % 0.01`)",
          _route('let fee = msg.amount * 0.015', 'deal PAY { ref = msg.ref  amount = fee  currency = "EUR" }',
                 head=_MF + 'format Req = json\n'),
          6, 40, severity="warning"),
    Entry("W015", "copybook call body that leaves out a text or DISPLAY-number field",
          "the call body in copybook format `F` leaves out `FIELD` (PIC X(n)): the host gets LOW-VALUES there "
          "(spaces with `low_values_null false`; spaces in a DISPLAY number, PIC 9, make the host program abend "
          "(S0C7) or misread it; not told: COMP-3 / COMP numbers (`missing_numbers`), FILLERs, OCCURS DEPENDING ON "
          "counters and elements past the last one given, a field whose level-88 name is set; help: set each "
          "field the host reads; to send one empty on purpose, say so: `FIELD = null` sends the bytes sent now, "
          "`= \"\"` writes spaces into a PIC X field, `= 0` zeros into a PIC 9 one)",
          _MF + 'channel host = tcp connect {\n    address = "127.0.0.1:7001"\n}\nformat Req = json\n'
          'format Cb = copybook "req.cpy"\nroute r {\n    receive from mf as Req\n'
          '    call h = host as Cb { TXN = "T001" }\n    reply Req { code = "00" }\n}\n', 9, 22,
          severity="warning",
          files={"req.cpy": "       01  REQ.\n           05  TXN       PIC X(4).\n"
                            "           05  ORIG-REF  PIC X(12).\n"}),
    Entry("W020", "business-day calendar that runs out soon, or has",
          "calendar `T` (FILE) lists dates for 2026 and runs out on 2027-01-01, in 35 days (today is 2026-11-27): "
          "from then every deal that asks about a 2027 date fails (96, naming the calendar, its file and the "
          "year) / ... and none for 2027: every deal that asks about a 2027 date fails now (help: add the year's "
          "closing days as published, then `bsp reload`; `bsp check --calendar-warn-days N` or the deployment file's calendars.warn_days, 60 unless told); "
          "at the file in the table's declaration, which a route passes to is_business_day, next_business_day, "
          "add_business_days or value_date",
          _route('let ok = is_business_day(today(), hols)', 'reply Req { code = "00" }',
                 head=_HEAD + 'table hols = csv "hols.csv" key date\n'), 5, 18, severity="warning",
          files={"hols.csv": "date,name\n2020-12-25,Christmas Day\n"}),
    Entry("W033", "effective-dated calendar row that applies only after its own day",
          "calendar `T`: the row for 2026-05-01 applies from 2026-06-01 (C), after the day itself: it never counts "
          "(a day is read by its row in force on that day); and N more such row(s) (help: were the columns date "
          "and C swapped?); at the first such line of the calendar's file",
          _route('let ok = is_business_day(today(), hols)', 'reply Req { code = "00" }',
                 head=_HEAD + 'table hols = csv "hols.csv" key date effective from valid_from\n'), 3, 1,
          severity="warning", file="hols.csv",
          files={"hols.csv": "date,valid_from,name\n2026-12-25,2026-01-01,Christmas Day\n"
                             "2027-05-01,2027-06-01,Labour Day\n2028-12-25,2028-01-01,Christmas Day\n"}),
    Entry("W011", "format definition its kind accepts with a warning",
          "format `F`: (the format kind's own message, e.g. a copybook item `AMT: SIGN LEADING SEPARATE on an "
          "unsigned item (PIC 9(5)): IBM's compiler refuses it; read as signed, with its sign byte`; help: write "
          "PIC S9(5) if the data holds a sign, or remove the SIGN clause if it does not)",
          'format F = copybook "f.cpy"\n', 2, 12, severity="warning", file="f.cpy",
          files={"f.cpy": "       01  R.\n           05  AMT  PIC 9(5) SIGN LEADING SEPARATE.\n"}),
    Entry("W008", "client certificate a channel never has",
          "channel `C` (memory) never has a client certificate: `peer.cn` is always null, since a request on it "
          "comes over no TLS connection of its own (also `peer.san`, always empty; a tcp / http listen channel "
          "without client_cert = \"required\" or \"optional\": help: set it and `ca`)",
          _route('deal PAY { ref = msg.code  amount = 1  key = peer.cn + "/" + msg.code }',
                 'reply Req { code = "00" }'), 7, 50, severity="warning"),
)


# ---------------------------------------------------------------- route tests
# Kept apart from CATALOGUE (whose table is generated into docs/language.md): these
# are rendered into docs/testing.md and walked by tests/routetest/test_routetest_catalogue.py
# with the engine's default registry.
_T_HEAD = ('format Req = json\n'
           'channel front = memory\n'
           'channel back = tcp connect { address = "127.0.0.1:1" }\n'
           'route r {\n'
           '    receive from front as Req\n'
           '    call post = back as Req { a = 1 }\n'
           '    reply Req { code = "00" }\n'
           '}\n')                                  # 8 lines; a test starts on line 9
_T_SEND = '    given front sends { a = 1 }\n'


def _test(*body: str, head: str = _T_HEAD, name: str = "t") -> str:
    return head + f'test "{name}" {{\n' + "".join(f"    {b}\n" for b in body) + "}\n"


TEST_CATALOGUE: tuple[Entry, ...] = (
    Entry("E090", "test that sends nothing", 'test "NAME" sends nothing',
          _test('expect no reply'), 9, 6),
    Entry("E091", "test that sends twice", 'test "NAME" sends more than once',
          _test('given front sends { a = 1 }', 'given front sends { a = 2 }'), 11, 5),
    Entry("E088", "repeat on a channel that never repeats a request",
          "channel `C` (timer) never sends the same request again: each tick is a new one, ...",
          _test('given front sends { a = 1 } twice',
                head=_T_HEAD.replace('channel front = memory\n', 'channel front = timer { every = 5m }\n')), 10, 33),
    Entry("E089", "call count below one", "`expect call C` counts 0 calls",
          _test('given front sends { a = 1 }', 'expect call back { a = 1 } 0 times'), 11, 32),
    Entry("W005", "repeat sent to routes without a deal key",
          "no route receiving from channel `C` declares a deal key: the repeat runs the route's steps again ...",
          _test('given front sends { a = 1 } twice'), 10, 33, severity="warning"),
    Entry("E092", "sends to a channel no route receives from", "no route receives from channel `C`",
          _test('given back sends Req { a = 1 }'), 10, 11),
    Entry("E093", "sends to a raw route without a format", "the routes of channel `C` receive raw bytes: name the format",
          _test('given front sends { a = 1 }', head=_T_HEAD.replace("receive from front as Req", "receive from front")),
          10, 5),
    Entry("E094", "answers or expects a call on a channel no route calls", "no route calls channel `C`",
          _test('given front sends { a = 1 }', 'given front answers { a = 1 }'), 11, 11),
    Entry("E095", "status on a channel without statuses", "channel `C` (tcp connect) answers without a status",
          _test('given front sends { a = 1 }', 'given back answers 200 { a = 1 }'), 11, 24),
    Entry("E096", "unknown field of a deal or dead letter expectation", "a deal has no field `NAME` to expect",
          _test('given front sends { a = 1 }', 'expect deal r { colour = "red" }'), 11, 21),
    Entry("E087", "expected call field that no call sets",
          'no call to `C` sets a field `NAME`: the test would get "<none>" (with did you mean; only for '
          "formats that add no field of their own and show no field list: json, xml)",
          _test('given front sends { a = 1 }', 'expect call back { b = 1 }'), 11, 24),
    Entry("E097", "deal type no route records", "no route records a deal of type `TYPE`",
          _test('given front sends { a = 1 }', 'expect deal PAYMENT { status = "committed" }'), 11, 17),
    Entry("E098", "test declared twice", 'test "NAME" is declared twice',
          _test('given front sends { a = 1 }') + 'test "t" {\n' + _T_SEND + '}\n', 12, 6),
    Entry("E099", "http details on a channel that is not http",
          "channel `C` (memory) is not an http listen channel: it has no request line (also: an http request has "
          "no `NAME` to set; `http.peer` is the client's address, HOST:PORT: \"partner-a\" is not one)",
          _test('given front sends { a = 1 } http { method = "GET" }'), 10, 40),
    Entry("E102", "file details on a channel that takes no files, or a wrong one",
          "channel `C` (memory) does not take files: its routes see no `file` (also: a file record has no `NAME` "
          "to set; `file.line` is an integer: it cannot take a string)",
          _test('given front sends { a = 1 } file { name = "x.csv" }'), 10, 40),
    Entry("E110", "peer details a channel cannot have, or unknown",
          "channel `C` (memory) never has a client certificate: its routes always read `peer.cn` as null (also: a "
          "peer has no `NAME` to set, with did you mean; `peer.cn` is a text: it cannot take 3)",
          _test('given front sends { a = 1 } peer { cn = "PARTNER-A" }'), 10, 40),
    Entry("E103", "expected text for a number, or a number for text",
          "field `F` of format `FMT` is a number (integer): the text \"1\" is never equal to it (help: the number "
          "to write, or number(...) for a computed text); also a text field expected as a number, a deal's fields, "
          "ISO 8583 fields (text; `n`: digits only), SWIFT values and amounts, ISO 20022 elements typed by the XSD, "
          "generic XML (text), and a `given` value the format does not encode (a number for an ISO 8583 `ans` field)",
          _test('given front sends { a = 1 }', 'expect deal r { amount = "1.00" }'), 11, 30),
    Entry("E113", "test clock that is not an instant",
          'test "NAME": `at` "TEXT" has no time zone, so the instant would depend on the machine\'s: add its offset '
          '(also: is not a time: write it ISO 8601 with its offset)',
          _test('given front sends { a = 1 }').replace('test "t" {', 'test "t" at "2026-11-25T10:00:00" {'), 9, 13),
    Entry("E079", "answer in another format than the call reads", "the calls to `C` read their answer as `F`, not `G`",
          _test('given front sends { a = 1 }', 'given back answers Other { a = 1 }',
                head=_T_HEAD.replace('format Req = json\n', 'format Req = json\nformat Other = json\n')), 12, 24),
)


def by_code() -> dict[str, Entry]:
    return {e.code: e for e in CATALOGUE + TEST_CATALOGUE}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(entries: tuple[Entry, ...] = CATALOGUE) -> str:
    """The catalogue as the markdown that docs/language.md embeds (``TEST_CATALOGUE``: docs/testing.md)."""
    out = ["| code | what | message | example (the caret goes to line:col) |",
           "|---|---|---|---|"]
    for e in entries:
        src = e.example if e.file == "main.route" else e.files[e.file]
        lines = src.splitlines()
        shown = lines[e.line - 1].strip() if 0 < e.line <= len(lines) else "(end of file)"
        where = f"{e.line}:{e.col}" if e.file == "main.route" else f"{e.file} {e.line}:{e.col}"
        out.append(f"| `{e.code}` | {_cell(e.title)} | {_cell(e.message)} | "
                   f"`{_cell(shown)}` ({where}) |")
    return "\n".join(out) + "\n"
