"""The exception lsalsa raises for bad input, and the warning for codes that did not converge."""
from sklearn.exceptions import ConvergenceWarning


class LsalsaError(ValueError):
    """Bad input to an lsalsa function: the message names the argument, what was expected and
    what came."""


class LsalsaConvergenceWarning(ConvergenceWarning):
    """A solver run to convergence returned codes that fail the lasso's KKT test at the stated
    tolerance (:func:`lsalsa.kkt.certify`): the message says how many rows and how far."""
