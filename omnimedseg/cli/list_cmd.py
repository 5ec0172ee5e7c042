"""``omnimedseg list``: browse the registry."""

from __future__ import annotations

import json

import click

from omnimedseg.cli import Env, pass_env


def card_summary(card) -> dict:
    return {"id": card.id, "title": card.title, "modality": card.modality, "dimensionality": card.dimensionality,
            "classes": card.class_names, "license": card.license.spdx, "license_status": card.license.status,
            "license_source": card.license.source, "verified_on": card.verified_on,
            "redistribution": card.license.redistributable, "platform": card.source.platform,
            "record": card.source.record, "access": card.access.kind, "card": str(card.path)}


@click.command("list")
@click.option("--modality", help="Only this modality (e.g. CT, MRI, ultrasound).")
@click.option("--dimension", "dimensionality", type=click.Choice(["2", "3"]), help="Only 2D or 3D datasets.")
@click.option("--license", "licence", help="Only this SPDX licence id (e.g. CC-BY-4.0).")
@click.option("--platform", help="Only this platform (e.g. zenodo).")
@click.option("--plugins", is_flag=True, help="List converter and downloader plugins and where they come from.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_env
def list_command(env: Env, modality, dimensionality, licence, platform, plugins, as_json) -> None:
    """List registered datasets (or plugins), optionally filtered."""
    if plugins:
        from omnimedseg.plugins import KINDS, available_plugins

        found = {kind: available_plugins(kind) for kind in KINDS}
        if as_json:
            click.echo(json.dumps(found, indent=2))
        else:
            for kind, names in found.items():
                for name, origin in sorted(names.items()):
                    click.echo(f"{kind[:-1]:<10} {name:<24} {origin}")
        return
    registry = env.registry()
    for error in registry.broken.values():  # set aside: it breaks only its own dataset, but its author must know
        click.echo(f"not listed: {error}", err=True)
    cards = registry.select(modality=modality, licence=licence, platform=platform,
                            dimensionality=int(dimensionality) if dimensionality else None)
    if as_json:
        click.echo(json.dumps([card_summary(c) for c in cards], indent=2))
        return
    rows = [("ID", "MODALITY", "DIM", "PLATFORM", "LICENCE", "LICENCE STATUS", "VERIFIED ON", "CLASSES")]
    rows += [(c.id, c.modality, f"{c.dimensionality}D", c.source.platform,
              c.license.spdx + ("" if c.license.redistributable else "*"), c.license.status, c.verified_on,
              str(len(c.classes))) for c in cards]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    if any(not c.license.redistributable for c in cards):
        env.echo("* redistribution of converted data not allowed")
    if any(c.license.needs_acceptance for c in cards):
        env.echo("download/convert of a dataset whose licence status is not verified-open needs --accept-licence")
    env.echo(f"{len(cards)} dataset(s)", level=1)
