"""The ``html`` export format: an interactive, self-contained report per input."""

from runpipe.hookspecs import hookimpl

from .exporter import HtmlExporter


@hookimpl
def runpipe_register_exporters(register):
    register(HtmlExporter)


__all__ = ["HtmlExporter"]
