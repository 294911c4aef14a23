"""Problems made concrete: model files, datasets and their validation against each other."""

from deploybench.problems.resolve import resolve_problem
from deploybench.problems.resolved import ResolvedProblem
from deploybench.problems.tensors import TensorSpec

__all__ = ["ResolvedProblem", "TensorSpec", "resolve_problem"]
