"""The one exception type the package raises for bad user input."""


class WavTokenizerError(ValueError):
    """Bad input: a readable message saying what was wrong and what is accepted.

    The CLI prints it as one line (no traceback) and exits non-zero.
    """


def run_script(main) -> None:
    """Run a script's `main()` and exit with its status; a `WavTokenizerError` becomes one line on stderr
    (`SCRIPT: error: ...`) and exit status 2, as in the `wavtokenizer` CLI."""
    import sys
    from pathlib import Path

    try:
        status = main()
    except WavTokenizerError as err:
        print(f"{Path(sys.argv[0]).stem}: error: {err}", file=sys.stderr)
        status = 2
    sys.exit(status or 0)
