"""``omnimedseg emulate <platform> <folder>``: serve a folder of files as a fake data platform.

For converter authors and demos without the internet (or without hammering the real
service): the emulator speaks the platform's real endpoints and JSON shapes, so the
unchanged ``registry lock`` / ``download`` run against it through ``OMNIMEDSEG_<P>_URL``.
``--fault`` injects the same failures the test-suite uses.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import click

from omnimedseg.cli import Env, pass_env
from omnimedseg.errors import UsageError

PLATFORMS = ("zenodo", "figshare", "dataverse", "github", "http", "s3", "mendeley", "tcia", "osf", "kaggle", "idc")


def parse_fault(text: str) -> tuple[str, dict]:
    """``drop:after=100000,times=2`` -> ``("drop", {"after": "100000", "times": 2})``."""
    kind, _, rest = text.partition(":")
    params: dict = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--fault {text!r}: expected KIND[:key=value,...], e.g. drop:after=100000,times=2")
        params[key.strip()] = int(value) if key.strip() == "times" else value.strip()
    return kind.strip(), params


@click.command()
@click.argument("platform", type=click.Choice(PLATFORMS))
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--port", default=0, show_default=True, help="API port on 127.0.0.1 (0: any free port).")
@click.option("--fault", "faults", multiple=True, metavar="KIND[:k=v,...]",
              help="Inject a fault, e.g. 'status:code=503,times=2' or 'drop:after=100000' (repeatable).")
@click.option("--redirect/--no-redirect", default=None,
              help="Serve file bytes via a signed 'storage' host (the platform's default if not given).")
@pass_env
def emulate(env: Env, platform: str, folder: Path, port: int, faults: tuple[str, ...], redirect: bool | None) -> None:
    """Serve FOLDER's files as one PLATFORM record on loopback until Ctrl-C."""
    from omnimedseg.downloaders.emulators import EMULATORS
    from omnimedseg.downloaders.emulators._server import FAULTS

    kwargs = {} if redirect is None else {"redirect_to_storage": redirect}
    emu = EMULATORS[platform](**kwargs)
    for text in faults:
        kind, params = parse_fault(text)
        if kind not in FAULTS:
            raise UsageError(f"--fault {text!r}: unknown kind {kind!r}; expected one of {', '.join(FAULTS)}")
        emu.inject(kind, times=params.pop("times", -1), scope=params.pop("scope", "content"), **params)
    try:
        emu.start(port=port)
    except OSError as exc:
        raise UsageError(f"--port {port}: cannot listen on 127.0.0.1:{port} ({exc.strerror}); "
                         f"choose another port or --port 0") from None
    try:
        source = emu.add_folder(folder.resolve())
        count = sum(1 for p in folder.rglob("*") if p.is_file())
        lines = [f"{platform} emulator serving {count} files from {folder} at {emu.url}"]
        lines += [f"export {k}={v}" for k, v in emu.env.items()]
        lines += ["[source]"] + [f'{k} = "{v}"' for k, v in source.items() if v is not None]
        if source.get("record") is None and getattr(emu, "rows", None) is not None:  # idc: the card's collection
            collections = sorted({r["collection_id"] for r in emu.rows})
            lines.append(f"# record = a collection_id of the served index ({', '.join(collections)}), keep the "
                         f"card's version")
        lines.append("next: with the exports above, run: omnimedseg registry lock <id> --write && "
                     "omnimedseg download <id>   (Ctrl-C stops the emulator)")
        click.echo("\n".join(lines))
        sys.stdout.flush()
        threading.Event().wait()  # serve until interrupted
    except KeyboardInterrupt:
        env.echo(f"{platform} emulator stopped after {len(emu.requests)} requests")
    finally:
        emu.stop()
