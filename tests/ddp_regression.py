"""Trains a small regression with `train_model`, in one process (`python`) or several (`torchrun`), and writes the loss
history to the folder given: tests/test_distributed.py compares the two. No dropout and fp32, so one process with a
batch of 8 and two processes with 4 each compute the same gradient up to the order of the sums."""
import sys
import numpy as np, torch
from torch import nn
from datasets import Dataset
from imgcap2text.train import train_model

class Regression(nn.Module):
    def __init__(self):
        super().__init__(); self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
    def forward(self, x, labels=None):
        y = self.net(x).squeeze(-1)
        return dict(loss=((y - labels) ** 2).mean(), logits=y)

def collate(rows): return dict(x=torch.tensor([r['x'] for r in rows]), labels=torch.tensor([r['y'] for r in rows]))

if __name__ == '__main__':
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype('float32')
    y = (x @ np.array([1, -2, 0.5, 3], dtype='float32') + 0.1 * rng.normal(size=64)).astype('float32')
    ds = Dataset.from_dict(dict(x=x.tolist(), y=y.tolist()))
    torch.manual_seed(0)
    train_model(Regression(), collate, ds.select(range(48)), ds.select(range(48, 64)), sys.argv[1], epochs=3, lr=1e-2,
                batch_size=8, keep='last', resume=False)
