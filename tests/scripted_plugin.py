"""A plugin module for ``runpipe -p scripted_plugin``: registers runpipe.testing's ScriptedBackend,
so CLI tests can run without a model. It answers what the JSON list in the file named by
``SCRIPTED_ANSWERS`` holds, in order, then an empty transcript."""

import json
import os

from runpipe.testing import ScriptedBackendPlugin

_answers = json.loads(open(os.environ["SCRIPTED_ANSWERS"], encoding="utf-8").read()) if os.environ.get("SCRIPTED_ANSWERS") else []
_plugin = ScriptedBackendPlugin(*_answers)
runpipe_register_backends = _plugin.runpipe_register_backends
