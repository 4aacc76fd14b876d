"""The paper's experiments as configuration files, and the runner that executes them."""
from .config import ExperimentConfig, config_from_dict, load_config, shipped_configs
from .runner import STEPS, run_experiment

__all__ = ["ExperimentConfig", "config_from_dict", "load_config", "shipped_configs", "run_experiment", "STEPS"]
