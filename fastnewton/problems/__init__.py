"""Problem families: each supplies its loss, gradient and Hessian parts in z = A x."""

from ._base import Problem, REQUIRED_METHODS
from .attention import AttentionRegression
from .attention_kernel import AttentionKernelRegression
from .copyright import CopyrightRegression
from .exp import ExpRegression, convexity_bound
from .glm import GLMRegression
from .multisoftmax import KroneckerPreconditioner, MultiSoftmaxRegression
from .rescaled import RescaledRegression
from .separable import SeparableLoss
from .resnet import ResNetSoftmaxRegression
from .softmax import SOFTMAX_CONVEXITY_W2, SoftmaxRegression
from .twolayer import ACTIVATIONS, TwoLayerRegression

__all__ = ["Problem", "ExpRegression", "SoftmaxRegression", "RescaledRegression",
           "ResNetSoftmaxRegression", "CopyrightRegression", "TwoLayerRegression",
           "ACTIVATIONS", "MultiSoftmaxRegression", "KroneckerPreconditioner",
           "AttentionRegression", "AttentionKernelRegression", "convexity_bound", "SOFTMAX_CONVEXITY_W2", "PROBLEMS",
           "REQUIRED_METHODS", "GLMRegression", "SeparableLoss"]

#: Registry of the problem families by short name.
PROBLEMS = {
    "exp": ExpRegression,
    "softmax": SoftmaxRegression,
    "rescaled": RescaledRegression,
    "resnet": ResNetSoftmaxRegression,
    "copyright": CopyrightRegression,
    "twolayer": TwoLayerRegression,
    "multisoftmax": MultiSoftmaxRegression,
    "attention": AttentionRegression,
    "attention_kernel": AttentionKernelRegression,
    "glm": GLMRegression,
}
