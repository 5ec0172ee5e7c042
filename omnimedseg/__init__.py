"""omnimedseg: public medical segmentation datasets as one traceable benchmark."""

__version__ = "0.1.0"


def _map_checkout_folders() -> None:
    """Make ``omnimedseg.downloaders``/``converters``/``registry`` importable from a source checkout.

    The wheel maps the top-level folders ``downloaders/``, ``converters/`` and ``registry/`` into
    this namespace (pyproject ``package-dir``). Python started at the repository root imports this
    ``omnimedseg/`` folder directly, where those three are absent; a non-editable install
    elsewhere cannot help then. Only in a source checkout (``pyproject.toml`` and
    ``downloaders/__init__.py`` beside this folder) a finder is added *last* on ``sys.meta_path``
    that maps exactly these three names to their folders; an installed mapping is found first.
    """
    import importlib.abc
    import importlib.util
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    if not ((repo / "pyproject.toml").is_file() and (repo / "downloaders" / "__init__.py").is_file()):
        return
    mapped = {f"{__name__}.{name}": repo / name for name in ("downloaders", "converters", "registry")}

    class SourceCheckoutFinder(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path=None, target=None):
            folder = mapped.get(fullname)
            if folder is None:
                return None
            return importlib.util.spec_from_file_location(fullname, folder / "__init__.py",
                                                          submodule_search_locations=[str(folder)])

    if not any(type(finder).__name__ == "SourceCheckoutFinder" for finder in sys.meta_path):
        sys.meta_path.append(SourceCheckoutFinder())


_map_checkout_folders()
