"""Build samples/podcast_sample.ogg: a short two-voice podcast-style recording.

Run: python samples/make_sample.py   (needs espeak-ng; ffmpeg from PATH or imageio-ffmpeg)

Two synthetic hosts (espeak-ng voices en-us+m3 and en+f3) take turns, with one German line
(de+f3: the second host's voice variant, so the same voice in another language), separated by
short pauses.

Speaker 2 is ``en+f3``, not ``en-gb+f3``: espeak-ng 1.51 does not apply the f3 variant to
``en-gb`` (its turns came out at about 100 Hz, the male host's pitch, while ``de+f3`` is at about
200 Hz), so the sample's "Speaker 2" was two different voices and its German turn was given to
whichever host the embedder liked. Check a voice's pitch before changing one. The script also writes samples/podcast_sample.json with each turn's
text, speaker and true start/end, which tests use as ground truth.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import wave
from pathlib import Path

HERE = Path(__file__).parent
TURNS = [
    ("Speaker 1", "en-us+m3", "Welcome back to the show. Today we are talking about how to turn long recordings into useful notes."),
    ("Speaker 2", "en+f3", "Thanks for having me. I record every meeting, but nobody ever has time to listen to them again."),
    ("Speaker 1", "en-us+m3", "That is exactly the problem. A transcript with speakers and timestamps makes the audio searchable."),
    ("Speaker 2", "de+f3", "Und wenn jemand Deutsch spricht, sollte die Zusammenfassung trotzdem auf Englisch sein."),
    ("Speaker 1", "en-us+m3", "Right, and a short summary at the top tells you whether the whole episode is worth your time."),
    ("Speaker 2", "en+f3", "Let us try it on this very conversation and see what comes out."),
]
GAP_SECONDS = 0.8
RATE = 16000


def ffmpeg_exe() -> str:
    import shutil

    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def main() -> None:
    pcm = bytearray()
    truth = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, (speaker, voice, text) in enumerate(TURNS):
            wav = Path(tmp) / f"turn{index}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", "155", "-w", str(wav), text], check=True)
            raw = Path(tmp) / f"turn{index}.raw"
            subprocess.run(
                [ffmpeg_exe(), "-v", "error", "-y", "-i", str(wav), "-ac", "1", "-ar", str(RATE), "-f", "s16le", str(raw)],
                check=True,
            )
            start = len(pcm) / 2 / RATE
            pcm += raw.read_bytes()
            end = len(pcm) / 2 / RATE
            truth.append({"speaker": speaker, "voice": voice, "text": text, "start": round(start, 3), "end": round(end, 3)})
            pcm += b"\x00\x00" * int(GAP_SECONDS * RATE)
        joined = Path(tmp) / "joined.wav"
        with wave.open(str(joined), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(RATE)
            out.writeframes(bytes(pcm))
        subprocess.run(
            [ffmpeg_exe(), "-v", "error", "-y", "-i", str(joined), "-c:a", "libvorbis", "-q:a", "3", str(HERE / "podcast_sample.ogg")],
            check=True,
        )
    (HERE / "podcast_sample.json").write_text(json.dumps({"turns": truth}, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
