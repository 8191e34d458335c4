"""Named things plugins register (sources, backends, prompts, post-processors, exporters,
executors), each remembered with the plugin that registered it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Iterator, TypeVar

from runpipe.errors import PipelineConfigError, PluginError
from runpipe.interfaces import Backend, Executor, Exporter, PostProcessor, Prompt, Source
from runpipe.options import options_schema

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Registration(Generic[T]):
    name: str
    value: T
    plugin: str  # plugin name as pluggy knows it
    dist: str | None  # distribution that ships the plugin
    version: str | None


class Registry(Generic[T]):
    """name -> registered value with provenance. A name registered twice is an error naming both."""

    def __init__(self, kind: str, key_attr: str, base: type, *, classes: bool = True):
        self.kind = kind  # "backend", "export format", ... used in messages
        self._key_attr = key_attr  # attribute holding the name pipelines use
        self._base = base
        self._classes = classes  # components are registered as classes; prompts as instances
        self._entries: dict[str, Registration[T]] = {}

    def add(self, value: T, *, plugin: str, dist: str | None = None, version: str | None = None) -> None:
        self._check_type(value, plugin)
        name = getattr(value, self._key_attr, None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin} registered a {self.kind} without a {self._key_attr!r} string: {value!r}")
        if name in self._entries:
            other = self._entries[name]
            raise PluginError(f"{self.kind} {name!r} is registered by both plugin {other.plugin} and plugin {plugin}")
        self._entries[name] = Registration(name, value, plugin, dist, version)

    def _check_type(self, value: object, plugin: str) -> None:
        base = f"{self._base.__module__}.{self._base.__qualname__}"
        if self._classes:
            if not isinstance(value, type):
                hint = " (pass the class itself, not an instance: runpipe instantiates it with the pipeline's options)"
                raise PluginError(f"plugin {plugin} registered {value!r} as a {self.kind}{hint if isinstance(value, self._base) else ''}; expected a subclass of {base}")
            if not issubclass(value, self._base):
                raise PluginError(f"plugin {plugin} registered {value.__qualname__} as a {self.kind}, but it does not subclass {base}")
        elif not isinstance(value, self._base):
            raise PluginError(f"plugin {plugin} registered {value!r} as a {self.kind}; expected a {base} instance")

    def get(self, name: str) -> T:
        return self.registration(name).value

    def registration(self, name: str) -> Registration[T]:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise PipelineConfigError(f"unknown {self.kind} {name!r}; registered: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Registration[T]]:
        return iter(self._entries.values())

    def names(self) -> list[str]:
        return list(self._entries)


@dataclass(frozen=True, slots=True)
class Registries:
    sources: Registry[type[Source]]
    backends: Registry[type[Backend]]
    prompts: Registry[Prompt]
    postprocessors: Registry[type[PostProcessor]]
    exporters: Registry[type[Exporter]]
    executors: Registry[type[Executor]]

    @classmethod
    def empty(cls) -> "Registries":
        return cls(
            sources=Registry("input source", "name", Source),
            backends=Registry("backend", "name", Backend),
            prompts=Registry("prompt", "name", Prompt, classes=False),
            postprocessors=Registry("post-processing step", "name", PostProcessor),
            exporters=Registry("export format", "format", Exporter),
            executors=Registry("executor", "name", Executor),
        )


def options_schemas(registries: Registries, name: str) -> list[dict[str, Any]]:
    """The options of every component registered as ``name`` (a backend and an exporter may
    share one), as JSON Schema; components without an options object list their option names."""
    found = []
    for kind in ("backends", "postprocessors", "exporters", "executors", "sources"):
        registry: Registry[Any] = getattr(registries, kind)
        if name not in registry:
            continue
        reg = registry.registration(name)
        title = f"{registry.kind} {name} (plugin {reg.plugin})"
        options_class = getattr(reg.value, "Options", None)
        if options_class is not None:
            found.append(options_schema(options_class, title))
        else:
            names = getattr(reg.value, "option_names", ())
            found.append({"title": title, "type": "object", "additionalProperties": False,
                          "properties": {n: {"description": "(not documented: the component declares no options object)"} for n in names}})
    if not found:
        known = sorted({n for kind in ("backends", "postprocessors", "exporters", "executors", "sources")
                        for n in getattr(registries, kind).names()})
        raise PipelineConfigError(f"no component called {name!r}; registered: {', '.join(known)}")
    return found


REGISTRATION_HOOKS = {
    "sources": "runpipe_register_sources",
    "backends": "runpipe_register_backends",
    "prompts": "runpipe_register_prompts",
    "postprocessors": "runpipe_register_postprocessors",
    "exporters": "runpipe_register_exporters",
    "executors": "runpipe_register_executors",
}
