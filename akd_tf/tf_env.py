"""The one place that configures TensorFlow's environment before it is imported.

``TF_USE_LEGACY_KERAS=1`` makes ``tf.keras`` the Keras 2 API of ``tf-keras``;
the log and oneDNN settings keep output quiet and numbers reproducible. Values
a user already set in the environment win.
"""

import os

TF_ENVIRONMENT = {
    "TF_USE_LEGACY_KERAS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "TF_ENABLE_ONEDNN_OPTS": "0",
}


def configure() -> None:
    for name, value in TF_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


configure()
