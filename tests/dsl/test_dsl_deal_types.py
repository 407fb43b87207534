"""W009: one deal type recorded by routes of different files (reports group deals by type)."""
from __future__ import annotations

from pathlib import Path

from dsl.load import compile_paths

HEAD = 'channel mf = memory\nformat Req = fixed {\n    code string(4)\n}\n'


def _route(name: str, code: str, deal: str, extra: str = "") -> str:
    return (f'route {name} {{\n    receive from mf as Req when msg.code == "{code}"\n{extra}'
            f'    deal {deal} {{ ref = msg.code  amount = 1 }}\n    reply Req {{ code = "00" }}\n}}\n')


def _check(tmp_path: Path, registry, files: dict[str, str]):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return compile_paths([tmp_path / "main.route"], registry).diagnostics


def test_one_type_from_two_files_warns_at_the_later_naming_the_first(tmp_path, registry):
    diags = _check(tmp_path, registry, {
        "main.route": 'use "cards.route"\n' + HEAD + _route("wire", "W", "PAYMENT"),
        "cards.route": _route("cards", "C", "PAYMENT"),
    })
    w = [d for d in diags if d.code == "W009"]
    assert len(w) == 1 and not w[0].is_error, diags
    assert Path(w[0].pos.file).name == "main.route" and (w[0].pos.line, w[0].pos.col) == (8, 10)
    assert w[0].message.startswith("deal type `PAYMENT` is recorded by route `wire` here and by route `cards` at ")
    assert f"{tmp_path / 'cards.route'}:3:10, in another file" in w[0].message
    assert "reports group deals by type" in w[0].message
    assert w[0].help.startswith("if they are different business, give each its own type (e.g. `PAYMENT_WIRE` "
                                "here, `PAYMENT_CARDS` at route `cards`), or rename only the one you are adding: "
                                "the warning is told at the route in the later file, whichever was there first")


def test_routes_of_one_file_share_a_type_quietly(tmp_path, registry):
    diags = _check(tmp_path, registry, {
        "main.route": HEAD + _route("mt103", "A", "REMITTANCE") + _route("pacs008", "B", "REMITTANCE"),
    })
    assert [d.code for d in diags] == []


def test_different_types_and_an_on_error_deal(tmp_path, registry):
    """A deal in `on error { }` counts too; one warning per file, however many routes there repeat it."""
    on_err = _route("later", "L", "OTHER").replace(
        '    reply Req { code = "00" }\n}', '    reply Req { code = "00" }\n    on error {\n'
        '        deal PAYMENT { ref = msg.code  amount = 0 }\n        reply Req { code = "96" }\n    }\n}')
    diags = _check(tmp_path, registry, {
        "main.route": 'use "b.route"\n' + HEAD + _route("a", "A", "PAYMENT") + _route("a2", "X", "PAYMENT"),
        "b.route": _route("b", "B", "REFUND") + on_err,
    })
    w = [(Path(d.pos.file).name, d.pos.line) for d in diags if d.code == "W009"]
    assert w == [("main.route", 8)], [str(d.message) for d in diags]
