"""The ``speakers`` post-processing step: one voice, one label, across the windows of a long
input.

A backend labels speakers afresh in every window it is given ("Speaker 1" in the second window
may be the first window's "Speaker 2"). This step hears each window's speakers with the
offline speaker embedder, matches them to the speakers of earlier windows by voice (optimal
assignment on cosine similarity), and relabels so the same voice keeps the same label through
the whole input. Documents analysed in one piece pass through unchanged.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

from runpipe.chunking import owned_ranges
from runpipe.hookspecs import hookimpl
from runpipe.interfaces import PostProcessor
from runpipe.options import option
from runpipe.model import Document, Segment, Speaker



def _window_of(segment: Segment, owned: list[tuple[float, float]]) -> int:
    return next((i for i, (lo, hi) in enumerate(owned) if lo <= segment.start < hi), len(owned) - 1)


@dataclasses.dataclass(frozen=True)
class SpeakersOptions:
    threshold: float = option(0.55, "cosine similarity of two windows' voices above which they are one speaker",
                              minimum=-1, maximum=1)
    seconds_per_segment: float = option(8.0, "longest stretch of one segment used to hear its voice (more adds cost, "
                                        "not certainty)", minimum=0.5)


def _voices(document: Document, owned: list[tuple[float, float]], seconds_per_segment: float) -> dict[tuple[int, str], Any]:
    """Mean voice vector of each (window, label), from the offline speaker embedder."""
    import numpy as np

    from runpipe.plugins.local import models
    from runpipe.plugins.local.audio import load_audio
    from runpipe.plugins.local.diarize import embed_regions

    embedder = models.speaker_embedder()
    vectors: dict[tuple[int, str], list[Any]] = defaultdict(list)
    for segment in document.segments:
        if segment.speaker is None or segment.end is None or segment.end - segment.start < 0.5:
            continue
        length = min(segment.end - segment.start, seconds_per_segment)
        samples = load_audio(document.audio.path, segment.start, length)
        for embedding in embed_regions(samples, [(0.0, samples.size / 16000)], embedder):
            vectors[(_window_of(segment, owned), segment.speaker)].append(embedding.vector)
    means = {}
    for key, found in vectors.items():
        mean = np.mean(found, axis=0)
        means[key] = mean / (np.linalg.norm(mean) + 1e-12)
    return means


def match_voices(voices: dict[tuple[int, str], Any], threshold: float) -> dict[tuple[int, str], str]:
    """(window, label) -> the label of the same voice in the earliest window that had it."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    known: list[tuple[str, Any]] = []  # (label, voice) of every speaker heard so far
    mapping: dict[tuple[int, str], str] = {}
    for window in sorted({w for w, _ in voices}):
        labels = [label for w, label in voices if w == window]
        if not known:
            known = [(label, voices[(window, label)]) for label in labels]
            mapping.update({(window, label): label for label in labels})
            continue
        similarity = np.array([[float(voices[(window, label)] @ voice) for _, voice in known] for label in labels])
        rows, cols = linear_sum_assignment(-similarity)
        matched = {labels[r]: known[c][0] for r, c in zip(rows, cols) if similarity[r, c] >= threshold}
        taken = {name for name, _ in known}
        for label in labels:
            if label in matched:
                mapping[(window, label)] = matched[label]
                continue
            number = len(known) + 1
            while f"Speaker {number}" in taken:
                number += 1
            fresh = label if label not in taken else f"Speaker {number}"  # a new voice, a new label
            known.append((fresh, voices[(window, label)]))
            taken.add(fresh)
            mapping[(window, label)] = fresh
    return mapping


class SpeakerReconcileStep(PostProcessor):
    """Options: :class:`SpeakersOptions` (``runpipe schema speakers``)."""

    name = "speakers"
    on_by_default = True
    Options = SpeakersOptions
    settings: SpeakersOptions

    def process(self, document: Document) -> Document:
        from runpipe.plugins.local.models import missing_packages

        windows = document.windows
        if len(windows) < 2 or document.audio.path is None or missing_packages():
            return document
        owned = owned_ranges(windows)
        mapping = match_voices(_voices(document, owned, self.settings.seconds_per_segment), self.settings.threshold)
        segments = tuple(
            dataclasses.replace(s, speaker=mapping.get((_window_of(s, owned), s.speaker), s.speaker)) if s.speaker else s
            for s in document.segments
        )
        names = {s.label: s.name for s in document.speakers}
        order = list(dict.fromkeys(s.speaker for s in segments if s.speaker))
        speakers = tuple(Speaker(label, names.get(label)) for label in order)
        changed = sum(a.speaker != b.speaker for a, b in zip(document.segments, segments))
        note = f"speaker labels matched by voice across {len(windows)} windows ({changed} segment(s) relabelled)"
        return dataclasses.replace(document, segments=segments, speakers=speakers, notes=document.notes + (note,))


@hookimpl
def runpipe_register_postprocessors(register):
    register(SpeakerReconcileStep)
