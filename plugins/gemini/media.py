"""Choosing how the audio travels: inline bytes, an uploaded file, or a URL Gemini fetches itself.

A window of a local file is cut out first (``runpipe.media.slice_audio``), so Gemini hears only
that stretch and its timestamps are on the window's own timeline (more reliable than asking for a
range in words). A YouTube window is cut by Gemini itself (``videoMetadata`` start and end
offsets), with the same result. Another URL cannot be cut without downloading it, so its window
goes into the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from google.genai import types

from runpipe.media import slice_audio
from runpipe.model import AudioFile, TimeRange

from .request import inline_bytes
from .uploads import Uploads

#: Names some tools give to types Gemini knows under another name.
_MIME_ALIASES = {
    "audio/x-wav": "audio/wav", "audio/wave": "audio/wav", "audio/vnd.wave": "audio/wav",
    "audio/x-flac": "audio/flac", "audio/x-aiff": "audio/aiff", "audio/x-aac": "audio/aac",
    "audio/x-mp3": "audio/mp3", "audio/vorbis": "audio/ogg", "audio/opus": "audio/ogg",
}
_YOUTUBE_HOSTS = frozenset({"youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com", "youtu.be"})

Transport = Literal["inline", "file", "url"]


@dataclass(frozen=True)
class StagedMedia:
    """The media part of a request and how it was produced.

    ``offset`` is where the sent media starts on the audio's timeline; ``range_in_prompt`` is the
    window the prompt must name because the media could not be cut (URLs other than YouTube);
    ``clip`` is the window Gemini cuts out of a YouTube video. ``video`` says the media is a video
    whose frames Gemini would look at (``media_resolution`` applies).
    """

    part: types.Part
    transport: Transport
    offset: float = 0.0
    range_in_prompt: TimeRange | None = None
    file_name: str | None = None
    clip: TimeRange | None = None
    video: bool = False


def gemini_mime_type(mime_type: str) -> str:
    """``mime_type`` under the name Gemini knows it by."""
    bare = mime_type.split(";")[0].strip().lower()
    return _MIME_ALIASES.get(bare, bare)


def url_mime_type(mime_type: str | None) -> str | None:
    """The MIME type to declare for a URL: a concrete one, or None to let Gemini find out (a
    wildcard such as ``video/*``, which ingest uses for "some video", is refused by the API)."""
    if not mime_type or "*" in mime_type:
        return None
    return gemini_mime_type(mime_type)


def clip_part(url: str, clip: TimeRange) -> types.Part:
    """A YouTube video cut to ``clip`` by Gemini (``videoMetadata`` offsets, in seconds)."""
    metadata = types.VideoMetadata(
        start_offset=f"{clip.start:g}s", end_offset=None if clip.end is None else f"{clip.end:g}s",
    )
    return types.Part(file_data=types.FileData(file_uri=url), video_metadata=metadata)


def is_youtube(url: str) -> bool:
    return (urlsplit(url).hostname or "").lower() in _YOUTUBE_HOSTS


def _covers_everything(window: TimeRange, duration: float | None) -> bool:
    return window.start <= 0 and (window.end is None or (duration is not None and window.end >= duration))


class MediaStager:
    """Prepares the media part for a request; uploads through :class:`Uploads` when needed."""

    def __init__(self, uploads: Uploads):
        self._uploads = uploads

    def stage(self, audio: AudioFile, window: TimeRange | None, *, other_bytes: int, inline_limit: int) -> StagedMedia:
        """The media part for ``window`` of ``audio`` (None: all of it).

        ``other_bytes`` is what the rest of the request takes: the media goes inline only if the
        whole request stays within ``inline_limit`` bytes.
        """
        if audio.path is None:
            return self._url(audio, window)
        offset = 0.0
        if window is not None and not _covers_everything(window, audio.duration):
            audio, offset = slice_audio(audio, window), window.start  # a cached file with its own content hash
        return self._local(audio.path, gemini_mime_type(audio.mime_type), audio.content_hash, offset, other_bytes, inline_limit)

    def _local(self, path: Path, mime_type: str, content_key: str, offset: float, other_bytes: int, inline_limit: int) -> StagedMedia:
        if inline_bytes(path.stat().st_size) + other_bytes <= inline_limit:
            return StagedMedia(types.Part.from_bytes(data=path.read_bytes(), mime_type=mime_type), "inline", offset)
        file = self._uploads.active_file(path, mime_type, content_key)
        part = types.Part(file_data=types.FileData(file_uri=file.uri, mime_type=mime_type))
        return StagedMedia(part, "file", offset, file_name=file.name)

    @staticmethod
    def _url(audio: AudioFile, window: TimeRange | None) -> StagedMedia:
        url = audio.source.uri
        whole = window is None or _covers_everything(window, audio.duration)
        if is_youtube(url):  # YouTube links carry no media type, and Gemini can cut them
            if whole:
                return StagedMedia(types.Part(file_data=types.FileData(file_uri=url)), "url", video=True)
            return StagedMedia(clip_part(url, window), "url", window.start, clip=window, video=True)
        mime_type = url_mime_type(audio.mime_type)
        part = types.Part(file_data=types.FileData(file_uri=url, mime_type=mime_type))
        video = mime_type is None or mime_type.startswith("video/")
        return StagedMedia(part, "url", 0.0, range_in_prompt=None if whole else window, video=video)
