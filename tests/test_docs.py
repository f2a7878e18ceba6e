"""The README and docs/ link to each other by relative paths and #anchors: every one must resolve,
so that moving a section (as the measurements moved from the README into docs/) breaks no link."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _prose(text: str) -> str:
    """The text without fenced code blocks, where '# ...' lines are comments, not headings."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def anchors(path: Path) -> set[str]:
    """The #anchors GitHub gives the headings of a Markdown file (a repeated one gets -1, -2, ...)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for title in re.findall(r"^#{1,6}\s+(.+)$", _prose(path.read_text()), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", re.sub(r"[`*]", "", title).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def broken_links(doc: Path) -> list[str]:
    problems = []
    for target in re.findall(r"\]\(([^)\s]+)\)", _prose(doc.read_text())):
        if re.match(r"^[a-z]+:", target):  # https://, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path) if path else doc
        if not dest.exists():
            problems.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{target}: no such heading")
    return problems


def test_every_relative_link_and_anchor_resolves():
    problems = {doc.relative_to(ROOT).as_posix(): broken_links(doc) for doc in DOCS}
    assert not {doc: p for doc, p in problems.items() if p}


def test_the_checker_sees_a_broken_anchor(tmp_path):
    doc = tmp_path / "a.md"
    doc.write_text("# Two passes (`coarse_px`)\n\n[ok](#two-passes-coarse_px) [gone](#tilted-faces) [file](missing.md)\n")
    assert broken_links(doc) == ["#tilted-faces: no such heading", "missing.md: no such file"]
