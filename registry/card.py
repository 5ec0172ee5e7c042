"""The dataset card: one validated TOML file per dataset (``registry/<id>.toml``).

A card is data, not code: everything the tool needs to know about a dataset that is
not a rule for reading its files lives here (platform record, pinned files, licence,
citation, modality, classes). ``Card.from_toml`` validates on load and names the file,
the field, what was expected and what was found.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from omnimedseg.errors import RegistryError

SCHEMA_VERSION = 1
MODALITIES = ("CT", "MRI", "X-ray", "ultrasound", "fundus", "endoscopy", "dermoscopy", "microscopy", "OCT")
ACCESS_KINDS = ("open", "registration", "manual")
# verified-open: an open licence stated by a primary source; restricted: non-commercial, no-derivatives or a
# data-use agreement; unverified: not settled by a primary source. Anything but verified-open needs --accept-licence.
LICENSE_STATUSES = ("verified-open", "unverified", "restricted")
# What the converter has been run on: the real release's files, or generated files in its exact layout.
VERIFIED_ON = ("real-files", "generated-layout")
HASH_ALGORITHMS = ("md5", "sha1", "sha256", "sha512")
ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
CLASS_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
# Channel and rater names become file names (images/<case>/<channel>, raters/<rater>/...).
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# A card's [raters] reference may name the dataset's own consensus instead of one rater.
CONSENSUS = "consensus"
VERSION_PATTERN = re.compile(r"^\d+\.\d+\.\d+$")
# Marker left by `omnimedseg new`; the registry lint refuses cards that still hold it.
TODO_MARKER = "TODO"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset release, pinned by size and at least one hash."""

    name: str
    size: int | None
    hashes: dict[str, str]
    url: str | None = None
    extract: bool = False
    # why size/hash are not pinned yet (e.g. "not published; filled by `omnimedseg registry lock`")
    unpinned: str = ""

    @property
    def strongest_hash(self) -> tuple[str, str]:
        """(algorithm, hex digest) of the strongest hash known, for verification."""
        for alg in reversed(HASH_ALGORITHMS):
            if alg in self.hashes:
                return alg, self.hashes[alg]
        raise RegistryError(f"file {self.name!r} has no hash; run: omnimedseg registry lock")


@dataclass(frozen=True)
class Source:
    platform: str
    record: str
    version: str
    files: tuple[RemoteFile, ...]
    doi: str | None = None


@dataclass(frozen=True)
class License:
    spdx: str
    url: str
    redistribution: bool
    status: str = "unverified"
    source: str = ""  # address of the primary source that states the licence
    attribution: str = ""
    text: str = ""

    @property
    def needs_acceptance(self) -> bool:
        return self.status != "verified-open"

    @property
    def redistributable(self) -> bool:
        """Whether converted data may be shared: never for a restricted licence (NC, ND, DUA)."""
        return self.redistribution and self.status != "restricted"


@dataclass(frozen=True)
class Citation:
    doi: str
    bibtex: str


@dataclass(frozen=True)
class Access:
    kind: str = "open"
    instructions: str = ""


@dataclass(frozen=True)
class Card:
    id: str
    title: str
    description: str
    homepage: str
    modality: str
    dimensionality: int
    classes: dict[int, str]
    source: Source
    license: License
    citation: Citation
    converter: str
    converter_version: str
    access: Access = field(default_factory=Access)
    tags: tuple[str, ...] = ()
    # class name -> colour(s) of that class in colour-coded masks ("#rrggbb" or [r, g, b])
    palette: dict[str, tuple] = field(default_factory=dict)
    verified_on: str = "generated-layout"
    # named channels of a multi-sequence image, in file order (default: one channel named after the modality)
    channels: tuple[str, ...] = ()
    # every annotator's name and the one whose masks are the reference (or "consensus")
    raters: tuple[str, ...] = ()
    reference_rater: str | None = None
    # class name -> MedSegDB task name (the MedSegX context); class name -> why it has none
    medsegdb_tasks: dict[str, str] = field(default_factory=dict)
    medsegdb_unmapped: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    sha256: str = ""

    @property
    def class_names(self) -> list[str]:
        return [self.classes[i] for i in sorted(self.classes)]

    @property
    def channel_names(self) -> list[str]:
        """Channel names in file order; one channel named after the modality unless the card lists them."""
        return list(self.channels) or [self.modality]

    @classmethod
    def from_toml(cls, path: Path, text: str | None = None) -> "Card":
        """Read and validate one card; every error names ``path`` and the field."""
        raw_text = read_card_text(path) if text is None else text
        try:
            data = tomllib.loads(raw_text)
        except tomllib.TOMLDecodeError as exc:
            raise RegistryError(f"{path}: not valid TOML ({exc})") from None
        card = _parse(_Fields(data, str(path)))
        expected_id = Path(path).stem
        if card.id != expected_id:
            raise RegistryError(f"{path}: id is {card.id!r} but the file is named {expected_id!r}.toml; "
                                f"the file name must equal the id")
        return replace(card, path=Path(path), sha256=hashlib.sha256(raw_text.encode()).hexdigest())


def read_card_text(path: Path) -> str:
    """A card file's text; a file that is not UTF-8 is a RegistryError naming it."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                            f"save the card as UTF-8 or remove it") from None


class _Fields:
    """Typed access to a TOML table that reports the file and dotted field name."""

    def __init__(self, data: dict, where: str, prefix: str = ""):
        self.data, self.where, self.prefix = data, where, prefix

    def _name(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def fail(self, key: str, expected: str, found: Any) -> RegistryError:
        return RegistryError(f"{self.where}: field '{self._name(key)}': expected {expected}, found {found!r}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., expected: str | None = None) -> Any:
        if key not in self.data:
            if default is ...:
                raise RegistryError(f"{self.where}: missing required field '{self._name(key)}'")
            return default
        value = self.data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(key, expected or _type_name(kind), value)
        if isinstance(value, str) and kind is str and default is ... and not value.strip():
            raise self.fail(key, "a non-empty string", value)
        return value

    def table(self, key: str, required: bool = True) -> "_Fields":
        value = self.get(key, dict, ... if required else {})
        return _Fields(value, self.where, f"{self._name(key)}.")

    def choice(self, key: str, options: tuple[str, ...], default: Any = ...) -> str:
        value = self.get(key, str, default)
        if value not in options:
            raise self.fail(key, "one of " + ", ".join(options), value)
        return value


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", list: "an array", dict: "a table"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _parse(f: _Fields) -> Card:
    schema = f.get("schema", int)
    if schema != SCHEMA_VERSION:
        raise f.fail("schema", f"{SCHEMA_VERSION}", schema)
    dataset_id = f.get("id", str)
    if not ID_PATTERN.match(dataset_id):
        raise f.fail("id", "snake_case (lower-case letters, digits, underscores)", dataset_id)
    dimensionality = f.get("dimensionality", int)
    if dimensionality not in (2, 3):
        raise f.fail("dimensionality", "2 or 3", dimensionality)
    converter = f.table("converter")
    converter_version = converter.get("version", str)
    if not VERSION_PATTERN.match(converter_version):
        raise converter.fail("version", "MAJOR.MINOR.PATCH", converter_version)
    access = f.table("access", required=False)
    access_kind = access.choice("kind", ACCESS_KINDS, "open")
    instructions = access.get("instructions", str, "")
    if access_kind != "open" and not instructions.strip():
        raise access.fail("instructions", f"download instructions when access is {access_kind!r}", instructions)
    return Card(
        id=dataset_id,
        title=f.get("title", str),
        description=f.get("description", str),
        homepage=f.get("homepage", str),
        modality=f.choice("modality", MODALITIES),
        dimensionality=dimensionality,
        classes=_parse_classes(f),
        source=_parse_source(f.table("source")),
        license=_parse_license(f.table("license")),
        citation=_parse_citation(f.table("citation")),
        converter=converter.get("name", str, dataset_id),
        converter_version=converter_version,
        access=Access(access_kind, instructions),
        tags=tuple(f.get("tags", list, [])),
        palette=_parse_palette(f),
        verified_on=f.choice("verified_on", VERIFIED_ON, "generated-layout"),
        channels=_parse_names(f, "channels"),
        **_parse_raters(f),
        **_parse_medsegdb(f),
    )


def _parse_classes(f: _Fields) -> dict[int, str]:
    table = f.get("classes", dict, expected='a table of label id -> class name, e.g. classes = { 1 = "liver" }')
    classes: dict[int, str] = {}
    for key, name in table.items():
        if not key.isdigit():
            raise f.fail(f"classes.{key}", "an integer label id as key", key)
        if not isinstance(name, str) or not CLASS_NAME_PATTERN.match(name):
            raise f.fail(f"classes.{key}", "a snake_case class name", name)
        classes[int(key)] = name
    ids = sorted(classes)
    if ids != list(range(1, len(ids) + 1)):
        raise f.fail("classes", "consecutive label ids 1..N (0 is background)", ids)
    if len(set(classes.values())) != len(classes):
        raise f.fail("classes", "unique class names", sorted(classes.values()))
    return classes


def _parse_names(f: _Fields, key: str) -> tuple[str, ...]:
    """A list of unique, file-name-safe names (channels, raters)."""
    names = f.get(key, list, [])
    for i, name in enumerate(names):
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise f.fail(f"{key}[{i}]", "a name of letters, digits, '.', '_' or '-'", name)
    if len(set(names)) != len(names):
        raise f.fail(key, "unique names", names)
    return tuple(names)


def _parse_raters(f: _Fields) -> dict:
    """``[raters]``: ``names = [...]`` (every annotator) and ``reference = "<name>"`` or "consensus"."""
    table = f.table("raters", required=False)
    if not table.data:
        return {}
    names = _parse_names(table, "names")
    if not names:
        raise table.fail("names", "a non-empty list of rater names", names)
    reference = table.get("reference", str)
    if reference not in names and reference != CONSENSUS:
        raise table.fail("reference", f"one of {list(names)} or {CONSENSUS!r}", reference)
    return {"raters": names, "reference_rater": reference}


def _colour_ok(value: Any) -> bool:
    if isinstance(value, str):
        return re.fullmatch(r"#[0-9a-fA-F]{6}", value) is not None
    return (isinstance(value, list) and len(value) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value))


def _parse_palette(f: _Fields) -> dict[str, tuple]:
    """``[palette]``: class -> "#rrggbb", [r, g, b], or a list of those (several colours per class)."""
    table = f.get("palette", dict, {})
    classes = set(_parse_classes(f).values())
    palette = {}
    for name, value in table.items():
        if name not in classes:
            raise f.fail(f"palette.{name}", f"a class of the card ({', '.join(sorted(classes))})", name)
        colours = value if isinstance(value, list) and value and not isinstance(value[0], int) else [value]
        if not all(_colour_ok(c) for c in colours):
            raise f.fail(f"palette.{name}", '"#rrggbb", [r, g, b] (0..255) or a list of them', value)
        palette[name] = tuple(tuple(c) if isinstance(c, list) else c for c in colours)
    return palette


def _parse_medsegdb(f: _Fields) -> dict:
    """``[medsegdb]``: ``tasks = { class = "Task" }`` and ``unmapped = { class = "reason" }``."""
    table = f.table("medsegdb", required=False)
    parsed = {}
    for key in ("tasks", "unmapped"):
        mapping = table.get(key, dict, {})
        for name, value in mapping.items():
            if not isinstance(value, str) or not value.strip():
                raise table.fail(f"{key}.{name}", "a non-empty string", value)
        parsed[f"medsegdb_{key}"] = dict(mapping)
    both = sorted(set(parsed["medsegdb_tasks"]) & set(parsed["medsegdb_unmapped"]))
    if both:
        raise table.fail("unmapped", "classes not also listed in medsegdb.tasks", both)
    return parsed


def _parse_source(s: _Fields) -> Source:
    files = []
    for i, entry in enumerate(s.get("files", list)):
        if not isinstance(entry, dict):
            raise s.fail(f"files[{i}]", "a table", entry)
        files.append(_parse_file(_Fields(entry, s.where, f"{s.prefix}files[{i}].")))
    names = [rf.name for rf in files]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise s.fail("files", "unique file names", duplicates)
    return Source(
        platform=s.get("platform", str),
        record=s.get("record", str),
        version=s.get("version", str),
        files=tuple(files),
        doi=s.get("doi", str, None),
    )


def _parse_file(f: _Fields) -> RemoteFile:
    name = f.get("name", str)
    if name.startswith(("/", "\\")) or ".." in Path(name).parts or "\\" in name:
        raise f.fail("name", "a relative file name without '..'", name)
    size = f.get("size", int, None)
    if size is not None and size < 0:
        raise f.fail("size", "a size in bytes >= 0", size)
    hashes = dict(f.get("hashes", dict, {}))
    for alg, digest in hashes.items():
        if alg not in HASH_ALGORITHMS:
            raise f.fail(f"hashes.{alg}", "an algorithm among " + ", ".join(HASH_ALGORITHMS), alg)
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]+", digest) \
                or len(digest) != hashlib.new(alg).digest_size * 2:
            raise f.fail(f"hashes.{alg}", f"a lower-case hex {alg} digest", digest)
    unpinned = f.get("unpinned", str, "")
    if unpinned and size is not None and hashes:
        raise f.fail("unpinned", "no 'unpinned' reason for a file pinned by size and hash", unpinned)
    return RemoteFile(name=name, size=size, hashes=hashes, url=f.get("url", str, None),
                      extract=f.get("extract", bool, False), unpinned=unpinned)


def _parse_license(f: _Fields) -> License:
    return License(
        spdx=f.get("spdx", str),
        url=f.get("url", str),
        redistribution=f.get("redistribution", bool),
        status=f.choice("status", LICENSE_STATUSES, "unverified"),
        source=f.get("source", str, ""),
        attribution=f.get("attribution", str, ""),
        text=f.get("text", str, ""),
    )


def _parse_citation(f: _Fields) -> Citation:
    bibtex = f.get("bibtex", str)
    if not bibtex.lstrip().startswith("@"):
        raise f.fail("bibtex", "a BibTeX entry starting with '@'", bibtex[:40])
    return Citation(doi=f.get("doi", str), bibtex=bibtex.strip() + "\n")


STATUS_MEANING = {
    "verified-open": "an open licence, stated by the primary source below",
    "unverified": "the licence has not been confirmed from a primary source; check it yourself",
    "restricted": "non-commercial, no-derivatives or a data-use agreement: read its terms before use",
}


def require_licence_acceptance(card: Card, accepted: bool, command: str) -> None:
    """The licence gate: anything not ``verified-open`` needs ``--accept-licence``.

    Raises :class:`LicenceNotAcceptedError` with one block: the licence, its status and the
    address of the source that states it, and the command to rerun.
    """
    lic = card.license
    if accepted or not lic.needs_acceptance:
        return
    from omnimedseg.errors import LicenceNotAcceptedError

    raise LicenceNotAcceptedError(
        f"{card.id}: the licence must be accepted before '{command}' ({lic.status}).\n"
        f"  licence:        {lic.spdx} ({lic.url})\n"
        f"  status:         {lic.status}: {STATUS_MEANING[lic.status]}\n"
        f"  source:         {lic.source or 'none recorded in ' + str(card.path)}\n"
        f"  redistribution: {'allowed' if lic.redistributable else 'NOT allowed'} for converted data\n"
        f"Read the licence; if you accept it, run: omnimedseg {command} {card.id} --accept-licence")


def lint_card(card: Card) -> list[str]:
    """What keeps a valid card from being publishable (built-in cards must have none).

    Schema validity is checked on load; this adds the release rules: no scaffold
    TODO markers, every file pinned with size and hash, https links.
    """
    problems = []
    text = card.path.read_text(encoding="utf-8") if card.path else ""
    if TODO_MARKER in text:
        problems.append(f"{card.path}: still holds {TODO_MARKER} markers from 'omnimedseg new'")
    if not card.license.source:
        problems.append(f"{card.path}: field 'license.source': expected the address of the primary source that "
                        f"states the licence")
    if card.license.status == "verified-open" and not card.license.redistribution:
        problems.append(f"{card.path}: license.status is verified-open but redistribution is false; "
                        f"a licence that forbids redistribution is 'restricted'")
    strangers = sorted((set(card.medsegdb_tasks) | set(card.medsegdb_unmapped)) - set(card.class_names))
    if strangers:
        problems.append(f"{card.path}: [medsegdb] names {strangers}, which are not classes of the card")
    unlisted = [c for c in card.class_names if c not in card.medsegdb_tasks and c not in card.medsegdb_unmapped]
    if unlisted:
        problems.append(f"{card.path}: classes {unlisted} are in neither medsegdb.tasks nor medsegdb.unmapped; "
                        f"map each class to a MedSegDB task or give the reason it has none")
    for url_field, url in (("homepage", card.homepage), ("license.url", card.license.url),
                           ("license.source", card.license.source or "https://")):
        if not url.startswith("https://"):
            problems.append(f"{card.path}: field '{url_field}': expected an https:// URL, found {url!r}")
    if not card.source.files:
        problems.append(f"{card.path}: source.files is empty; expected every remote file")
    for remote in card.source.files:
        if (remote.size is None or not remote.hashes) and not remote.unpinned:
            problems.append(f"{card.path}: file {remote.name!r} lacks size or hash; "
                            f"run: omnimedseg registry lock {card.id} (or say why in its 'unpinned' field)")
    return problems
