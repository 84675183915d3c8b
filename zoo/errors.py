"""The one error type users see: the CLI turns it into a single line on stderr and exit code 2."""


class ZooError(Exception):
    """A problem with what the user asked for (a name, a size, a file), with the fix in the message."""
