"""The one exception type that lsalsa raises for bad input."""


class LsalsaError(ValueError):
    """Bad input to an lsalsa function: the message names the argument, what was expected and
    what came."""
