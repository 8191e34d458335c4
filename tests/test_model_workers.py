"""Translation batches run on the Whisper workers side by side; each batch's result is the one
it gets alone."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from runpipe.plugins.local import transcribe

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "podcast_sample.ogg"


def test_batches_run_side_by_side_on_the_workers_in_order():
    both_in = threading.Barrier(2, timeout=5)  # broken (an error) unless two batches run at once

    def work(batch):
        both_in.wait()
        return [2 * item for item in batch]

    assert transcribe._on_workers(SimpleNamespace(workers=2), work, [[1], [2, 3]]) == [[2], [4, 6]]
    here = threading.current_thread()
    assert transcribe._on_workers(SimpleNamespace(workers=1), lambda batch: threading.current_thread(), [[1], [2]]) == [here, here]


@pytest.mark.local_models
def test_translation_on_the_workers_equals_one_batch_after_another(monkeypatch):
    """The sample's German turn and its first half, translated on the two one-thread workers
    side by side and on the two-thread model one after the other: the same translations."""
    from runpipe.plugins.local.backend import LocalBackend

    if LocalBackend.unavailable_reason():
        pytest.skip(LocalBackend.unavailable_reason())
    from runpipe.plugins.local import models
    from runpipe.plugins.local.audio import load_audio

    whisper = models.whisper_model()
    workers = models.whisper_workers(whisper)
    assert workers.workers == 2
    samples = load_audio(SAMPLE)
    jobs = [
        transcribe.TranslationJob(transcribe.PackedClip.pack(samples, [span]), "de", [0.0], {}, 1)
        for span in ((21.7, 27.5), (21.7, 24.6))
    ]
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
