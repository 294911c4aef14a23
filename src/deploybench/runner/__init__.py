"""Runs experiments: prepare (resolve, check), build, reference run, measure, record."""

from deploybench.runner.experiment import RunOutcome, run_experiment
from deploybench.runner.preparation import PreparedExperiment, prepare_experiment
from deploybench.runner.record import RunRecord

__all__ = ["PreparedExperiment", "RunOutcome", "RunRecord", "prepare_experiment", "run_experiment"]
