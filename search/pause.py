"""Telling a pause (Ctrl-C) from a crash, whatever exception the Ctrl-C turns into.

A Ctrl-C raises ``KeyboardInterrupt`` wherever the search's main thread happens to be. Usually that is
where the search waits or trains, and the ``KeyboardInterrupt`` reaches the loop as it is. But when it lands
inside library code that does not expect it (say, one of TensorFlow's lazy imports while Keras builds a
child's model), CPython or the library can turn it into another exception (``SystemError: __import__
returned a result with an exception set``, then an ``AssertionError``). Such an exception says nothing about
the child or its infrastructure: the user pressed Ctrl-C.

:class:`CtrlCWatch` notes every SIGINT that arrives while it is active (its handler then does what the
handler before it did: by default, raise ``KeyboardInterrupt``), so :meth:`CtrlCWatch.is_pause` can tell
the loop that the exception it caught is a pause, and :meth:`CtrlCWatch.as_pause` gives the
``KeyboardInterrupt`` to raise in its place.

Library code can also swallow the Ctrl-C whole: TensorFlow's C++ nest utilities, when a lazy import under
them is interrupted, print the resulting ``SystemError`` and return as if nothing happened (seen in CI: the
search trained on and finished). So the search also asks at safe points: :meth:`CtrlCWatch.check` raises the
pause a SIGINT asked for if nothing raised it, and :func:`pause_callback` does the same between training
steps of a child trained in this process.
"""

from __future__ import annotations

import signal
import threading

from akd_tf.errors import WaitTimedOut

_ACTIVE: list["CtrlCWatch"] = []  # the watches active in this process, innermost last


def pause_requested() -> bool:
    """Whether an active :class:`CtrlCWatch` of this process noted a SIGINT (always False in a worker process,
    where none is active)."""
    return any(watch.received for watch in _ACTIVE)


class CtrlCWatch:
    """A context manager that notes SIGINTs (Ctrl-C) for the code it wraps.

    It installs its handler only where one can be installed and would change nothing else: in the main
    thread, over a Python handler (the default raises ``KeyboardInterrupt``; a caller's own is called as
    before). Where SIGINT is ignored or left to the operating system it installs nothing, and notes nothing.
    """

    def __init__(self):
        self.received = False
        self._previous = None

    def __enter__(self) -> "CtrlCWatch":
        if threading.current_thread() is not threading.main_thread():
            return self
        previous = signal.getsignal(signal.SIGINT)
        if not callable(previous):  # SIG_IGN, SIG_DFL, or installed outside Python
            return self

        def note_and_pass_on(signum, frame):
            self.received = True
            previous(signum, frame)

        self._previous = previous
        signal.signal(signal.SIGINT, note_and_pass_on)
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
            _ACTIVE.remove(self)

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if a SIGINT came while active: a pause that library code swallowed
        (its exception never reached the search) is still a pause."""
        if self.received:
            raise KeyboardInterrupt("Ctrl-C (the code it landed in swallowed it)")

    def is_pause(self, exc: BaseException) -> bool:
        """Whether ``exc`` stops the search without saying anything of the children being evaluated: a
        Ctrl-C (as ``KeyboardInterrupt``, or as whatever it turned into after a SIGINT came), or a wait for
        farm workers that timed out."""
        return isinstance(exc, (KeyboardInterrupt, WaitTimedOut)) or self.received

    def as_pause(self, exc: BaseException) -> BaseException:
        """The exception to raise for a pause ``exc``: itself, or a ``KeyboardInterrupt`` in place of what a
        Ctrl-C turned into (chained to it, so the traceback still shows where the Ctrl-C landed)."""
        if isinstance(exc, (KeyboardInterrupt, WaitTimedOut)):
            return exc
        interrupt = KeyboardInterrupt()
        interrupt.__cause__ = exc
        return interrupt


def pause_callback():
    """A Keras callback that raises ``KeyboardInterrupt`` after the training or test step during which this
    process's search noted a SIGINT (:func:`pause_requested`), so a Ctrl-C that library code swallowed still
    stops a long child within a step."""
    import tf_keras as keras

    class _StopOnPause(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self._supports_tf_logs = True  # it reads no logs: Keras need not copy them to NumPy for it

        def on_train_batch_end(self, batch, logs=None):
            if pause_requested():
                raise KeyboardInterrupt("Ctrl-C (the code it landed in swallowed it)")

        on_test_batch_end = on_train_batch_end

    return _StopOnPause()
