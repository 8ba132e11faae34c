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


class Terminated(BaseException):
    """The process was asked to stop (SIGTERM: ``timeout``, ``kill``, a scheduler cancelling
    it). A ``BaseException`` like ``KeyboardInterrupt``, so that it unwinds past every
    ``except Exception``: tracking runs end KILLED and a training keeps its resume state."""


def stop_on_sigterm() -> None:
    """SIGTERM raises :class:`Terminated` in the main thread instead of ending the process
    at once, leaving runs RUNNING and files half written."""
    import signal
    import threading

    def handler(signum: int, frame: object) -> None:
        raise Terminated(f"stopped by signal {signal.Signals(signum).name}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
