"""The project's documentation holds together: README.md and docs/*.md link only to files and
headings that exist, code points only at headings that exist, and the README stays short."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 260
# [text](target): a target without a scheme is a relative link into the repository
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# docs/<name>.md#<anchor> as code mentions it in comments and docstrings
CODE_REFERENCE = re.compile(r"docs/[\w/-]+\.md(?:#[\w-]+)?")
FENCE = re.compile(r"^(```|~~~)")


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor in a Markdown file (repeated headings get -1, -2, ... as on GitHub)."""
    found: set[str] = set()
    in_code = False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            in_code = not in_code
        elif not in_code and (match := re.match(r"#{1,6} (.+)", line)):
            base = slug(match.group(1))
            name, n = base, 0
            while name in found:
                n += 1
                name = f"{base}-{n}"
            found.add(name)
    return found


def prose(path: Path) -> str:
    """A Markdown file without its fenced code blocks (a link there is an example, not a link)."""
    kept, in_code = [], False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            in_code = not in_code
        elif not in_code:
            kept.append(line)
    return "\n".join(kept)


def target_problem(target: str, source: Path) -> str | None:
    """Why a link target of `source` is broken, or None when it resolves."""
    file_part, _, anchor = target.partition("#")
    path = (source.parent / file_part).resolve() if file_part else source
    if not path.exists():
        return f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} does not exist"
    if anchor and path.suffix == ".md" and anchor not in anchors(path):
        return f"{path.name} has no heading #{anchor}"
    return None


def broken_links(path: Path) -> list[str]:
    problems = []
    for target in LINK.findall(prose(path)):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        if (problem := target_problem(target, path)) is not None:
            problems.append(f"{path.name}: ({target}): {problem}")
    return problems


def test_every_relative_link_points_at_a_file_and_heading() -> None:
    assert [p for doc in documents() for p in broken_links(doc)] == []


def test_the_link_check_catches_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## Real heading\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[ok](other.md#real-heading) [here](#page) [web](https://example.org)\n"
        "[gone](missing.md) [typo](other.md#real-headin)\n\n```\n[in code](nowhere.md)\n```\n"
    )
    problems = broken_links(page)
    assert len(problems) == 2, problems
    assert "missing.md does not exist" in problems[0]
    assert "other.md has no heading #real-headin" in problems[1]


def test_headings_become_the_anchors_github_gives_them() -> None:
    assert slug("Every instance (--all)") == "every-instance---all"
    assert slug("trades.csv") == "tradescsv"
    assert slug("The reference strategy") == "the-reference-strategy"


def code_files() -> list[Path]:
    skip = {".venv", ".git", "node_modules", "demo_out"}
    return [
        path
        for pattern in ("*.py", "*.md", "*.toml", "*.yaml", "*.yml", "Makefile")
        for path in ROOT.rglob(pattern)
        if not skip & set(path.relative_to(ROOT).parts)
    ]


def test_every_docs_reference_in_code_exists() -> None:
    missing = []
    for path in code_files():
        for reference in CODE_REFERENCE.findall(path.read_text(errors="replace")):
            if (problem := target_problem(reference, ROOT / "README.md")) is not None:
                missing.append(f"{path.relative_to(ROOT)}: {reference}: {problem}")
    assert missing == []


def test_no_file_points_at_the_design_notes_outside_the_repository() -> None:
    outside = "DESIGN" + ".md"  # spelled apart so this test does not find itself
    mentions = [
        str(path.relative_to(ROOT))
        for path in code_files()
        if outside in path.read_text(errors="replace")
    ]
    assert mentions == []


def test_the_readme_stays_short() -> None:
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines < README_MAX_LINES, f"README.md has {lines} lines; move details into docs/"
