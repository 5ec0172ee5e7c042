"""One exception root for everything the user can cause or fix.

The CLI prints any :class:`OmnimedsegError` as a single line (no traceback unless
``--debug``). Each subclass also inherits the matching builtin so library callers
can catch ``FileNotFoundError`` or ``ValueError`` as usual. Messages say what
failed, what was expected, what was found and the next command to run.
"""

from __future__ import annotations


class OmnimedsegError(Exception):
    """Root of all omnimedseg errors."""


class UsageError(OmnimedsegError, ValueError):
    """The command line or API was called wrongly (CLI exit code 2)."""


class RegistryError(OmnimedsegError, ValueError):
    """A registry card is missing, invalid or defined twice."""


class DatasetNotFoundError(OmnimedsegError, FileNotFoundError):
    """Raw or converted data is not where it should be."""


class ChecksumMismatchError(OmnimedsegError, ValueError):
    """A file's size or hash differs from the pinned value."""


class DownloadError(OmnimedsegError, OSError):
    """A file could not be fetched."""


class ConversionError(OmnimedsegError, ValueError):
    """Raw input could not be turned into the standard output."""


class ValidationError(OmnimedsegError, ValueError):
    """A converted dataset breaks the output contract (docs/format.md)."""


class PluginError(OmnimedsegError, ImportError):
    """A converter or downloader plugin could not be found or loaded."""


class LicenceNotAcceptedError(OmnimedsegError, PermissionError):
    """A dataset whose licence is not verified-open was used without ``--accept-licence``.

    Its message is a short block (licence, status, source, the command to rerun) that the
    CLI prints as it is: the one error whose lines are kept apart.
    """

    keep_lines = True


class DatasetBusyError(OmnimedsegError):
    """Another process is writing the same dataset and the caller asked not to wait (``--no-wait``)."""


def did_you_mean(value: str, choices, what: str) -> str:
    """`` did you mean 'x'?`` (closest of ``choices`` by difflib, case-insensitive), else the known ``what``."""
    import difflib

    choices = sorted({str(c) for c in choices}, key=str.lower)
    by_lower = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(str(value).lower(), list(by_lower), n=3, cutoff=0.6)
    if close:
        return " did you mean " + " or ".join(repr(by_lower[c]) for c in close) + "?"
    shown = ", ".join(choices[:30]) + (f", ... ({len(choices)} in all)" if len(choices) > 30 else "")
    return f" known {what}: {shown or '(none)'}."
