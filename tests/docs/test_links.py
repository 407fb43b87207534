"""Every relative link in README.md and docs/**/*.md points at a file (and heading) that exists; every page is on the map."""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
INDEX = DOCS / "index.md"

# [text](target) and [text](target "title"); images too.  Reference-style definitions: [id]: target
_INLINE = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFDEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_CODE = re.compile(r"`[^`\n]*`")


def pages() -> list[Path]:
    return [REPO / "README.md"] + sorted(DOCS.rglob("*.md"))


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every link outside code, in the order written."""
    text = path.read_text(encoding="utf-8")
    # blank out code (keeping newlines so line numbers stay right): links in code are not links
    text = _FENCE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    text = _CODE.sub(lambda m: " " * len(m.group(0)), text)
    found = [(m.start(), m.group(1)) for m in _INLINE.finditer(text)]
    found += [(m.start(), m.group(1)) for m in _REFDEF.finditer(text)]
    return [(text.count("\n", 0, pos) + 1, target) for pos, target in sorted(found)]


def relative_target(source: Path, target: str) -> Path | None:
    """The file a relative link points at; None for web links, mail and same-page anchors."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.I) or target.startswith("#"):
        return None
    file_part = unquote(target.split("#", 1)[0].split("?", 1)[0])
    if file_part.startswith("/"):
        return REPO / file_part.lstrip("/")
    return (source.parent / file_part).resolve()


def broken_links(path: Path) -> list[str]:
    out = []
    for line, target in links(path):
        dest = relative_target(path, target)
        if dest is not None and not dest.exists():
            out.append(f"{_show(path)}:{line}: link to {target!r}: {dest} does not exist")
    return out


def _show(path: Path) -> str:
    return str(path.relative_to(REPO)) if REPO in path.parents else str(path)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown page (repeated headings get -1, -2, ... as on GitHub)."""
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} (.+?)\s*#*\s*$", text, flags=re.M):
        slug = github_anchor(heading)
        n = seen.get(slug, 0)
        out.add(slug if n == 0 else f"{slug}-{n}")
        seen[slug] = n + 1
    return out


def broken_anchors(path: Path) -> list[str]:
    out = []
    for line, target in links(path):
        if "#" not in target:
            continue
        file_part, fragment = target.split("#", 1)
        dest = path if not file_part else relative_target(path, target)
        if dest is None or dest.suffix != ".md" or not dest.is_file():
            continue
        if fragment not in anchors(dest):
            out.append(f"{_show(path)}:{line}: link to {target!r}: {_show(dest)} has no heading with anchor "
                       f"#{fragment}")
    return out


def reachable_from(start: Path, root: Path = DOCS) -> set[Path]:
    """Every markdown page under ``root`` reachable from ``start`` by following relative links."""
    seen: set[Path] = set()
    todo = [start.resolve()]
    while todo:
        page = todo.pop()
        if page in seen:
            continue
        seen.add(page)
        for _, target in links(page):
            dest = relative_target(page, target)
            if dest is not None and dest.suffix == ".md" and dest.is_file() and root.resolve() in dest.parents:
                todo.append(dest.resolve())
    return seen


def test_there_are_pages_and_links() -> None:
    assert len(pages()) > 20
    assert sum(len(links(p)) for p in pages()) > 50


@pytest.mark.parametrize("path", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_point_at_existing_files(path: Path) -> None:
    found = broken_links(path)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("path", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_anchors_in_links_name_existing_headings(path: Path) -> None:
    found = broken_anchors(path)
    assert not found, "\n".join(found)


def test_every_docs_page_is_reachable_from_the_index() -> None:
    assert INDEX.is_file(), "docs/index.md (the map of all docs by reader) is missing"
    unreachable = sorted(str(p.relative_to(REPO)) for p in DOCS.rglob("*.md")
                         if p.resolve() not in reachable_from(INDEX))
    assert not unreachable, ("not reachable from docs/index.md by links (add them to the map): "
                             + ", ".join(unreachable))


def test_readme_links_to_the_index() -> None:
    assert any(relative_target(REPO / "README.md", t) == INDEX.resolve()
               for _, t in links(REPO / "README.md")), "README.md must link to docs/index.md"


def test_the_checks_catch_a_broken_link_and_an_orphan(tmp_path: Path) -> None:
    """The helpers are not vacuous: links to missing files and an unlinked page are both found."""
    (tmp_path / "index.md").write_text(
        "see [b](b.md), [web](https://example.org), `[not](c.md)`, [here](#top), [sub](sub/x.md#part)\n"
        "```\n[nor](d.md)\n```\n[e]: e.md\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.md").write_text("[back](../index.md)\n", encoding="utf-8")
    (tmp_path / "orphan.md").write_text("nobody links here\n", encoding="utf-8")
    index = tmp_path / "index.md"
    assert [t for _, t in links(index)] == ["b.md", "https://example.org", "#top", "sub/x.md#part", "e.md"]
    assert [m.split(": link to ")[1].split(":")[0] for m in broken_links(index)] == ["'b.md'", "'e.md'"]
    (tmp_path / "sub" / "x.md").write_text("# Part\n[back](../index.md#top) [bad](../index.md#nowhere)\n",
                                           encoding="utf-8")
    (tmp_path / "index.md").write_text((tmp_path / "index.md").read_text() + "# Top\n", encoding="utf-8")
    assert [m.rsplit("#", 1)[1] for m in broken_anchors(tmp_path / "sub" / "x.md")] == ["nowhere"]
    reached = reachable_from(index, root=tmp_path)
    assert (tmp_path / "sub" / "x.md").resolve() in reached
    assert (tmp_path / "orphan.md").resolve() not in reached
