"""Which regressor corrects the table sum best: LightGBM against scikit-learn's and linear fits, same data.

Measures --n random archs on the host (stored in the benchmark database, so a rerun measures nothing),
fits each regressor on the first --fit of them and reports on the rest. Every learned regressor sees
the same input the calibration gives LightGBM (the log of each arch's features) and predicts the log of
``measured / table sum``. Needs scikit-learn, which akd-tf itself does not use
(`.venv/bin/pip install scikit-learn`).

    .venv/bin/python benchmarks/regressor_choice.py [--n 150 --fit 60 --seed 11 --resolution 32 --classes 10]

The headline (LightGBM's share within +-10%, beside the best other regressor's) is printed last.
"""

from __future__ import annotations

import argparse

import numpy as np

from akd_tf.benchmark import latency_us
from akd_tf.space import get_space
from akd_tf.target import ModelTarget
from latency_db.accuracy import prediction_accuracy
from latency_db.corrections import fit_learned, fit_linear, log_features
from latency_db.measure import measure_many
from latency_db.predictor import LutPredictor
from latency_db.store import open_store
from table_args import add_table_arguments


class Sklearn:
    """A scikit-learn regressor of log(measured / table sum) on the log features."""

    def __init__(self, model, features, measured):
        self.model = model.fit(log_features(features), np.log(measured / features[:, 0]))

    def predict_ms(self, features):
        return features[:, 0] * np.exp(self.model.predict(log_features(features)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=150)
    parser.add_argument("--fit", type=int, default=60)
    parser.add_argument("--seed", type=int, default=11)
    add_table_arguments(parser)
    args = parser.parse_args()
    try:
        from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor, RandomForestRegressor
        from sklearn.linear_model import RidgeCV
    except ImportError:
        raise SystemExit("this comparison needs scikit-learn: .venv/bin/pip install scikit-learn") from None
    store, space = open_store(args.db), get_space()
    target = ModelTarget(args.resolution, args.classes)
    archs = list(dict.fromkeys(space.sample_many(args.n, args.seed)))
    rows = measure_many(store, "local", archs, target)
    measured = np.array([latency_us(rows[a]) / 1000 for a in archs])
    features = LutPredictor.load(store, "local", space, target).features_many(archs)
    fit_x, fit_y, test_x, test_y = features[:args.fit], measured[:args.fit], features[args.fit:], measured[args.fit:]
    regressors = {
        "lightgbm": lambda: fit_learned(fit_x, fit_y),
        "linear": lambda: fit_linear(fit_x, fit_y),
        "sklearn-random-forest": lambda: Sklearn(RandomForestRegressor(300, min_samples_leaf=2, random_state=0),
                                                 fit_x, fit_y),
        "sklearn-gradient-boosting": lambda: Sklearn(GradientBoostingRegressor(
            n_estimators=400, learning_rate=0.03, max_depth=3, min_samples_leaf=5, subsample=0.8, random_state=0),
            fit_x, fit_y),
        "sklearn-hist-gradient-boosting": lambda: Sklearn(HistGradientBoostingRegressor(
            max_iter=400, learning_rate=0.03, max_leaf_nodes=7, min_samples_leaf=5, random_state=0), fit_x, fit_y),
        "sklearn-ridge-on-logs": lambda: Sklearn(RidgeCV(alphas=np.logspace(-4, 2, 13)), fit_x, fit_y),
    }
    print(f"fit on {len(fit_y)} random archs (seed {args.seed}), tested on {len(test_y)} others, "
          f"{args.resolution}x{args.resolution}")
    print(f"  {'raw table sum':<31} {prediction_accuracy(test_x[:, 0], test_y).summary()}")
    shares = {}
    for name, fit in regressors.items():
        accuracy = prediction_accuracy(fit().predict_ms(test_x), test_y)
        shares[name] = accuracy.within_10_pct
        print(f"  {name:<31} {accuracy.summary()}")
    best_other = max((n for n in shares if n != "lightgbm"), key=shares.get)
    print(f"within +-10%: lightgbm {shares['lightgbm']:.1%}; best other, {best_other}: {shares[best_other]:.1%}")


if __name__ == "__main__":
    main()
