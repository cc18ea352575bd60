"""torch.utils: only `data` (TensorDataset, DataLoader)."""
from minigrad.utils import data

__all__ = ["data"]
