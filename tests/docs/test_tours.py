"""The three tours (docs/tour-analyst.md, tour-admin.md, tour-tester.md) can be followed as written.

test_doc_commands.py checks the `bsp ...` lines of code blocks. A new user also runs what the tours
show inline (`bsp audit verify --deployment platform.yaml`), the helper programs beside bsp
(`python -m engine.sim.bill_traffic --count 300`, `python bench/bench_sync.py --dir ...`), opens the
files they name, pastes the analyst's route into the service it comes from, and counts on the figures
they quote. Each of those is checked here against the repository, so a tour cannot go stale quietly.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import cli_reference as ref
from test_doc_commands import problems

TOURS = [ref.REPO / "docs" / f"tour-{who}.md" for who in ("analyst", "admin", "tester")]
_FENCE = re.compile(r"^[ \t]*```([^\n]*)\n(.*?)^[ \t]*```", re.M | re.S)     # indented in a list item too
_SHELL = ("", "sh", "shell", "bash", "console")
_INLINE = re.compile(r"(?<!`)`([^`]+?)`(?!`)")          # may wrap onto the next line of the paragraph
_HELPER = re.compile(r"^(?:\.venv/bin/)?(python(?: -m [\w.]+| [\w/]+\.py)|pytest)\b(.*)$")


def _prose(text: str) -> str:
    """The page without its code blocks (line breaks kept)."""
    return _FENCE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def shown_commands(page: Path) -> list[str]:
    """Every command line of the page: code-block lines and inline code that starts like a command."""
    text = page.read_text(encoding="utf-8")
    lines = [ln for m in _FENCE.finditer(text) if m.group(1).strip() in _SHELL
             for ln in re.sub(r"[ \t]*\\\n[ \t]*", " ", m.group(2)).splitlines()]       # a line continued with \\
    lines += [" ".join(m.group(1).split()) for m in _INLINE.finditer(_prose(text)) if "\n\n" not in m.group(1)]
    out = []
    for ln in lines:
        ln = re.sub(r"^(?:\$ )?(?:[A-Z_]+=\S+ )*", "", re.sub(r"\s#.*$", "", ln).strip())   # $ VAR=value bsp ...
        if ln.startswith(("bsp ", "python ", "python3 ", ".venv/bin/")):
            out.append(ln)
    return out


def helper_problems(line: str) -> list[str]:
    """A `python -m MODULE` / `python SCRIPT.py` / `pytest PATH` line: the program is in the repository
    and its --help lists every option the line gives."""
    m = _HELPER.match(line)
    if m is None:
        return [] if "import " in line else [f"{line!r}: not a program the tours know how to check"]
    program, rest = m.group(1), shlex.split(m.group(2))
    if program == "pytest":
        missing = [f"{p}: no such file or folder" for p in rest if not p.startswith("-") and not (ref.REPO / p).exists()]
        return missing or pytest_collect_problems(rest)
    if " -m " in program:
        module = program.split()[-1]
        if not (ref.REPO / (module.replace(".", "/") + ".py")).is_file():
            return [f"{line!r}: no module {module} in the repository"]
        argv = [sys.executable, "-m", module, "--help"]
    else:
        script = program.split()[-1]
        if not (ref.REPO / script).is_file():
            return [f"{line!r}: no script {script} in the repository"]
        argv = [sys.executable, script, "--help"]
    helptext = subprocess.run(argv, cwd=ref.REPO, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"}).stdout
    return [f"{line!r}: {program} has no option {w}" for w in rest
            if w.startswith("--") and not re.search(rf"(?<![\w-]){re.escape(w.split('=')[0])}(?![\w-])", helptext)]


def pytest_collect_problems(args: list[str]) -> list[str]:
    """The venv's own `pytest` script (not `python -m pytest`, which puts the working folder on sys.path first)
    collects what the line names without an error: run from the repository root as the tour shows it."""
    script = Path(sys.executable).parent / "pytest"
    if not script.is_file():
        return []
    p = subprocess.run([str(script), "--collect-only", "-q", "-p", "no:cacheprovider", *args], cwd=ref.REPO,
                       capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": ""})
    if p.returncode == 0:
        return []
    errors = [ln for ln in p.stdout.splitlines() if ln.startswith(("E ", "ERROR "))][:6]
    return [f"pytest {' '.join(args)}: does not collect (exit {p.returncode}): " + " | ".join(errors)]


@pytest.mark.parametrize("page", TOURS, ids=lambda p: p.name)
def test_every_command_a_tour_shows_exists_with_its_options(page: Path) -> None:
    found = []
    for line in shown_commands(page):
        if line.startswith("bsp "):
            found += [f"{line!r}: {p}" for p in problems(line)]
        else:
            found += helper_problems(line)
    assert not found, f"{page.name}:\n" + "\n".join(found)


def test_the_helper_programs_a_tour_runs_give_their_exit_codes_in_their_help() -> None:
    """The tours tell a reader what `python -m engine.sim.bill_traffic` exits with (1: requests unanswered); its
    --help, where a reader looks first, says so too, as every bsp command's does (test_cli_doc.py)."""
    programs = set()
    for page in TOURS:
        for line in shown_commands(page):
            m = _HELPER.match(line)
            if m and m.group(1) != "pytest":
                programs.add(m.group(1))
    assert "python -m engine.sim.bill_traffic" in programs, programs
    silent = []
    for program in sorted(programs):
        words = program.split()
        argv = [sys.executable, *words[1:], "--help"]
        out = subprocess.run(argv, cwd=ref.REPO, capture_output=True, text=True, timeout=60).stdout
        if not re.search(r"\bExit 0\b", out):
            silent.append(program)
    assert not silent, f"--help gives no exit codes (`Exit 0 ...; 1 ...; 2 ...`): {silent}"


def test_the_tours_show_commands() -> None:
    """The check above reads the inline commands too (were it to find none, it would prove nothing)."""
    shown = {p.name: shown_commands(p) for p in TOURS}
    assert "bsp audit verify --deployment platform.yaml" in shown["tour-admin.md"]
    assert any(c.startswith(".venv/bin/python -m engine.sim.bill_traffic --count") for c in shown["tour-tester.md"])
    assert all(len(c) >= 5 for c in shown.values()), {k: len(v) for k, v in shown.items()}


def test_shown_commands_reads_shell_blocks_however_they_are_written(tmp_path: Path) -> None:
    """A tour's block tagged ```shell / ```bash / ```console, indented in a list item, with `$ ` prompts or a
    command continued with `\\` is what the reader pastes: its commands are checked like an untagged block's."""
    page = tmp_path / "tour.md"
    page.write_text("1. Send:\n\n   ```shell\n   $ python -m engine.sim.bill_traffic \\\n       --counts 3\n   ```\n"
                    "```bash\n.venv/bin/python bench/bench_sync.py --dirs x\n```\n```console\n$ bsp deals --sinse 1h\n```\n"
                    "```yaml\nbsp: not a command\n```\n", encoding="utf-8")
    assert shown_commands(page) == ["python -m engine.sim.bill_traffic --counts 3",
                                    ".venv/bin/python bench/bench_sync.py --dirs x", "bsp deals --sinse 1h"]


def test_the_check_finds_a_stale_helper_command() -> None:
    assert helper_problems("python -m engine.sim.bill_traffic --count 300 --reply-timeout 5") == []
    assert helper_problems("python -m engine.sim.bill_traffic --counts 3") == [
        "'python -m engine.sim.bill_traffic --counts 3': python -m engine.sim.bill_traffic has no option --counts"]
    assert helper_problems("python bench/no_such.py") == ["'python bench/no_such.py': no script bench/no_such.py "
                                                          "in the repository"]
    assert helper_problems(".venv/bin/pytest tests/nowhere/") == ["tests/nowhere/: no such file or folder"]


@pytest.mark.parametrize("page", TOURS, ids=lambda p: p.name)
def test_files_a_tour_names_exist(page: Path) -> None:
    """`routes/sales/sales_test.route`, `engine/sim/services/`, `tests/services/test_services_e2e.py`: a path of
    the repository a tour names (in code, inline or in a block) is there; `<service>` placeholders aside."""
    text = page.read_text(encoding="utf-8")
    names = re.findall(r"(?<![\w./<-])((?:routes|engine|tests|bench|docs)/[\w./-]*)", text)
    missing = sorted({n for n in names if not (ref.REPO / n.rstrip(".")).exists()})
    assert not missing, f"{page.name} names files that are not in the repository: {missing}"


def test_the_analyst_tour_lists_the_fund_management_folder_as_it_is() -> None:
    text = (ref.REPO / "docs" / "tour-analyst.md").read_text(encoding="utf-8")
    block = re.search(r"^routes/fund_management/\n(.*?)^```", text, re.M | re.S)
    assert block, "tour-analyst.md shows the folder of routes/fund_management/"
    listed = [ln.split()[0] for ln in block.group(1).splitlines() if ln.strip()]
    folder = ref.REPO / "routes" / "fund_management"
    assert all((folder / name).exists() for name in listed), listed
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert files == sorted(listed), f"the folder holds {files}, the tour lists {sorted(listed)}"


def test_the_analyst_tours_route_compiles_in_its_service(tmp_path: Path) -> None:
    """The route of step 3 pasted over the route of the same name in routes/fund_management compiles."""
    import shutil

    from dsl.load import compile_paths
    from engine.registry import default_registry

    text = (ref.REPO / "docs" / "tour-analyst.md").read_text(encoding="utf-8")
    route = re.search(r"^```route\n(.*?)^```", text, re.M | re.S).group(1)
    name = re.match(r"route (\w+) \{", route).group(1)
    for folder in ("common", "fund_management"):
        shutil.copytree(ref.REPO / "routes" / folder, tmp_path / folder)
    target = tmp_path / "fund_management" / "fund_management.route"
    source = target.read_text(encoding="utf-8")
    start = source.index(f"route {name} {{")
    end = source.find("\nroute ", start + 1)
    target.write_text(source[:start] + route + (source[end:] if end != -1 else ""), encoding="utf-8")
    result = compile_paths([target], default_registry())
    assert result.program is not None and not result.errors, "\n".join(str(d) for d in result.errors)


def test_the_tester_tours_count_of_route_tests_is_the_libraries() -> None:
    text = (ref.REPO / "docs" / "tour-tester.md").read_text(encoding="utf-8")
    said = int(re.search(r"\((\d+) tests in about", text).group(1))
    tests = sum(len(re.findall(r'^\s*test "', p.read_text(encoding="utf-8"), re.M))
                for p in (ref.REPO / "routes").glob("*/*_test.route"))
    assert said == tests, f"tour-tester.md says {said} route tests, routes/ holds {tests}"


def test_the_tester_tours_count_of_service_tests_is_what_pytest_collects() -> None:
    """`.venv/bin/pytest tests/services/ ... (about N tests)`: the figure a newcomer reads before waiting minutes
    for the run is within a fifth of what that line collects (it said about 200 while it collected 358)."""
    text = (ref.REPO / "docs" / "tour-tester.md").read_text(encoding="utf-8")
    m = re.search(r"^\.venv/bin/pytest (\S+)\s.*\(about ([\d,]+) tests\)", text, re.M)
    assert m, "tour-tester.md shows `.venv/bin/pytest tests/services/` with (about N tests)"
    said = int(m.group(2).replace(",", ""))
    script = Path(sys.executable).parent / "pytest"
    if not script.is_file():
        pytest.skip("no pytest script beside the interpreter")
    p = subprocess.run([str(script), "--collect-only", "-q", "-p", "no:cacheprovider", m.group(1)], cwd=ref.REPO,
                       capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": ""})
    found = re.search(r"^(\d+) tests? collected", p.stdout, re.M)
    assert p.returncode == 0 and found, p.stdout[-2000:]
    collected = int(found.group(1))
    assert abs(said - collected) <= collected / 5, f"tour-tester.md says about {said} tests, {m.group(1)} holds {collected}"


@pytest.mark.parametrize("page", TOURS, ids=lambda p: p.name)
def test_the_check_lines_of_a_tour_pass(page: Path) -> None:
    """`bsp check routes/fund_management/ [--explain]` as the tour shows it: exit 0 on the shipped routes."""
    from typer.testing import CliRunner

    from engine.cli import app

    lines = [ln for ln in shown_commands(page) if ln.startswith("bsp check ")]
    for line in lines:
        res = CliRunner().invoke(app, shlex.split(line)[1:])
        assert res.exit_code == 0, f"{page.name}: {line!r} exit {res.exit_code}:\n{res.output[-2000:]}"


def test_running_the_shipped_deployment_without_the_admin_token_says_so_as_the_tours_show() -> None:
    """tour-admin.md and tour-tester.md export BSP_ADMIN_TOKEN first, because without it `bsp run
    routes/platform.yaml` stops at once (before anything listens) with the error the admin tour quotes."""
    m = re.search(r"`(secret 'admin\.token': [^`]+)`", (ref.REPO / "docs" / "tour-admin.md").read_text(encoding="utf-8"))
    assert m, "tour-admin.md quotes the error of `bsp run routes/platform.yaml` without BSP_ADMIN_TOKEN"
    quoted = m.group(1)
    for page in TOURS[1:]:
        assert "export BSP_ADMIN_TOKEN=" in page.read_text(encoding="utf-8"), page.name
    env = {k: v for k, v in os.environ.items() if not k.startswith("BSP_")}
    p = subprocess.run([sys.executable, "-m", "engine.cli", "run", "routes/platform.yaml"], cwd=ref.REPO, env=env,
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 2 and quoted in p.stderr, p.stderr


def test_the_tester_tours_replay_step_runs_as_written(tmp_path: Path, monkeypatch) -> None:
    """Step 2 of tour-tester.md, run as written in a folder holding `routes/` and a real capture of bill
    payment (loopback sockets, tests/replay/replaykit.py): it makes the candidate copy the replay line names,
    and the replay of the unchanged copy, with the service's profile, passes and writes its page. An edited
    copy (a mapping) fails, exit 1."""
    import shutil

    from typer.testing import CliRunner

    from engine.cli import app

    monkeypatch.syspath_prepend(str(ref.REPO / "tests" / "replay"))
    from replaykit import config_copy, record_session

    text = (ref.REPO / "docs" / "tour-tester.md").read_text(encoding="utf-8")
    step = re.search(r"## 2\. Replay.*?^```\n(.*?)^```", text, re.M | re.S).group(1)
    lines = [re.sub(r"\s+#.*$", "", ln).strip() for ln in step.splitlines() if ln.strip()]
    assert lines[0] == "mkdir -p candidate && cp -r routes/. candidate/", lines
    replay_line = lines[1]
    assert replay_line.startswith("bsp replay var/capture.duckdb --config candidate/bill_payment"), replay_line

    shutil.copytree(ref.REPO / "routes", tmp_path / "routes")
    (tmp_path / "var").mkdir()
    rec = tmp_path / "rec"
    shutil.move(record_session(rec, config_copy(rec / "config"), 20), tmp_path / "var" / "capture.duckdb")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "candidate").mkdir()
    shutil.copytree("routes", "candidate", dirs_exist_ok=True)                # the tour's mkdir && cp -r routes/.

    res = CliRunner().invoke(app, shlex.split(replay_line)[1:])
    assert res.exit_code == 0 and "result: PASS" in res.output, res.output
    assert (tmp_path / "replay.html").is_file()
    route = tmp_path / "candidate" / "bill_payment" / "bill_payment.route"
    route.write_text(route.read_text().replace('"paid " + upper(', '"paid " + lower('))
    res = CliRunner().invoke(app, shlex.split(replay_line)[1:])
    assert res.exit_code == 1 and "reply mainframe    message" in res.output, res.output


def test_what_the_shipped_services_write_under_routes_is_not_left_for_git() -> None:
    """README and tour-tester.md run `bsp run routes/claims_payout/`: it writes a result file per claim into
    routes/claims_payout/results/ (the batch services into inbox/, outbox/). Git ignores them, not the folders'
    .gitkeep, so `git status` after the tours shows the newcomer's own changes only."""
    import shutil

    if shutil.which("git") is None or not (ref.REPO / ".git").exists():
        pytest.skip("not a git checkout")
    written = ["routes/claims_payout/results/claim-CLM-1-000001.json", "routes/claims_payout/results/voided-20260301.jsonl",
               "routes/standing_orders/outbox/SO-RESULT-20260301.csv", "routes/standing_orders/inbox/done/b.csv",
               "routes/receivables_payables/inbox/error/b.csv.reason.txt"]
    kept = [str(p.relative_to(ref.REPO)) for p in (ref.REPO / "routes").glob("*/*/.gitkeep")]
    assert kept, "the shipped services keep their folders with .gitkeep"
    p = subprocess.run(["git", "check-ignore", "--no-index", *written, *kept], cwd=ref.REPO, capture_output=True,
                       text=True, timeout=30)
    ignored = set(p.stdout.split())
    assert set(written) <= ignored, f"git would list these as untracked: {sorted(set(written) - ignored)}"
    assert not ignored & set(kept), f"git ignores the folders' .gitkeep: {sorted(ignored & set(kept))}"


def test_the_sync_bench_of_the_admin_tour_measures_the_folder_named_and_makes_none(tmp_path: Path) -> None:
    """tour-admin.md runs `python bench/bench_sync.py --dir /var/lib/bsp`. On a machine without that folder it
    made it (as root) and measured that, maybe another file system than the ledger's; now it says so, exit 2."""
    missing = tmp_path / "var" / "lib" / "bsp"
    p = subprocess.run([sys.executable, "bench/bench_sync.py", "--dir", str(missing), "--count", "1"], cwd=ref.REPO,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p
    assert f"error: --dir {missing}: no such folder; give a folder on the ledger's file system" in p.stderr
    assert not (tmp_path / "var").exists()
    p = subprocess.run([sys.executable, "bench/bench_sync.py", "--dir", str(tmp_path), "--count", "2", "--sizes",
                        "100"], cwd=ref.REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and f"{tmp_path}: 2 commits per size and way" in p.stdout, p
