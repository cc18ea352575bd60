"""What several test files share: parameter factories, the table of binary ops, the optimizer configurations.

Hypothesis strategies live in strategies.py; running a clip on every backend in backends.py."""
import numpy as np

import minigrad as mg
from minigrad import nn

# every arithmetic operator, written once for minigrad and torch alike
BINARY_OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
}

# optimizer name -> keyword arguments, each a configuration whose 20-step trajectory is compared with torch's
OPTIMIZER_CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.02)),
    ("SGD", dict(lr=0.05, momentum=0.5, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1, amsgrad=True)),
    ("Adam", dict(lr=0.02, weight_decay=1.0)),  # 1: not a special value
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, betas=(0.8, 0.95), weight_decay=0.3, amsgrad=True, maximize=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=1.0, initial_accumulator_value=0.1)),  # 1: not special
    ("Adagrad", dict(lr=0.1)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=1.0)),  # 1: not a special value
]


def make_params(shapes=None, n=4, dtype=np.float64, seed=0, grad_scale=1.0, none_at=()):
    """Parameters of the given shapes (default: n vectors of 2, 3, ... elements) drawn from N(0, 1), with
    N(0, grad_scale²) gradients (none when grad_scale is None; None at the positions in `none_at`). `seed`: an
    int, or a NumPy Generator to draw from (it is advanced)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    shapes = [(k + 2,) for k in range(n)] if shapes is None else shapes
    params = [nn.Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]
    if grad_scale is not None:
        for i, p in enumerate(params):
            p.grad = None if i in none_at else (rng.standard_normal(p.shape) * grad_scale).astype(dtype)
    return params


def params_and_rng(seed, n=3):
    """n parameters without gradients, and the generator that drew them (for a test that draws the gradients)."""
    rng = np.random.default_rng(seed)
    return make_params(n=n, seed=rng, grad_scale=None), rng


def leaf(a, dtype=np.float64):
    """A leaf tensor that requires grad, holding a copy of `a` as `dtype` (float64: what gradcheck needs)."""
    return mg.tensor(np.array(a, dtype=dtype), requires_grad=True)
