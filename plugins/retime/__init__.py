"""Re-timing: every result's segment times are taken from the audio itself, whatever backend
wrote the text (post-processing step ``retime``, on by default when the offline models are
installed). See :mod:`.align` for the method and :mod:`.step` for the step."""

from runpipe.hookspecs import hookimpl


@hookimpl
def runpipe_register_postprocessors(register):
    from runpipe.plugins.retime.step import RetimeStep

    register(RetimeStep)
