"""Writes docs/config-reference.md from the config classes (run after changing them).

    python scripts/update_config_reference.py

The page is the text `mnist-zoo config reference` prints, under a title; tests/test_cli.py checks
that it is current.
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # this checkout's mnist_zoo, not an installed one

from mnist_zoo.config.reference import render_reference  # noqa: E402

PAGE = REPO_ROOT / "docs" / "config-reference.md"
START, END = "<!-- config-reference:start -->\n", "<!-- config-reference:end -->\n"
HEADER = ("# Config reference\n\n"
          "Generated from the config classes by `python scripts/update_config_reference.py` (the test suite "
          "checks that it is current); `mnist-zoo config reference` prints the same. How configs, `--set` and "
          "the bundled configs work: [configs.md](configs.md).\n\n")


def page() -> str:
    """The whole page: the title and the generated reference between its markers."""
    return HEADER + START + render_reference().strip("\n") + "\n" + END


def main() -> None:
    PAGE.write_text(page())
    print(PAGE.relative_to(REPO_ROOT))


if __name__ == "__main__":
    main()
