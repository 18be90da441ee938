"""The ``akd-tf`` command line: thin click commands over the library, one module per command group.

Each command parses its options, calls one library function and formats the result. Groups are
loaded lazily (:mod:`akd_tf.cli.lazy`), so a command pays only for its own imports; TensorFlow
is imported only by the commands that need it.
"""

from akd_tf.cli.root import main

__all__ = ["main"]
