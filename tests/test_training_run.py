"""akd_tf.training_run: the settings a training into a file runs with."""

from __future__ import annotations

from akd_tf.training_run import train_settings


def test_train_settings_cut_the_warmup_to_the_epochs():
    short = train_settings(epochs=1, batch_size=32, learning_rate=0.01, warmup_epochs=3.0, optimizer="sgd",
                           augment=True, seed=4)
    assert (short.epochs, short.warmup_epochs, short.batch_size, short.optimizer, short.augment, short.seed) == (
        1, 1, 32, "sgd", True, 4)
    assert train_settings(epochs=10, batch_size=128, learning_rate=0.005, warmup_epochs=1.0, optimizer="adam",
                          augment=False, seed=0).warmup_epochs == 1.0
