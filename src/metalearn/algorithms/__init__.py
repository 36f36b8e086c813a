"""Meta-learning algorithms behind one :class:`Learner` interface.

Gradient-based: :class:`MAML` (and first-order MAML via ``first_order=True``),
:class:`MAMLPlusPlus`, :class:`ANIL`,
:class:`MetaSGD`, :class:`Reptile`. Metric-based: :class:`ProtoNet`, :class:`MatchingNet`,
:class:`SiameseNet`. Must not import ``metalearn.data`` or ``metalearn.training``.
"""

from metalearn.algorithms.anil import ANIL
from metalearn.algorithms.base import Learner, require_n_way
from metalearn.algorithms.inner import gradient_descent, sgd_step
from metalearn.algorithms.maml import MAML
from metalearn.algorithms.maml_plus_plus import MAMLPlusPlus
from metalearn.algorithms.matching import MatchingNet
from metalearn.algorithms.meta_sgd import MetaSGD
from metalearn.algorithms.protonet import ProtoNet
from metalearn.algorithms.reptile import Reptile
from metalearn.algorithms.siamese import SiameseNet

__all__ = [
    "Learner",
    "require_n_way",
    "gradient_descent",
    "sgd_step",
    "MAML",
    "MAMLPlusPlus",
    "ANIL",
    "MetaSGD",
    "Reptile",
    "ProtoNet",
    "MatchingNet",
    "SiameseNet",
]
