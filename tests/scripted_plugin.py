"""A plugin module for ``runpipe -p scripted_plugin``: registers runpipe.testing's ScriptedBackend
(with nothing queued it answers an empty transcript), so CLI tests can run without a model."""

from runpipe.testing import ScriptedBackendPlugin

_plugin = ScriptedBackendPlugin()
runpipe_register_backends = _plugin.runpipe_register_backends
