"""Find plugins by name: built-in modules first, then installed entry points.

Built-in converters and downloaders are found by convention (module
``omnimedseg.<kind>.<name>``), imported lazily, so a broken plugin only breaks its
own dataset. Third-party packages register in the entry-point groups
``omnimedseg.converters`` and ``omnimedseg.downloaders``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from importlib.metadata import entry_points
from typing import TypeVar

from omnimedseg.errors import PluginError

T = TypeVar("T")
KINDS = ("converters", "downloaders")


def _builtin_module(kind: str, name: str) -> str | None:
    if name.startswith("_") or not name.isidentifier():
        return None
    module = f"omnimedseg.{kind}.{name}"
    spec = importlib.util.find_spec(module)
    return module if spec is not None and spec.submodule_search_locations is None else None


def _single_subclass(module, base: type[T], where: str) -> type[T]:
    found = [obj for _, obj in inspect.getmembers(module, inspect.isclass)
             if issubclass(obj, base) and obj is not base and obj.__module__ == module.__name__]
    if len(found) != 1:
        names = ", ".join(c.__name__ for c in found) or "none"
        raise PluginError(f"{where}: expected exactly one {base.__name__} subclass, found {names}")
    return found[0]


def load_entry_point(ep, group: str):
    """``ep.load()``; a broken third-party package raises PluginError naming it (it must not look like "not found")."""
    try:
        return ep.load()
    except Exception as exc:
        raise PluginError(f"entry point {ep.name} = {ep.value} (group {group}) failed to load: {exc}") from exc


def load_plugin(kind: str, name: str, base: type[T]) -> type[T]:
    """The plugin class called ``name`` of ``kind`` ('converters' or 'downloaders')."""
    module_name = _builtin_module(kind, name)
    if module_name is not None:
        return _single_subclass(importlib.import_module(module_name), base, module_name)
    for ep in entry_points(group=f"omnimedseg.{kind}"):
        if ep.name == name:
            obj = load_entry_point(ep, f"omnimedseg.{kind}")
            if not (inspect.isclass(obj) and issubclass(obj, base)):
                raise PluginError(f"entry point {ep.name} = {ep.value} is not a {base.__name__} subclass")
            return obj
    available = ", ".join(sorted(available_plugins(kind))) or "none"
    raise PluginError(f"no {kind[:-1]} named {name!r} (available: {available}); "
                      f"add {kind}/{name}.py or register an entry point in group 'omnimedseg.{kind}'")


def available_plugins(kind: str) -> dict[str, str]:
    """name -> where it comes from ('built-in' or the entry point value); built-ins win.

    Built-ins are the public modules of the package; shared code lives in
    ``_private`` modules and subpackages, which are never plugins.
    """
    import pkgutil

    package = importlib.import_module(f"omnimedseg.{kind}")
    found = {ep.name: ep.value for ep in entry_points(group=f"omnimedseg.{kind}")}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_") or info.ispkg:
            continue
        found[info.name] = f"built-in (shadows entry point {found[info.name]})" if info.name in found else "built-in"
    return found
