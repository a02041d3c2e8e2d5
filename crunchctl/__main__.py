"""``python -m crunchctl``: same as the ``crunchctl`` entry point."""

from crunchctl.cli import main

if __name__ == "__main__":
    main()
