"""`python cli.py ...` is `zoo ...`, for a checkout that has not been installed."""

from zoo.cli import run

if __name__ == "__main__":
    run()
