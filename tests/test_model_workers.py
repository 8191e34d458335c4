"""Whisper's workers: batches (probes, translations) run side by side and each batch's result is
the one it gets alone; speech is shared out in packs so no worker waits while another decodes."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from runpipe.plugins.local import transcribe

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "podcast_sample.ogg"


def _stretch(language, *regions):
    return transcribe.Stretch(regions[0][0], regions[-1][1], language, tuple(regions))


def _packs(stretches, workers, min_cut=15.0):
    settings = transcribe.DecodingSettings(min_pack_cut_seconds=min_cut)
    return [[(s.language, s.regions) for s in pack] for pack in transcribe._packs_for_workers(stretches, workers, settings)]


def test_one_language_speech_is_cut_in_two_at_the_longest_pause_of_its_middle_half():
    # 10 regions of 5 s; the pause after the 4th is 1.5 s, the others 0.4 s (the pause after
    # the 9th, longer still, lies outside the middle half)
    regions, at = [], 0.0
    for index in range(10):
        regions.append((at, at + 5.0))
        at += 5.0 + (1.5 if index == 3 else 1.9 if index == 8 else 0.4)
    packs = _packs([_stretch("en", *regions[:6]), _stretch("en", *regions[6:])], workers=2)
    assert packs == [[("en", tuple(regions[:4]))], [("en", tuple(regions[4:6])), ("en", tuple(regions[6:]))]]
    # one worker: the language's one pack, as it was
    assert _packs([_stretch("en", *regions)], workers=1) == [[("en", tuple(regions))]]


def test_a_pack_is_cut_only_while_it_holds_more_than_its_share_and_both_sides_keep_enough():
    english = [(float(t), t + 9.0) for t in range(0, 100, 10)]  # 90 s of speech
    german = [(200.0, 210.0)]
    packs = _packs([_stretch("en", *english), _stretch("de", *german)], workers=2)
    assert [len(pack[0][1]) for pack in packs] == [5, 5, 1]  # English cut once: 45 s, 45 s against 10 s
    assert all(pack[0][0] == language for pack, language in zip(packs, ["en", "en", "de"]))
    # a cut would leave under min_pack_cut_seconds on one side: not cut
    assert _packs([_stretch("en", (0.0, 20.0), (20.5, 28.0))], workers=2) == [[("en", ((0.0, 20.0), (20.5, 28.0)))]]
    # as many packs as workers, none over its share: as they are
    even = [_stretch("en", (0.0, 30.0)), _stretch("de", (31.0, 60.0))]
    assert _packs(even, workers=2) == [[("en", ((0.0, 30.0),))], [("de", ((31.0, 60.0),))]]


def test_batches_run_side_by_side_on_the_workers_in_order():
    both_in = threading.Barrier(2, timeout=5)  # broken (an error) unless two batches run at once

    def work(batch):
        both_in.wait()
        return [2 * item for item in batch]

    assert transcribe._on_workers(SimpleNamespace(workers=2), work, [[1], [2, 3]]) == [[2], [4, 6]]
    here = threading.current_thread()
    assert transcribe._on_workers(SimpleNamespace(workers=1), lambda batch: threading.current_thread(), [[1], [2]]) == [here, here]


def test_work_is_taken_costliest_first_as_each_worker_comes_free_and_handed_back_items_are_done_again():
    both_in = threading.Barrier(2, timeout=5)  # broken (an error) unless two batches run at once
    taken = []

    def work(batch):
        taken.append(list(batch))
        if len(taken) <= 2:
            both_in.wait()
        # an item over 1 goes on at half its size; 1 is done
        return [item for item in batch if item == 1], [item // 2 for item in batch if item > 1]

    results = transcribe._work_through(SimpleNamespace(workers=2), [1, 8, 2, 4], work, 1, cost=lambda item: item)
    assert sorted(results) == [1, 1, 1, 1]
    assert sorted(map(tuple, taken[:2])) == [(4,), (8,)]  # the costliest two first, side by side
    assert len(taken) == 1 + 4 + 2 + 3  # every item handed back was done again

    def failing(batch):
        raise ValueError("decoder failed")

    with pytest.raises(ValueError, match="decoder failed"):  # and no worker is left waiting
        transcribe._work_through(SimpleNamespace(workers=2), [1, 2, 3], failing, 1, cost=lambda item: item)


@pytest.mark.local_models
def test_translation_on_the_workers_equals_one_batch_after_another(monkeypatch):
    """Parts of the sample's German turn, translated on the two one-thread workers side by
    side (a batch each) and on the two-thread model one after the other: the same translations."""
    from runpipe.plugins.local.backend import LocalBackend

    if LocalBackend.unavailable_reason():
        pytest.skip(LocalBackend.unavailable_reason())
    from runpipe.plugins.local import models
    from runpipe.plugins.local.audio import load_audio

    whisper = models.whisper_model()
    workers = models.whisper_workers(whisper)
    assert workers.workers == 2
    samples = load_audio(SAMPLE)
    spans = [(21.7, 27.5), (21.7, 24.6), (22.6, 27.5), (21.7, 26.0)][: 2 * transcribe._TRANSLATE_BATCH_ON_WORKERS]
    jobs = [transcribe.TranslationJob(transcribe.PackedClip.pack(samples, [span]), "de", [0.0], {}, 1) for span in spans]
    threads = set()
    translate_windows = transcribe._translate_windows

    def recorded(*args):
        threads.add(threading.current_thread())
        return translate_windows(*args)

    monkeypatch.setattr(transcribe, "_translate_windows", recorded)
    side_by_side = transcribe._translate(jobs, workers, transcribe.DecodingSettings())
    assert len(threads) == 2
    one_after_another = transcribe._translate(jobs, whisper, transcribe.DecodingSettings())
    assert len(side_by_side) >= 2 and side_by_side == one_after_another


@pytest.mark.local_models
def test_one_language_speech_is_decoded_on_both_workers_with_the_words_of_one_pack(decoding_threads):
    """The sample's English turns twice over (56 s of speech, one language): two packs, one
    on each worker, heard as the whole pack is heard (Whisper's windows start elsewhere, so a
    few words may differ: measured 158 of the whole pack's 165 words matched, in order)."""
    import json

    import numpy as np
    from runpipe.plugins.local.backend import LocalBackend

    if LocalBackend.unavailable_reason():
        pytest.skip(LocalBackend.unavailable_reason())
    from runpipe.plugins.local import models
    from runpipe.plugins.local.audio import SAMPLE_RATE, load_audio, speech_regions

    samples = load_audio(SAMPLE)
    turns = json.loads(SAMPLE.with_suffix(".json").read_text())["turns"]
    english = [samples[int(t["start"] * SAMPLE_RATE) : int((t["end"] + 0.8) * SAMPLE_RATE)] for t in turns if t["voice"].startswith("en")]
    samples = np.concatenate(english + [np.zeros(SAMPLE_RATE, np.float32)] + english)
    regions = speech_regions(samples)
    whisper = models.whisper_model()
    languages = transcribe.detect_region_languages(samples, regions, whisper)
    assert {lang.code for lang in languages} == {"en"}
    cut = transcribe.recognize_speech(samples, regions, whisper, languages=languages)
    assert decoding_threads == {"whisper-worker_0", "whisper-worker_1"}
    whole = transcribe.recognize_speech(samples, regions, whisper, transcribe.DecodingSettings(min_pack_cut_seconds=1e9), languages=languages)
    heard_whole, heard_cut = ([w.text.lower().strip(".,") for s in speech.segments for w in s.words] for speech in (whole, cut))
    assert len(heard_whole) > 100 and _common_in_order(heard_whole, heard_cut) >= 0.9 * len(heard_whole)


def _common_in_order(a: list[str], b: list[str]) -> int:
    """The longest common subsequence's length (difflib's blocks would match one copy of
    repeated speech against the other)."""
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal, row[0] = 0, 0
        for j, y in enumerate(b, 1):
            diagonal, row[j] = row[j], diagonal + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def test_a_translation_is_decoded_in_steps_and_a_loop_stops_at_the_first_check():
    """A window that has not looped by the check goes on from where it stopped to its end; one
    that loops is not decoded on to the decoder's limit."""
    scripts = [list(range(1, 151)), [7] * 224]  # a 150-token translation; a loop to the limit
    calls = []

    class Decoder:  # CTranslate2's Whisper: at most max_length // 2 tokens, a prefix given back
        def generate(self, features, prompts, max_length, **options):
            calls.append(max_length)
            results = []
            for prompt in prompts:
                script = scripts[prompt[0]]
                prefix = prompt[1:]
                assert script[: len(prefix)] == prefix
                results.append(SimpleNamespace(sequences_ids=[script[: max_length // 2]]))
            return results

    model = SimpleNamespace(model=Decoder(), max_length=448)
    outputs = [np.zeros((1, 2, 2), np.float32)] * 2
    loops = lambda window, tokens: len(tokens) > 20 and len(set(tokens)) == 1  # noqa: E731
    found = transcribe._generate_watching_loops(model, outputs, [[0], [1]], loops, beam_size=1)
    check = transcribe._LOOP_CHECK_TOKENS
    assert found == [scripts[0], [7] * check]
    assert calls == [2 * check, 2 * min(224, 2 * check)]
