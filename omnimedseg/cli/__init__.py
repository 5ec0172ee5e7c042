"""The ``omnimedseg`` command line.

One module per subcommand, imported only when that command runs (fast start-up).
Every :class:`~omnimedseg.errors.OmnimedsegError`, every ``OSError`` (permission denied,
disk full, read-only folder) and any other library error reaching this layer is printed as
one line naming the file and the cause, without a traceback (``--debug`` shows it).
Exit codes: 0 ok, 1 failure, 2 usage error.

Conventions shared by every command: the global options ``-q``, ``-v``, ``--json``, ``--root``,
``--registry`` and ``--debug`` may come before or after the sub-command
(:func:`hoist_global_options`); ``--json`` makes the output JSON, errors included
(``{"error": ..., "kind": ..., "exit_code": ...}`` on stdout); ``-j/--jobs`` is the one spelling
of "how many in parallel" (:func:`omnimedseg.cli.options.jobs_option`).

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
    json: bool = False
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
        _take_global_json(command)
        return command


def _take_global_json(command: click.Command) -> None:
    """A command's ``--json`` output is on when the global ``--json`` is (it may be given anywhere)."""
    if getattr(command, "_takes_global_json", False):
        return
    command._takes_global_json = True
    for sub in getattr(command, "commands", {}).values():
        _take_global_json(sub)
    if command.callback is None or not any(p.name == "as_json" for p in command.params):
        return
    callback = command.callback

    @functools.wraps(callback)
    def with_global_json(*args, **kwargs):
        env = click.get_current_context().find_object(Env)
        if env is not None and env.json:
            kwargs["as_json"] = True
        return callback(*args, **kwargs)
    command.callback = with_global_json


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
@click.option("-v", "--verbose", count=True, help="More output (detail every command adds).")
@click.option("--json", "as_json", is_flag=True, help="JSON output, errors included.")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx, root, registry_dirs, quiet, verbose, as_json, debug):
    """Standardized, traceable medical image segmentation datasets and benchmarks.

    Global options (-q, -v, --json, --root, --registry, --debug) go before or after the command."""
    ctx.obj = Env(root=root, registry_dirs=tuple(registry_dirs), verbosity=verbose - quiet, debug=debug,
                  json=as_json)


pass_env = click.make_pass_decorator(Env)


# global options: flags, and options taking one value (``--root DIR`` or ``--root=DIR``)
GLOBAL_FLAGS = frozenset({"-q", "--quiet", "-v", "--verbose", "--json", "--debug"})
GLOBAL_VALUED = frozenset({"--root", "--registry"})


def _is_global_flag(token: str) -> bool:
    return token in GLOBAL_FLAGS or (len(token) > 1 and token[0] == "-" and set(token[1:]) <= {"q", "v"})


def hoist_global_options(args: list[str], own_options=lambda command: frozenset()) -> list[str]:
    """Move global options given after the sub-command in front of it (``omnimedseg convert hc18 -v
    --root D`` == ``omnimedseg -v --root D convert hc18``); everything after ``--`` stays where it is, and
    so does an option the sub-command defines itself (``own_options(name)``, e.g. ``demo --root``)."""
    front, rest, i, own = [], [], 0, frozenset()
    while i < len(args) and args[i].startswith("-"):  # options already before the command
        take = 2 if args[i] in GLOBAL_VALUED else 1
        front += args[i:i + take]
        i += take
    command_seen = False
    while i < len(args):
        token = args[i]
        if token == "--":
            rest += args[i:]
            break
        name = token.split("=", 1)[0]
        if not command_seen or name in own:
            rest.append(token)
            if not command_seen:
                own = frozenset(own_options(token))
            command_seen = True
        elif _is_global_flag(token):
            front.append(token)
        elif token in GLOBAL_VALUED and i + 1 < len(args):
            front += [token, args[i + 1]]
            i += 1
        elif name in GLOBAL_VALUED:
            front.append(token)
        else:
            rest.append(token)
        i += 1
    return front + rest


def _own_options(name: str) -> frozenset[str]:
    """Option spellings the sub-command ``name`` defines itself (empty for an unknown name)."""
    try:
        command = cli.get_command(None, name)
    except Exception:  # noqa: BLE001 - a broken plugin command is reported when it runs, not here
        return frozenset()
    return frozenset(o for p in getattr(command, "params", []) for o in (*p.opts, *p.secondary_opts))


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning every error into one line (JSON with ``--json``) and an exit code."""
    args = hoist_global_options(list(sys.argv[1:] if argv is None else argv), _own_options)
    ours = args[:args.index("--")] if "--" in args else args
    debug, as_json = "--debug" in ours, "--json" in ours
    try:
        status = cli.main(args=args, prog_name="omnimedseg", standalone_mode=False)
    except click.exceptions.Abort as exc:  # click turns Ctrl-C into Abort (its cause) before we see it
        if isinstance(exc.__cause__, KeyboardInterrupt):
            _fail("Interrupted; partial files were kept and a rerun resumes.", "KeyboardInterrupt", 130, as_json)
        _fail("Aborted.", "Abort", 1, as_json)
    except click.ClickException as exc:  # usage errors: click's own message, exit 2
        if not as_json:
            exc.show()
            sys.exit(exc.exit_code)
        _fail(exc.format_message(), "UsageError", exc.exit_code, as_json)
    except KeyboardInterrupt:
        _fail("Interrupted; partial files were kept and a rerun resumes.", "KeyboardInterrupt", 130, as_json)
    except Exception as exc:  # noqa: BLE001 - the layer boundary: nothing reaches the user as a traceback
        if debug:
            raise
        _fail(f"Error: {error_line(exc)}", type(exc).__name__, 2 if isinstance(exc, UsageError) else 1, as_json)
    sys.exit(status if isinstance(status, int) else 0)


def _fail(line: str, kind: str, code: int, as_json: bool) -> None:
    """Report an error as one line on stderr, or as one JSON object on stdout with ``--json``; exit ``code``."""
    if as_json:
        import json

        message = line[len("Error: "):] if line.startswith("Error: ") else line
        click.echo(json.dumps({"error": _one_line(message), "kind": kind, "exit_code": code}))
    else:
        click.echo(line, err=True)
    sys.exit(code)


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
