"""torch.optim: optimizers with torch's update formulas, argument names and state_dict layout, and schedulers."""
from minigrad.optim import lr_scheduler
from minigrad.optim.adagrad import Adagrad
from minigrad.optim.adam import Adam, AdamW
from minigrad.optim.lbfgs import LBFGS
from minigrad.optim.optimizer import Optimizer
from minigrad.optim.rmsprop import RMSprop
from minigrad.optim.sgd import SGD
from minigrad.optim.skip_nonfinite import SkipNonFinite

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "LBFGS", "SkipNonFinite", "lr_scheduler"]
