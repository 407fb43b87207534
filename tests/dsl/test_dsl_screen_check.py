"""`bsp check` of a `screen` step (E122): its threshold, its literals, its list table and the list file's
lines, each at its place (the route's option, or the list file's line and column)."""
from __future__ import annotations

from pathlib import Path

from dsl.load import compile_paths

HEAD = ('format Req = json\nchannel mf = memory\ntable sanctions = csv "list.csv" key entry_id\n'
        'route r {\n    receive from mf as Req\n')
GOOD = "entry_id,source,name,aliases,ids\nS1,UN,Viktor Kurganov,V. Kurganoff,P1\n"


def check(tmp_path: Path, registry, body: str, listing: str = GOOD) -> list[tuple[str, str, int, int, str]]:
    (tmp_path / "list.csv").write_text(listing)
    (tmp_path / "main.route").write_text(HEAD + body + "}\n")
    res = compile_paths([tmp_path / "main.route"], registry)
    return [(d.code, Path(d.pos.file).name, d.pos.line, d.pos.col, d.message) for d in res.diagnostics]


def test_a_good_screen_step_checks_clean(tmp_path, registry) -> None:
    assert check(tmp_path, registry, '    screen p { name = msg.name  list = sanctions  threshold = 0.9 '
                                     ' code = "62"  text = "held" }\n') == []


def test_a_threshold_outside_0_to_1_is_told_at_the_value(tmp_path, registry) -> None:
    got = check(tmp_path, registry, "    screen p { name = msg.name  list = sanctions  threshold = 1.5 }\n")
    assert [g[:4] for g in got] == [("E122", "main.route", 6, 63)]
    assert "threshold = 1.5: a score between 0 and 1" in got[0][4]


def test_a_threshold_or_code_that_is_an_expression_is_refused(tmp_path, registry) -> None:
    got = check(tmp_path, registry, "    screen p { name = msg.name  list = sanctions  threshold = msg.t  code = msg.c }\n")
    assert [(g[0], g[3]) for g in got] == [("E122", 63), ("E122", 77)]
    assert all("must be a literal" in g[4] for g in got)


def test_a_list_that_is_no_table_is_refused(tmp_path, registry) -> None:
    got = [g for g in check(tmp_path, registry, '    screen p { name = msg.name  list = "list.csv" }\n')
           if g[0] != "W002"]     # the table is then never read
    assert [g[:4] for g in got] == [("E122", "main.route", 6, 40)]
    assert "`list` must name a table" in got[0][4]


def test_a_list_file_line_without_a_name_is_told_at_its_cell(tmp_path, registry) -> None:
    got = check(tmp_path, registry, "    screen p { name = msg.name  list = sanctions }\n",
                GOOD + "S2,OFAC SDN,,alias only,\n")
    assert [g[:4] for g in got] == [("E122", "list.csv", 3, 13)]
    assert "entry 'S2' has no name to screen against" in got[0][4]


def test_a_list_file_without_the_columns_is_told_at_its_header(tmp_path, registry) -> None:
    got = check(tmp_path, registry, "    screen p { name = msg.name  list = sanctions }\n",
                "entry_id,full_name\nS1,Viktor Kurganov\n")
    assert [g[:4] for g in got] == [("E122", "list.csv", 1, 1)]
    assert "no column source, name, aliases" in got[0][4]


def test_on_hit_other_than_refuse_or_hold_is_e123_at_the_value(tmp_path, registry) -> None:
    got = check(tmp_path, registry, '    screen p { name = msg.name  list = sanctions  on_hit = "park" }\n')
    assert [g[:4] for g in got] == [("E123", "main.route", 6, 60)]
    assert 'on_hit = \'park\': expected "refuse"' in got[0][4] and '"hold"' in got[0][4]
    got = check(tmp_path, registry, '    screen p { name = msg.name  list = sanctions  on_hit = msg.h }\n')
    assert [g[:2] for g in got] == [("E122", "main.route")] and "must be a literal" in got[0][4]
    for good in ("hold", "refuse"):
        assert check(tmp_path, registry, f'    screen p {{ name = msg.name  list = sanctions  on_hit = "{good}" }}\n') == []
