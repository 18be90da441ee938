"""akd-tf: architecture-aware knowledge distillation for mobile-latency-first student search.

Importing the package configures TensorFlow's environment (``akd_tf.tf_env``)
but does not import TensorFlow: the search space and the plan are pure Python.
"""

from akd_tf import tf_env as _tf_env  # noqa: F401  (must run before TensorFlow is imported)
from akd_tf.space import Arch, SearchSpace, get_space, register_space, space_names

__version__ = "0.1.0"


def __getattr__(name: str):
    """``NetworkPlan`` and ``plan_network`` on first use: commands that never plan a network skip the walk."""
    if name in ("NetworkPlan", "plan_network"):
        from akd_tf import plan

        return getattr(plan, name)
    raise AttributeError(f"module 'akd_tf' has no attribute {name!r}")


__all__ = ["Arch", "NetworkPlan", "SearchSpace", "get_space", "plan_network", "register_space",
           "space_names", "__version__"]
