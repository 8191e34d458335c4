"""How the offline speaker step counts voices (plugins/local/diarize.py), on made-up embeddings."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("scipy")

from runpipe.plugins.local.diarize import CepstralStats, DiarizationSettings, SpeakerEmbedding, cluster_speakers

DIMS = 256


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def voice_windows(direction: np.ndarray, count: int, start: float, rng, spread: float = 0.5, seconds: float = 3.0, cepstra=None):
    """``count`` embeddings of one voice: ``direction`` plus noise (cosine to it about 0.9)."""
    windows = []
    for index in range(count):
        vector = unit(direction + spread * rng.standard_normal(DIMS) / np.sqrt(DIMS))
        stats = CepstralStats.of(cepstra(rng)) if cepstra else None
        windows.append(SpeakerEmbedding(start + index * seconds, start + (index + 1) * seconds, vector, stats))
    return windows


def test_voices_that_sound_different_are_counted_however_many_there_are():
    rng = np.random.default_rng(1)
    voices = [unit(rng.standard_normal(DIMS)) for _ in range(12)]  # unrelated voices: cosine near 0
    embeddings = [e for number, voice in enumerate(voices) for e in voice_windows(voice, 3, 10.0 * number, rng)]
    labels = cluster_speakers(embeddings)
    assert len(set(labels)) == 12
    assert all(len(set(labels[3 * n : 3 * n + 3])) == 1 for n in range(12))
    assert len(set(cluster_speakers(embeddings, DiarizationSettings(max_speakers=5)))) == 5
    assert len(set(cluster_speakers(embeddings, DiarizationSettings(num_speakers=3)))) == 3


def test_a_short_window_joins_a_voice_instead_of_founding_one():
    rng = np.random.default_rng(2)
    voice, stray = unit(rng.standard_normal(DIMS)), unit(rng.standard_normal(DIMS))
    embeddings = voice_windows(voice, 6, 0.0, rng) + voice_windows(stray, 1, 30.0, rng, seconds=0.6)
    assert len(set(cluster_speakers(embeddings))) == 1
    longer = voice_windows(voice, 6, 0.0, rng) + voice_windows(stray, 1, 30.0, rng, seconds=1.5)
    assert len(set(cluster_speakers(longer))) == 2


def gaussian_cepstra(scale: np.ndarray, mean: np.ndarray):
    return lambda rng: mean + scale * rng.standard_normal((300, 19))


def test_voices_the_embedder_hears_alike_are_parted_by_their_cepstra():
    """One telephone line: every window scores above the same-voice similarity, but the two
    talkers' cepstra come from different Gaussians."""
    rng = np.random.default_rng(3)
    line = unit(rng.standard_normal(DIMS))
    first_talker = gaussian_cepstra(np.linspace(1.0, 0.3, 19), np.zeros(19))
    second_talker = gaussian_cepstra(np.linspace(0.4, 1.2, 19), np.full(19, 0.8))
    # The two talkers' windows lean slightly apart, as centring them shows.
    lean = unit(rng.standard_normal(DIMS))
    talks = voice_windows(unit(line + 0.15 * lean), 5, 0.0, rng, spread=0.2, cepstra=first_talker)
    answers = voice_windows(unit(line - 0.15 * lean), 5, 20.0, rng, spread=0.2, cepstra=second_talker)
    labels = cluster_speakers(talks + answers)
    assert len(set(labels[:5])) == 1 and len(set(labels[5:])) == 1 and labels[0] != labels[5]

    # One talker whose windows lean apart just as much (a change of tone) stays one voice.
    same = voice_windows(unit(line - 0.15 * lean), 5, 20.0, rng, spread=0.2, cepstra=first_talker)
    assert len(set(cluster_speakers(talks + same))) == 1
    # Without cepstra (or too few of them to fit two Gaussians) nothing is parted, unless the
    # count is given: then the voice is halved where it parts most.
    bare = [SpeakerEmbedding(e.start, e.end, e.vector) for e in talks + answers]
    assert len(set(cluster_speakers(bare))) == 1
    # One odd window (a cough, a laugh) is not the second voice.
    odd = SpeakerEmbedding(60.0, 63.0, unit(line + 0.4 * unit(rng.standard_normal(DIMS))))
    halved = cluster_speakers(bare + [odd], DiarizationSettings(num_speakers=2))
    assert len(set(halved[:5])) == 1 and len(set(halved[5:10])) == 1 and halved[0] != halved[5]
    few = DiarizationSettings(min_split_seconds=16.0)
    assert len(set(cluster_speakers(talks + answers, few))) == 1


def test_embeddings_all_too_short_to_trust_are_one_voice_unless_a_count_is_asked_for():
    rng = np.random.default_rng(4)
    keywords = [e for number in range(4) for e in voice_windows(unit(rng.standard_normal(DIMS)), 1, 2.0 * number, rng, seconds=0.8)]
    assert len(set(cluster_speakers(keywords))) == 1
    assert len(set(cluster_speakers(keywords, DiarizationSettings(num_speakers=2)))) == 2
    # Four unrelated voices, compared when at least three are asked for.
    assert len(set(cluster_speakers(keywords, DiarizationSettings(min_speakers=3)))) == 4
