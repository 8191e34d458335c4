"""Building an engine's plugin manager: built-ins, entry points, blocking, tracing, reports.

Built-in plugins are plain modules listed in :data:`DEFAULT_PLUGINS`; they are imported and
registered by the same function that registers entry-point plugins, so a third-party backend
competes on equal terms with the built-in one.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Iterable

import pluggy

from runpipe import hookspecs
from runpipe.errors import PluginError

ENTRYPOINT_GROUP = "runpipe"

DEFAULT_PLUGINS = (
    "runpipe.plugins.sources",
    "runpipe.plugins.normalize",
    "runpipe.plugins.analyze",
    "runpipe.plugins.postprocess",
    "runpipe.plugins.prompts",
    "runpipe.plugins.exporters",
    "runpipe.plugins.gemini",
    "runpipe.plugins.local",
    "runpipe.plugins.html_report",
    "runpipe.plugins.retime",
    "runpipe.plugins.speakers",
    "runpipe.plugins.dask_executor",
)
#: Plugins without which nothing works; ``-p no:...`` cannot block them. The exporters plugin
#: is one: a pipeline that names no format gets ``json``, the result every re-export reads.
ESSENTIAL_PLUGINS = frozenset(
    {"runpipe.plugins.sources", "runpipe.plugins.normalize", "runpipe.plugins.analyze", "runpipe.plugins.postprocess",
     "runpipe.plugins.exporters"}
)
BUILTIN_PREFIX = "runpipe.plugins."

log = logging.getLogger("runpipe.plugins")


@dataclass(frozen=True, slots=True)
class PluginInfo:
    name: str
    dist: str | None
    version: str | None
    hooks: tuple[str, ...]
    builtin: bool
    registered: dict[str, list[str]] = field(default_factory=dict)  # kind -> names


@dataclass(frozen=True, slots=True)
class PluginFailure:
    name: str
    error: str


def _runpipe_version() -> str | None:
    try:
        return metadata.version("runpipe")
    except metadata.PackageNotFoundError:  # running from a source tree
        from runpipe import __version__

        return __version__


def _entrypoint_names() -> set[str]:
    """Names of the plugins in the ``runpipe`` entry-point group, without loading any."""
    return {ep.name for ep in metadata.entry_points(group=ENTRYPOINT_GROUP)}


def plugin_name(name: str) -> str:
    """The name pluggy knows a plugin by, from what a user typed after ``-p no:``.

    Built-ins answer to their short name (``retime`` -> ``runpipe.plugins.retime``) as well as
    their full one; entry-point plugins to their entry-point name. Anything else is an error
    that lists the names there are, so a typo never silently blocks nothing.
    """
    if name in DEFAULT_PLUGINS:
        return name
    if BUILTIN_PREFIX + name in DEFAULT_PLUGINS:
        return BUILTIN_PREFIX + name
    entrypoints = _entrypoint_names()
    if name in entrypoints:
        return name
    known = [p.removeprefix(BUILTIN_PREFIX) for p in DEFAULT_PLUGINS] + sorted(entrypoints)
    raise PluginError(f"-p no:{name}: no plugin called {name!r}; known plugins: {', '.join(known)}")


class PluginLoader:
    """Owns one pluggy manager and knows where each plugin came from."""

    def __init__(self, blocked: Iterable[str] = ()):
        self.pm = pluggy.PluginManager("runpipe")
        self.pm.add_hookspecs(hookspecs)
        self.failures: list[PluginFailure] = []
        self.dists: dict[str, tuple[str | None, str | None]] = {}  # plugin name -> (dist, version)
        self.builtin: set[str] = set()
        for typed in blocked:
            name = plugin_name(typed)
            if name in ESSENTIAL_PLUGINS:
                raise PluginError(f"plugin {typed} is essential and cannot be blocked")
            self.pm.set_blocked(name)

    def register(self, plugin: object, name: str, *, dist: str | None, version: str | None) -> None:
        if isinstance(plugin, type):
            raise PluginError(
                f"plugin {name} is a class; register a module or an instance (did you forget the `()`?)"
            )
        if self.pm.is_blocked(name) or self.pm.has_plugin(name):
            return
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {name} does not match runpipe's hooks: {exc}") from exc
        self.dists[name] = (dist, version)

    def load_builtins(self) -> None:
        version = _runpipe_version()
        for module_name in DEFAULT_PLUGINS:
            if self.pm.is_blocked(module_name):
                continue
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:  # a broken optional built-in must not stop the others
                self.failures.append(PluginFailure(module_name, f"{type(exc).__name__}: {exc}"))
                log.warning("built-in plugin %s failed to load: %s", module_name, exc)
                continue
            self.register(module, module_name, dist="runpipe", version=version)
            self.builtin.add(module_name)

    def load_entrypoints(self, only: Iterable[str] | None = None) -> None:
        """Load plugins from the ``runpipe`` entry-point group (optionally only these dists)."""
        wanted = set(only) if only is not None else None
        for dist in metadata.distributions():
            dist_name = dist.metadata["Name"]
            for ep in dist.entry_points:
                if ep.group != ENTRYPOINT_GROUP:
                    continue
                if wanted is not None and dist_name not in wanted and ep.name not in wanted:
                    continue
                if self.pm.is_blocked(ep.name) or self.pm.has_plugin(ep.name):
                    continue
                try:
                    plugin = ep.load()
                except Exception as exc:  # reported by `runpipe plugins`, fatal only if a pipeline uses it
                    self.failures.append(PluginFailure(ep.name, f"{type(exc).__name__}: {exc}"))
                    log.warning("plugin %s (%s) failed to load: %s", ep.name, dist_name, exc)
                    continue
                self.register(plugin, ep.name, dist=dist_name, version=dist.version)

    def enable_tracing(self) -> None:
        """Print every hook call with its arguments and results to stderr (RUNPIPE_TRACE_HOOKS=1)."""

        def before(hook_name, impls, kwargs):
            names = ", ".join(self.pm.get_name(i.plugin) or "?" for i in impls)
            print(f"[runpipe hook] {hook_name}({', '.join(kwargs)}) -> [{names}]", file=sys.stderr)

        def after(outcome, hook_name, impls, kwargs):
            try:
                result = outcome.get_result()
            except BaseException as exc:  # the exception is re-raised by pluggy itself
                result = f"raised {exc!r}"
            print(f"[runpipe hook] {hook_name} returned {str(result)[:200]}", file=sys.stderr)

        self.pm.add_hookcall_monitoring(before, after)

    def infos(self, registered: dict[str, dict[str, list[str]]]) -> list[PluginInfo]:
        result = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:  # blocked: pluggy keeps the name, with no plugin
                continue
            hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(plugin) or ()))
            dist, version = self.dists.get(name, (None, None))
            result.append(
                PluginInfo(name, dist, version, hooks, name in self.builtin, registered.get(name, {}))
            )
        return sorted(result, key=lambda p: (not p.builtin, p.name))


def plugin_of(pm: pluggy.PluginManager, registries: Iterable[Iterable[Any]], exc: BaseException) -> str | None:
    """Name of the plugin whose code raised ``exc``: the innermost traceback frame in a module of
    a registered plugin, or of a component class a plugin registered."""
    modules: dict[str, str] = {}
    for name, plugin in pm.list_name_plugin():
        module = getattr(plugin, "__name__", None) if hasattr(plugin, "__file__") else type(plugin).__module__
        if module:
            modules[module] = name
    for registry in registries:
        for reg in registry:
            value = reg.value if isinstance(reg.value, type) else type(reg.value)
            modules.setdefault(value.__module__, reg.plugin)
    found = None
    tb = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        for prefix, name in modules.items():
            if module == prefix or module.startswith(prefix + "."):
                found = name
        tb = tb.tb_next
    return found


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
