"""lsalsa: fast sparse coding and source separation with learned, unrolled solvers."""
from .errors import LsalsaConvergenceWarning, LsalsaError
from .problem import LassoProblem
from .prox import soft_threshold
from .solvers import SOLVERS, SolverResult, fista, ista, prepare_solver, salsa, solve
from . import data
from .codes import optimal_codes
from .dictionary import dictionary_objective, learn_dictionaries, learn_dictionary
from .encoders import ENCODERS, LISTA, LSALSA, load_encoder, save_encoder
from .metrics import code_rmse
from .train import TrainConfig, TrainHistory, TrainState, train_encoder
from .methods import METHODS
from .pipeline import fit_encoder
from .bundle import SeparationModel, load_model, save_model
from .separation import Separation, read_image, separate_image

__version__ = "0.1.0"

__all__ = [
    "LsalsaError", "LsalsaConvergenceWarning", "LassoProblem", "soft_threshold",
    "SOLVERS", "SolverResult", "solve", "ista", "fista", "salsa", "prepare_solver",
    "data", "learn_dictionary", "learn_dictionaries", "dictionary_objective", "optimal_codes",
    "ENCODERS", "LISTA", "LSALSA", "save_encoder", "load_encoder", "code_rmse",
    "TrainConfig", "TrainHistory", "TrainState", "train_encoder", "METHODS", "fit_encoder",
    "SeparationModel", "save_model", "load_model", "Separation", "separate_image", "read_image",
]
