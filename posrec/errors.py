"""The one exception type the CLI turns into a one-line message and exit code 2."""


class PosrecError(Exception):
    """Bad input or an unusable environment: the message is shown to the user as is."""
