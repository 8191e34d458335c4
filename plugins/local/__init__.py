"""The offline analysis backend (``backend: local``), registered like any third-party plugin.

Public helpers other steps reuse (e.g. re-timing a backend's answer against the audio):

* :func:`~runpipe.plugins.local.audio.load_audio` - decode any file to 16 kHz mono float32;
* :func:`~runpipe.plugins.local.audio.speech_regions` - Silero VAD speech regions;
* :func:`~runpipe.plugins.local.transcribe.transcribe_regions` - Whisper per speech region,
  language per region, word timestamps;
* :func:`~runpipe.plugins.local.models.whisper_model` - the process-wide, verified model.

Importing this package loads no model and imports no heavy dependency.
"""

from runpipe.hookspecs import hookimpl


@hookimpl
def runpipe_register_backends(register):
    from runpipe.plugins.local.backend import LocalBackend

    register(LocalBackend)
