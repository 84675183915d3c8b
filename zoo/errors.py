"""The errors users see: a ZooError becomes a single line on stderr and exit code 2 (a ConfigError one line per
problem); a RunStopped its own line and code; an ExportMismatch (an export that does not compute what the
checkpoint does) one line and exit code 1."""

WORKER_TRACEBACK = "\nOriginal Traceback"  # torch's DataLoader re-raises a worker's error with this around it


class ZooError(Exception):
    """A problem with what the user asked for (a name, a size, a file), with the fix in the message.

    Raised in a DataLoader worker, it comes back as ZooError("Caught ZooError in DataLoader worker process 0.
    Original Traceback ...: zoo.errors.ZooError: <message>"); str() gives the message alone again.
    """

    def __str__(self) -> str:
        text = super().__str__()
        if WORKER_TRACEBACK in text:
            last = text.rstrip().splitlines()[-1]
            return last.removeprefix(f"{__name__}.{type(self).__name__}: ")
        return text

    def lines(self) -> list[str]:
        """What the CLI prints, one `error: ` line each."""
        return [str(self)]


class ConfigError(ZooError):
    """A config with problems, each naming where it was written and its key (`my.yaml: optimizer.lr: ...`,
    `--set train.epochs: ...`): the CLI prints one line per problem; str() is them all on one line, joined by '; '."""

    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems

    def lines(self) -> list[str]:
        return list(self.problems)


class RunStopped(Exception):
    """A run that stopped early (a signal, a non-finite loss, a lost process of the run): one line on stderr and its
    own exit code. Under torchrun rank 0 prints it, or with `every_rank` each machine's first process (LOCAL_RANK 0:
    rank 0 may be the one gone)."""

    def __init__(self, message: str, exit_code: int, every_rank: bool = False) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.every_rank = every_rank


class ExportMismatch(ZooError):
    """An exported file whose outputs differ from eager PyTorch's beyond the tolerance: removed, exit code 1 (the
    input was fine; the exporter or the runtime is not)."""

    exit_code = 1
