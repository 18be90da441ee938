from setuptools import find_packages, setup

setup(
    name="akd-tf",
    version="0.1.0",
    description="Architecture-aware knowledge distillation: search, distill and export mobile-latency-first students",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["akd_tf", "akd_tf.*", "devicefarm", "devicefarm.*",
                                    "latency_db", "latency_db.*", "search", "search.*"]),
    install_requires=[
        "tensorflow==2.21.*",
        "tf-keras==2.21.*",
        # The maintained successor of tflite-runtime (which stops at 2.14, fails to
        # import with numpy 2 and has no XNNPACK int8). tflite-runtime stays an extra.
        "ai-edge-litert",
        "numpy",
        "click>=8.1",
        "sqlalchemy>=2.0",
        "alembic>=1.13",
        "psycopg[binary]>=3.1",
        "adb-shell>=0.4.4",  # the ADB client; pulls in cryptography, rsa and pyasn1
        "matplotlib>=3.7",  # `akd-tf search report` and the experiments' figures
        # The learned latency calibration (latency_db/corrections.py): chosen over scikit-learn on held-out
        # accuracy (benchmarks/predictor_accuracy.py) and size (a 3.5 MB wheel against 9.3 MB plus joblib and
        # threadpoolctl; both need scipy), and because its text model format loads without running code.
        "lightgbm>=4.0",
        # Non-negative least squares of the kernel models' per-unit costs (latency_db/kernel_models.py); LightGBM
        # requires it already.
        "scipy",
    ],
    extras_require={
        "tflite-runtime": ["tflite-runtime"],
        "ray": ["ray>=2.9"],  # --executor ray: children trained on a Ray cluster
        # import-linter: tests/test_code_structure.py
        "test": ["pytest>=8", "pytest-xdist>=3.5", "hypothesis>=6", "ray>=2.9", "import-linter>=2.16"],
    },
    package_data={"latency_db": ["migrations/script.py.mako"], "akd_tf": ["demo_data/*"]},
    entry_points={"console_scripts": ["akd-tf=akd_tf.cli:main"]},
)
