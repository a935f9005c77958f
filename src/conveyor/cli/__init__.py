"""The ``conveyor`` command line: a thin shell over the Python API.

Each command parses its arguments, calls one public function and renders the result.
Errors become exit codes in exactly one place, :func:`main`: a :class:`ConveyorError`
prints one line (``error: ...``) and exits with its code; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

from conveyor import __version__
from conveyor.cli._build import register as _register_build
from conveyor.cli._check import register as _register_check
from conveyor.cli._ci import register as _register_ci
from conveyor.cli._data import register as _register_data
from conveyor.cli._deliver import register as _register_deliver
from conveyor.cli._import_dvc import register as _register_import_dvc
from conveyor.cli._metrics import register as _register_metrics
from conveyor.cli._model import register as _register_model
from conveyor.cli._pipeline import register as _register_pipeline
from conveyor.cli._remote import register as _register_remote
from conveyor.cli._runs import register as _register_runs
from conveyor.cli._serve import register as _register_serve
from conveyor.cli._stats import register as _register_stats
from conveyor.cli._ui import register as _register_ui
from conveyor.cli._workspace import register as _register_workspace


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="conveyor")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option(
    "-C",
    "directory",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="Run as if started in DIR.",
)
def cli(debug: bool, directory: str | None) -> None:
    """Conveyor: continuous delivery for machine learning.

    Version data and models next to git, reproduce pipelines, test models and ship them.
    """
    if directory:
        try:
            os.chdir(directory)
        except OSError as exc:
            raise click.UsageError(f"-C {directory}: {exc.strerror}") from exc


_register_workspace(cli)
_register_data(cli)
_register_pipeline(cli)
_register_metrics(cli)
_register_runs(cli)
_register_import_dvc(cli)
_register_check(cli)
_register_remote(cli)
_register_model(cli)
_register_serve(cli)
_register_build(cli)
_register_deliver(cli)
_register_stats(cli)
_register_ci(cli)
_register_ui(cli)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code; the one place errors become exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("CONVEYOR_DEBUG") == "1"
    from conveyor.errors import ConveyorError

    try:
        code = cli.main(args=args, prog_name="conveyor", standalone_mode=False)
    except ConveyorError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        click.echo(f"error: {exc.format_message()}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except BrokenPipeError:
        return 141
    except SystemExit as exc:
        # click turns a closed stdout (EPIPE) into exit 1 after swapping in its pacifying wrapper
        if exc.code == 1 and type(sys.stdout).__name__.endswith("PacifyFlushWrapper"):
            return 141
        raise
    except OSError as exc:
        if debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"error: {where}{exc.strerror or exc}; fix the cause and run the command again", err=True)
        return 74
    return code if isinstance(code, int) else 0  # ctx.exit(n) comes back as n
