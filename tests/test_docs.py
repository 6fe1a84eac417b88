"""The user documentation holds together: every relative link and anchor resolves, README stays a front page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([REPO_ROOT / "README.md", REPO_ROOT / "CONTRIBUTING.md", *(REPO_ROOT / "docs").glob("*.md")])
README_MAX_LINES = 300
README_TEST_COMMAND = "python -m pytest -q -rs"  # .ci/run calls the README's test command

_FENCE = re.compile(r"^ *(```|~~~).*?^ *\1[^\n]*$", re.S | re.M)
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
# [text](target) and ![alt](target), with an optional "title"; the text may span lines.
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$", re.M)


def _without_code(text: str) -> str:
    """The page without fenced code blocks, and each inline code span replaced by a word (links in code are text)."""
    return _CODE_SPAN.sub("code", _FENCE.sub("", text))


def heading_slug(heading: str) -> str:
    """GitHub's anchor of a heading: its text, lowercased, without punctuation, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link or image: its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # keeps letters, digits, underscores, hyphens and spaces
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a Markdown page; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for match in _HEADING.finditer(_FENCE.sub("", page.read_text())):
        slug = heading_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def relative_links(page: Path) -> list[str]:
    """The page's link targets that point into the repository (no URLs, no mail addresses)."""
    targets = _LINK.findall(_without_code(page.read_text()))
    return [target for target in targets if target and not re.match(r"(https?:|mailto:)", target, re.I)]


def broken_links(page: Path, root: Path = REPO_ROOT) -> list[str]:
    """What is wrong with each relative link of the page, for a repository at `root`."""
    broken = []
    for target in relative_links(page):
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.is_relative_to(root):
            broken.append(f"{target}: outside the repository")
        elif not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix != ".md":
            broken.append(f"{target}: an anchor into a file that is not Markdown")
        elif anchor and anchor not in anchors(destination):
            broken.append(f"{target}: no heading with that anchor in {destination.relative_to(root)}")
    return broken


def test_the_pages_are_found():
    names = {str(page.relative_to(REPO_ROOT)) for page in PAGES}
    assert {"README.md", "CONTRIBUTING.md", "docs/commands.md", "docs/config-reference.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO_ROOT)))
def test_every_relative_link_resolves(page):
    assert not broken_links(page), f"{page.relative_to(REPO_ROOT)}: " + "; ".join(broken_links(page))


def test_readme_is_a_front_page():
    lines = (REPO_ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move depth into docs/"


def test_readme_keeps_the_test_command_ci_runs():
    assert README_TEST_COMMAND in (REPO_ROOT / "README.md").read_text()
    assert README_TEST_COMMAND in (REPO_ROOT / ".ci" / "run").read_text()


def test_the_link_checker_follows_githubs_anchor_rules(tmp_path):
    target = tmp_path / "target.md"
    target.write_text("# Commands\n\n## `mnist-zoo serve` under load\n\n## Kill -9\n\n## Notes\n\n## Notes\n\n"
                      "```console\n# not a heading\n```\n")
    assert anchors(target) == {"commands", "mnist-zoo-serve-under-load", "kill--9", "notes", "notes-1"}
    page = tmp_path / "page.md"
    page.write_text("[a](target.md#kill--9) [b](#here) [c](https://example.org/x#y) `[d](nowhere.md)`\n\n"
                    "```\n[e](nowhere.md)\n```\n\n## Here\n\n[f](target.md#notes-2) ![g](missing.png)\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "up.md").write_text("[h](../../elsewhere.md) [i](../page.md#here)\n")
    assert broken_links(page, tmp_path) == ["target.md#notes-2: no heading with that anchor in target.md",
                                            "missing.png: no such file"]
    assert broken_links(tmp_path / "docs" / "up.md", tmp_path) == ["../../elsewhere.md: outside the repository"]
