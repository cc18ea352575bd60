"""The model and data both the MPI worker and the single-process reference train (float64)."""
import numpy as np

import minigrad as mg
from minigrad import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(3, 5)
        self.fc = nn.Linear(5, 1)

    def forward(self, x):
        out, _ = self.rnn(mg.tensor(x))
        return self.fc(out[-1]).squeeze(1)


def make_model(seed=0):
    mg.manual_seed(seed)
    return Net().double()


def data():
    rng = np.random.default_rng(42)
    return rng.standard_normal((6, 8, 3)) * 3, rng.standard_normal(8)


def step(model, opt, x, y, reduce=None):
    opt.zero_grad()
    loss = nn.MSELoss()(model(x), mg.tensor(y))
    loss.backward()
    if reduce is not None:
        reduce(list(model.parameters()))
    norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.5)
    opt.step()
    return norm.item()
