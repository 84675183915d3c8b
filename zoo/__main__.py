"""`python -m zoo ...` (and `torchrun -m zoo ...`) run the same app as the `zoo` command."""

from zoo.cli import run

if __name__ == "__main__":
    run()
