"""The ``synthmed`` command line: thin wrappers that parse, call one library function, and print
where the results went. User errors are one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import errno
import sys

import typer
from rich.console import Console

from synthmed.errors import SynthmedError

app = typer.Typer(
    name="synthmed",
    help="Synthetic medical images: import data, train generators (GAN, diffusion, VAE, "
    "pix2pix), generate, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help texts quote user syntax (pkg.module:factory:, DIR[:split]); rich would turn
    # ':factory:' into an emoji and '[...]' into markup, so help is printed as written.
    rich_markup_mode=None,
)
# A full disk, quota or read-only file system met by a write without its own handler (a log line,
# metrics.jsonl) still ends in one line naming the file (docs/reliability.md).
_DISK_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EROFS}
console = Console()
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _version_callback(value: bool) -> None:
    if value:
        from synthmed import __version__

        console.print(f"synthmed {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """synthmed: generate synthetic medical images and prove whether they are any good."""


def _register_commands() -> None:
    from synthmed.cli import data as _data  # noqa: F401  (registers `synthmed data ...`)

    for optional in ("train", "generate", "utility", "evaluate", "run"):
        try:
            __import__(f"synthmed.cli.{optional}")
        except ModuleNotFoundError as e:
            if e.name != f"synthmed.cli.{optional}":
                raise


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    _register_commands()
    try:
        app(args=argv, prog_name="synthmed")
    except SynthmedError as e:
        err_console.print(f"error: {e}", markup=False)
        sys.exit(e.exit_code)
    except OSError as e:
        if e.errno not in _DISK_ERRNOS:
            raise
        from synthmed.fileio import disk_error

        err_console.print(f"error: {disk_error(e.filename or '.', e)}", markup=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted", markup=False)
        sys.exit(130)
