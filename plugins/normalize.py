"""Built-in normalize stage: ffmpeg to 16 kHz mono audio of a MIME type Gemini accepts.

Remote references (URLs) pass through untouched for backends that accept them.
"""

from __future__ import annotations

import hashlib

from runpipe.hookspecs import hookimpl
from runpipe.media import normalize
from runpipe.model import AudioFile, MediaItem
from runpipe.run import RunContext


@hookimpl(trylast=True)
def runpipe_normalize(item: MediaItem, run: RunContext) -> AudioFile:
    if item.kind == "url":
        return AudioFile(
            source=item,
            path=None,
            mime_type=item.mime_type or "video/*",
            duration=None,
            content_hash=hashlib.sha256(item.uri.encode("utf-8")).hexdigest(),
        )
    return normalize(item, run.pipeline.normalize, force=run.force)
