"""The ``omnimedseg`` command line.

One module per subcommand, imported only when that command runs (fast start-up).
Every :class:`~omnimedseg.errors.OmnimedsegError`, every ``OSError`` (permission denied,
disk full, read-only folder) and any other library error reaching this layer is printed as
one line naming the file and the cause, without a traceback (``--debug`` shows it).
Exit codes: 0 ok, 1 failure, 2 usage error.

Commands that write a dataset's folders (:data:`DATASET_WRITERS`) run under its lock
(:func:`omnimedseg.files.dataset_lock`): a second one waits, saying so, or with
``--no-wait`` refuses in one line.
"""

from __future__ import annotations

import errno
import functools
import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click

from omnimedseg import __version__
from omnimedseg.errors import OmnimedsegError, UsageError

# command name -> "module:attribute"; adding a command is adding one line and one module.
COMMANDS = {
    "benchmark": "omnimedseg.cli.benchmark:benchmark",
    "list": "omnimedseg.cli.list_cmd:list_command",
    "info": "omnimedseg.cli.info:info",
    "download": "omnimedseg.cli.download:download",
    "convert": "omnimedseg.cli.convert:convert",
    "validate": "omnimedseg.cli.validate:validate",
    "new": "omnimedseg.cli.new:new",
    "formats": "omnimedseg.cli.formats:formats",
    "verify": "omnimedseg.cli.verify:verify",
    "registry": "omnimedseg.cli.registry_cmd:registry",
    "emulate": "omnimedseg.cli.emulate:emulate",
    "export": "omnimedseg.cli.export:export",
    "qa": "omnimedseg.cli.qa:qa",
    "train": "omnimedseg.cli.train:train",
    "evaluate": "omnimedseg.cli.evaluate:evaluate",
    "demo": "omnimedseg.cli.demo:demo",
}

# commands whose DATASET_ID argument names a dataset whose downloads/, raw/ or converted/ they write
DATASET_WRITERS = frozenset({"download", "convert", "verify"})


@dataclass
class Env:
    """What every command needs: where data lives, which cards exist, how loud to be."""

    root: Path | None = None
    registry_dirs: tuple[str, ...] = ()
    verbosity: int = 0
    debug: bool = False
    _registry: object = field(default=None, repr=False)

    def registry(self):
        if self._registry is None:
            from omnimedseg.registry import load_registry

            self._registry = load_registry(self.registry_dirs)
        return self._registry

    def card(self, dataset_id: str):
        return self.registry().get(dataset_id)

    @property
    def progress(self):
        from omnimedseg.progress import Progress

        return Progress(enabled=self.verbosity >= 0)

    def echo(self, message: str, level: int = 0) -> None:
        """Print ``message`` when the verbosity allows (``-q`` hides level 0, ``-v`` shows level 1)."""
        if self.verbosity >= level:
            click.echo(message)


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(name for name, target in COMMANDS.items()
                      if importlib.util.find_spec(target.split(":")[0]) is not None)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        command = getattr(importlib.import_module(module), attr)
        if name in DATASET_WRITERS and not getattr(command, "_holds_dataset_lock", False):
            _hold_dataset_lock(command)
        return command


def _hold_dataset_lock(command: click.Command) -> None:
    """Run ``command`` under its dataset's lock and give it ``--no-wait`` (done once per command object)."""
    command.params.append(click.Option(["--no-wait"], is_flag=True,
                                       help="Refuse at once when another omnimedseg process works on this "
                                            "dataset (default: wait for it)."))
    callback = command.callback

    @functools.wraps(callback)
    def locked(*args, no_wait: bool = False, **kwargs):
        from omnimedseg.files import dataset_lock

        env = click.get_current_context().find_object(Env)
        dataset_id = env.card(kwargs["dataset_id"]).id  # an unknown id fails here, before any lock file exists
        with dataset_lock(dataset_id, env.root, wait=not no_wait, say=lambda m: click.echo(m, err=True)):
            return callback(*args, **kwargs)
    command.callback = locked
    command._holds_dataset_lock = True


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="omnimedseg")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), envvar="OMNIMEDSEG_HOME",
              help="Data root (default: $OMNIMEDSEG_HOME, else the per-user cache directory).")
@click.option("--registry", "registry_dirs", multiple=True, type=click.Path(file_okay=False),
              help="Extra folder of <id>.toml cards (repeatable; also $OMNIMEDSEG_REGISTRY_PATH).")
@click.option("-q", "--quiet", count=True, help="Less output (no progress).")
@click.option("-v", "--verbose", count=True, help="More output.")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx, root, registry_dirs, quiet, verbose, debug):
    """Standardized, traceable medical image segmentation datasets and benchmarks."""
    ctx.obj = Env(root=root, registry_dirs=tuple(registry_dirs), verbosity=verbose - quiet, debug=debug)


pass_env = click.make_pass_decorator(Env)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning every error into one line and an exit code."""
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        status = cli.main(args=argv, prog_name="omnimedseg", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:  # usage errors: click's own message, exit 2
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted; partial files were kept and a rerun resumes.", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the layer boundary: nothing reaches the user as a traceback
        if debug:
            raise
        click.echo(f"Error: {error_line(exc)}", err=True)
        sys.exit(2 if isinstance(exc, UsageError) else 1)
    sys.exit(status if isinstance(status, int) else 0)


def error_line(exc: BaseException) -> str:
    """One line for any error: our own message, or the file and cause of an OS or library error."""
    if isinstance(exc, OmnimedsegError):
        return str(exc).strip() if getattr(exc, "keep_lines", False) else _one_line(str(exc))
    if isinstance(exc, OSError):
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        cause = exc.strerror or _one_line(str(exc)) or type(exc).__name__
        hint = _OS_HINTS.get(exc.errno, "")
        return _one_line(f"{where + ': ' if where else ''}{cause}{hint}")
    message = _one_line(str(exc)) or "no message"
    return f"{type(exc).__name__}: {message} (unexpected; rerun with --debug for details and report it)"


_OS_HINTS = {
    errno.EACCES: "; check the folder's permissions or choose another --root",
    errno.EPERM: "; check the folder's permissions or choose another --root",
    errno.EROFS: "; the folder is read-only: choose another --root",
    errno.ENOSPC: "; the disk is full: free space (or choose another --root), then rerun the same command",
    errno.EDQUOT: "; the disk quota is exhausted: free space, then rerun the same command",
}


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
