"""Data-parallel training over MPI: train_rnn.py's loop, each rank on its share of every batch.

    mpiexec -n 2 python examples/train_distributed.py [--quick] [--epochs N] [--max-norm 2.0]

All ranks start from rank 0's weights (broadcast_parameters_), compute gradients on their slice of the batch,
average them (all_reduce_grads_, one collective over a GradBuffer), clip the averaged gradient (identical on
every rank, so every rank applies the same coefficient) and step. Rank 0 prints the per-epoch lines. Needs
the mpi extra: pip install -e ".[mpi]".
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common
from train_rnn import DEFAULT_LR, VOCAB, RNNClassifier, batches, binary_accuracy, make_comments

import minigrad as torch
from minigrad import nn, optim


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few seconds: train_rnn.py's --quick data and model")
    ap.add_argument("--seed", type=int, default=0, help="seeds the data and rank 0's initialisation (default: 0)")
    ap.add_argument("--epochs", type=int, default=None, help="passes over the data (default: 10; 6 with --quick)")
    ap.add_argument("--lr", type=float, default=DEFAULT_LR["adam"],
                    help=f"Adam's learning rate (default: {DEFAULT_LR['adam']}, as train_rnn.py)")
    ap.add_argument("--max-norm", type=float, default=2.0, help="max_norm of clip_grad_norm_ (default: 2.0)")
    ap.add_argument("--batch-size", type=int, default=32,
                    help="global batch, split across the ranks (default: 32)")
    args = ap.parse_args(argv)
    if args.max_norm < 0 or (args.epochs is not None and args.epochs < 1) or not args.lr > 0:
        ap.error("--max-norm must be >= 0, --epochs >= 1 and --lr > 0")
    try:
        from minigrad import distributed as dist

        rank, size = dist.get_rank(), dist.get_world_size()
        from mpi4py import MPI
    except ImportError as err:
        _common.fail(str(err))
    if args.batch_size < size:
        ap.error(f"--batch-size {args.batch_size} is smaller than the {size} ranks")
    epochs = args.epochs or (6 if args.quick else 10)

    torch.manual_seed(args.seed + rank)  # different on purpose: the broadcast makes them equal
    rng = np.random.default_rng(args.seed)  # the same data and order on every rank
    seqs, labels = make_comments(1000, rng, max_len=20) if args.quick else make_comments(4000, rng)
    model = RNNClassifier(VOCAB, 16 if args.quick else 32, 32 if args.quick else 64)
    dist.broadcast_parameters_(model, root=0)
    nn.utils.GradBuffer(model.parameters())  # one flat gradient array: one Allreduce per step
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    criterion = nn.BCEWithLogitsLoss()
    n_batches = -(-len(seqs) // args.batch_size)
    for e in range(epochs):
        totals = np.zeros(2)
        for (feature, batch_length), label in batches(seqs, labels, args.batch_size, rng, "cpu"):
            mine = slice(rank * len(batch_length) // size, (rank + 1) * len(batch_length) // size)
            optimizer.zero_grad()
            out = model(feature[:, mine], batch_length[mine])
            loss = criterion(out, label[mine])
            acc = binary_accuracy(out, label[mine])
            loss.backward()
            dist.all_reduce_grads_(model.parameters(), op="mean")
            nn.utils.clip_grad_norm_(model.parameters(), max_norm=args.max_norm, norm_type=2)
            optimizer.step()
            totals += [loss.item(), acc]
        totals = MPI.COMM_WORLD.allreduce(totals, op=MPI.SUM) / (size * n_batches)
        if rank == 0:
            print(f"loss on epoch {e} = {totals[0]:.4f}")
            print(f"accuracy on epoch {e} = {totals[1]:.4f}")


if __name__ == "__main__":
    main()
