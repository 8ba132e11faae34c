"""The failures a user can act on: bad parameters, bad data, a registry or DVC command that
cannot be done. Each subclass's message says what is wrong and where; the entry points
(``mtl``, the flows) print it and exit 1 without a traceback. Anything else is a bug and
keeps its traceback.

Example::

    >>> issubclass(KeyError, PipelineError)
    False
"""


class PipelineError(Exception):
    """An expected failure whose message is the whole story."""
