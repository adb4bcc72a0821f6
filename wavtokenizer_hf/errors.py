"""The one exception type the package raises for bad user input."""


class WavTokenizerError(ValueError):
    """Bad input: a readable message saying what was wrong and what is accepted.

    The CLI prints it as one line (no traceback) and exits non-zero.
    """
