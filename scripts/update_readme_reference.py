"""Rewrites the config reference in README.md from the config classes (run after changing them)."""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # this checkout's mnist_zoo, not an installed one

from mnist_zoo.config.reference import render_reference  # noqa: E402

START, END = "<!-- config-reference:start -->\n", "<!-- config-reference:end -->"


def main() -> None:
    readme = REPO_ROOT / "README.md"
    text = readme.read_text()
    before, rest = text.split(START)
    _, after = rest.split(END)
    readme.write_text(before + START + render_reference() + END + after)


if __name__ == "__main__":
    main()
