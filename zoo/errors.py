"""The one error type users see: the CLI turns it into a single line on stderr and exit code 2."""


class ZooError(Exception):
    """A problem with what the user asked for (a name, a size, a file), with the fix in the message."""


class RunStopped(Exception):
    """A run that stopped early on purpose (a signal, a non-finite loss): one line on stderr and its own exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
