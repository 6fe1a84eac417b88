"""Entry point for `python -m mnist_zoo`."""

from mnist_zoo.cli import main

if __name__ == "__main__":
    main()
