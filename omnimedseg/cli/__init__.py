"""The ``omnimedseg`` command line.

One module per subcommand, imported only when that command runs (fast start-up).
Every :class:`~omnimedseg.errors.OmnimedsegError` is printed as one line without a
traceback (``--debug`` shows it). Exit codes: 0 ok, 1 failure, 2 usage error.
"""

from __future__ import annotations

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
        return getattr(importlib.import_module(module), attr)


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
    """Entry point: run the CLI, turning our errors into one line and an exit code."""
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        status = cli.main(args=argv, prog_name="omnimedseg", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:  # usage errors: click's own message, exit 2
        exc.show()
        sys.exit(exc.exit_code)
    except OmnimedsegError as exc:
        if debug:
            raise
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2 if isinstance(exc, UsageError) else 1)
    except KeyboardInterrupt:
        click.echo("Interrupted; partial files were kept and a rerun resumes.", err=True)
        sys.exit(130)
    sys.exit(status if isinstance(status, int) else 0)
