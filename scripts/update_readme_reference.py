"""Rewrites the config reference in README.md from the config classes (run after changing them)."""

from pathlib import Path

from mnist_zoo.config_reference import render_reference

START, END = "<!-- config-reference:start -->\n", "<!-- config-reference:end -->"


def main() -> None:
    readme = Path(__file__).resolve().parent.parent / "README.md"
    text = readme.read_text()
    before, rest = text.split(START)
    _, after = rest.split(END)
    readme.write_text(before + START + render_reference() + END + after)


if __name__ == "__main__":
    main()
