"""The README and docs/ as a newcomer uses them: the README is short and starts with the two commands, every
link leads to a file, every documented `cnnlab ...` command parses, and a few cheap ones run."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README] + sorted((ROOT / "docs").rglob("*.md"))
COMMANDS = ("pip install -e . && cnnlab train --data-dir ../shared/datasets",
            'pip install -e ".[test]" && python -m pytest')
# Pages the README links to that are written on another branch (loggers, events, notebooks); a link to one
# may dangle until it lands, and is checked like any other from then on.
ELSEWHERE = {"docs/loggers.md", "docs/events.md", "docs/notebooks.md"}
# Languages of fenced blocks that hold shell commands (a bare ``` block counts too).
SHELL = {"", "sh", "console", "bash", "shell"}


def test_the_readme_is_short_and_starts_with_the_two_commands():
    lines = README.read_text().splitlines()
    assert len(lines) < 250, f"README.md has {len(lines)} lines; move detail to docs/"
    assert [line.strip() for line in lines[2:4]] == list(COMMANDS)
    assert lines[2] == "    " + COMMANDS[0] and lines[3] == "    " + COMMANDS[1]  # CI and a checker read them as they are


def _links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)   # code is not a link
    text = re.sub(r"`[^`\n]*`", "", text)
    return re.findall(r"\]\(([^)\s]+)\)", text)


def _anchors(page: Path) -> set[str]:
    """The #fragments GitHub gives the page's headings: lower case, punctuation dropped, spaces as hyphens,
    a repeated heading numbered."""
    seen, found = {}, set()
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return found


def test_every_relative_link_leads_to_a_file_and_heading():
    broken = []
    for page in PAGES:
        for link in _links(page):
            if re.match(r"[a-z]+:", link):
                continue  # a web address
            path, _, fragment = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            if not target.exists():
                if target.relative_to(ROOT).as_posix() not in ELSEWHERE:
                    broken.append(f"{page.relative_to(ROOT)}: {link}")
            elif fragment and target.suffix == ".md" and fragment not in _anchors(target):
                broken.append(f"{page.relative_to(ROOT)}: {link} (no such heading)")
    assert not broken, "links to nothing:\n" + "\n".join(broken)


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / link.split("#")[0]).resolve() for link in _links(README)}
    pages = {p.resolve() for p in (ROOT / "docs").glob("*.md")}
    assert not pages - linked, f"not linked from README.md: {sorted(p.name for p in pages - linked)}"
    assert {str(ROOT / p) for p in ELSEWHERE} <= {str(p) for p in linked}


def _shell_blocks(page: Path):
    """(line number, text) of each line inside a shell code block, a `\\` continuation joined to its line."""
    inside, pending = None, ""
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        fence = re.match(r"\s*```(\w*)", line)
        if fence:
            inside = None if inside is not None else fence.group(1)
            continue
        if inside is None or inside not in SHELL:
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield number, pending + line
        pending = ""


def documented_commands() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for number, line in _shell_blocks(page):
            line = re.sub(r"\s#.*$", "", line.strip()).removeprefix("$ ")
            for part in line.split("&&"):
                words = shlex.split(part)
                while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # CNNLAB_DATA_DIR=... cnnlab ...
                    words.pop(0)
                if words[:1] == ["cnnlab"]:
                    found.append((f"{page.relative_to(ROOT)}:{number}", words[1:]))
    return found


def test_the_docs_show_commands():
    pages = {where.split(":")[0] for where, _ in documented_commands()}
    assert "README.md" in pages and len(pages) >= 5


@pytest.mark.parametrize("where,argv", documented_commands(), ids=lambda v: v if isinstance(v, str) else None)
def test_a_documented_command_parses(where, argv, capsys):
    try:
        build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{where}: `cnnlab {shlex.join(argv)}` does not parse: {capsys.readouterr().err.strip()}")


def test_the_readme_main_job_parses():
    args = build_parser().parse_args(COMMANDS[0].split("&& cnnlab ")[1].split())
    assert args.command == "train" and args.data_dir == "../shared/datasets"


def _run(*argv: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's cnnlab, whatever is installed
    done = subprocess.run([sys.executable, "-m", "cnnlab", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"cnnlab {' '.join(argv)} exited {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout


@pytest.mark.parametrize("line,expected", [
    ("cnnlab models", ["tutorial", "resnet18", "airbench"]),
    ("cnnlab recipes", ["cifar10-fast", "cifar10-90", "PFLOP"]),
    ("cnnlab schema model", ['"layers"', '"conv"']),
    ("cnnlab summary examples/keras-cifar10.yaml", ["Total params: 2,916,906", "Non-trainable params: 896",
                                                    "parameter-hog"]),
])
def test_a_documented_command_runs(line, expected):
    assert any(" ".join(argv) == line.removeprefix("cnnlab ") for _, argv in documented_commands()), \
        f"`{line}` is not in the docs any more"
    out = _run(*shlex.split(line)[1:])
    for text in expected:
        assert text in out, f"`{line}` printed no {text!r}"
