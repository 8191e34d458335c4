"""Built-in input sources: local files, folders (recursive, include/exclude), globs, and
http(s)/YouTube URLs kept as remote references for backends that accept them."""

from __future__ import annotations

import fnmatch
import glob
import mimetypes
from pathlib import Path
from typing import Iterable, Sequence
from urllib.parse import urlparse

from runpipe.errors import MediaError
from runpipe.hookspecs import hookimpl
from runpipe.interfaces import IngestOptions, Source
from runpipe.model import MediaItem
from runpipe.run import RunContext

#: Suffixes a folder scan picks up when the pipeline gives no ``include`` patterns.
MEDIA_SUFFIXES = frozenset(
    ".wav .mp3 .flac .ogg .oga .opus .m4a .aac .aif .aiff .wma .webm .mp4 .m4v .mov .mkv .avi .mpeg .mpg .3gp .amr".split()
)


def _file_item(path: Path) -> MediaItem:
    resolved = path.resolve()
    return MediaItem(
        uri=str(resolved),
        kind="file",
        name=path.name,
        size_bytes=resolved.stat().st_size,
        mime_type=mimetypes.guess_type(path.name)[0],
    )


def _matches(path: Path, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(path.name, p) or fnmatch.fnmatch(path.as_posix(), p) for p in patterns)


class FileSource(Source):
    """Paths, folders and glob patterns on the local disk."""

    name = "file"

    def claims(self, location: str) -> bool:
        return "://" not in location

    def resolve(self, location: str, options: IngestOptions) -> Iterable[MediaItem]:
        path = Path(location).expanduser()
        if path.is_file():
            yield _file_item(path)  # named explicitly: taken whatever its suffix
        elif path.is_dir():
            pattern = "**/*" if options.recursive else "*"
            for found in sorted(path.glob(pattern)):
                if found.is_file() and self._wanted(found, options):
                    yield _file_item(found)
        elif glob.has_magic(location):
            for found in sorted(glob.glob(location, recursive=True)):
                if Path(found).is_file() and self._wanted(Path(found), options):
                    yield _file_item(Path(found))
        else:
            raise MediaError(f"{location}: no such file or folder")

    @staticmethod
    def _wanted(path: Path, options: IngestOptions) -> bool:
        if path.name.startswith("."):
            return False
        included = _matches(path, options.include) if options.include else path.suffix.lower() in MEDIA_SUFFIXES
        return included and not _matches(path, options.exclude)


class UrlSource(Source):
    """http(s) and YouTube URLs, passed on as references: runpipe does not download them."""

    name = "url"

    def claims(self, location: str) -> bool:
        return urlparse(location).scheme in ("http", "https")

    def resolve(self, location: str, options: IngestOptions) -> Iterable[MediaItem]:
        parsed = urlparse(location)
        if not parsed.netloc:
            raise MediaError(f"{location}: not a valid URL")
        name = Path(parsed.path).name or parsed.netloc
        if parsed.netloc.endswith(("youtube.com", "youtu.be")):
            name = parsed.query.partition("v=")[2].partition("&")[0] or Path(parsed.path).name or "youtube"
            mime = "video/*"
        else:
            mime = mimetypes.guess_type(parsed.path)[0]
        yield MediaItem(uri=location, kind="url", name=name, mime_type=mime)


@hookimpl
def runpipe_register_sources(register):
    register(FileSource)
    register(UrlSource)


@hookimpl(trylast=True)
def runpipe_ingest(location: str, run: RunContext):
    spec = run.pipeline.ingest
    options = IngestOptions(include=spec.include, exclude=spec.exclude, recursive=spec.recursive)
    for source in run.sources():
        if source.claims(location):
            return list(source.resolve(location, options))
    raise MediaError(f"{location}: no input source understands this location")
