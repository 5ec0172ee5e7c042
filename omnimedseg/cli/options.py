"""Options spelled the same in every command (see ``docs/cli.md``-style conventions in the CLI docstring)."""

from __future__ import annotations

import functools

import click


def jobs_option(default: int | None, help: str, minimum: int = 1, old: str | None = None):
    """``-j/--jobs N``, the one spelling of "how many in parallel"; ``old`` (e.g. ``--workers``) stays
    accepted as a hidden alias so existing scripts keep working. The command receives ``jobs`` (None for
    a ``default`` of None: the command's own choice, which ``help`` then explains)."""
    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, jobs_alias=None, **kwargs):
            if jobs_alias is not None:
                kwargs["jobs"] = jobs_alias
            return function(*args, **kwargs)

        wrapper = click.option("-j", "--jobs", "jobs", default=default, show_default=default is not None,
                               type=click.IntRange(minimum), help=help)(wrapper)
        if old:
            wrapper = click.option(old, "jobs_alias", type=click.IntRange(minimum), default=None, hidden=True,
                                   help="Old spelling of --jobs.")(wrapper)
        return wrapper
    return decorate
