"""A character-level language model in the spirit of min-char-rnn, trained with truncated BPTT.

    python examples/char_rnn.py [--quick] [--text PATH] [--clip value|norm] [--save CK.npz] [--resume CK.npz]

nn.RNN (one-hot characters in) + Linear + CrossEntropyLoss + Adagrad, gradients clipped to [-5, 5] by value
(or by norm with --clip norm), the text read as B parallel streams in windows of --seq-len steps, the hidden
state carried across windows and detached between them (minigrad.nn.utils.rnn.truncated_bptt). Prints the
loss and a sample as it trains. Without --text it reads the small corpus shipped in examples/data/.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common

import minigrad as mg
from minigrad import nn, optim
from minigrad.nn.utils.rnn import truncated_bptt

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "corpus.txt")


class CharRNN(nn.Module):
    def __init__(self, vocab: int, hidden: int):
        super().__init__()
        self.vocab = vocab
        self.rnn = nn.RNN(vocab, hidden)
        self.head = nn.Linear(hidden, vocab)

    def one_hot(self, idx: np.ndarray) -> mg.Tensor:
        return mg.tensor(np.eye(self.vocab, dtype=np.float32)[idx])


def read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        _common.fail(f"--text {path}: {err.strerror or err}")
    except UnicodeDecodeError:
        _common.fail(f"--text {path}: not UTF-8 text")
    if len(text) < 2:
        _common.fail(f"--text {path}: the file is empty (a model needs at least two characters)")
    return text


def sample(model: CharRNN, chars: str, seed_char: str, length: int, rng: np.random.Generator) -> str:
    idx, h, out = chars.index(seed_char), None, [seed_char]
    with mg.no_grad():
        for _ in range(length):
            o, h = model.rnn(model.one_hot(np.array([[idx]])), h)
            logits = model.head(o[0]).data[0].astype(np.float64)
            p = np.exp(logits - logits.max())
            idx = int(rng.choice(len(chars), p=p / p.sum()))
            out.append(chars[idx])
    return "".join(out)


def make_config(args, chars: str) -> dict:
    return {"chars": chars, "hidden": args.hidden, "streams": args.streams, "seq_len": args.seq_len,
            "clip": args.clip, "lr": args.lr}


def load_checkpoint(path: str, config: dict, model: CharRNN, optimizer) -> tuple[int, mg.Tensor | None]:
    try:
        ck = mg.load(path)
    except (OSError, ValueError) as err:
        _common.fail(f"--resume {path}: {err}")
    if not isinstance(ck, dict) or ck.get("kind") != "char_rnn":
        _common.fail(f"--resume {path}: not a char_rnn checkpoint")
    if ck["config"] != config:
        diff = sorted(k for k in config if ck["config"].get(k) != config[k])
        _common.fail(f"--resume {path}: the checkpoint is for another model or text (differs in: {', '.join(diff)})")
    model.load_state_dict(ck["model"])
    optimizer.load_state_dict(ck["optim"])
    h = ck.get("h")
    return int(ck["step"]), (None if h is None else mg.tensor(h))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few seconds: a small model, 60 updates")
    ap.add_argument("--seed", type=int, default=0, help="seeds the initialisation and the samples (default: 0)")
    ap.add_argument("--text", metavar="PATH", default=CORPUS,
                    help="UTF-8 text to learn (default: the corpus in examples/data/)")
    ap.add_argument("--steps", type=int, default=None,
                    help="number of updates to reach, counting resumed ones (default: 3000; 60 with --quick)")
    ap.add_argument("--hidden", type=int, default=None, help="hidden units (default: 100; 32 with --quick)")
    ap.add_argument("--seq-len", type=int, default=25, help="TBPTT window: k1 = k2 = seq-len (default: 25)")
    ap.add_argument("--streams", type=int, default=8, help="parallel streams, the batch (default: 8)")
    ap.add_argument("--lr", type=float, default=0.1, help="Adagrad's learning rate (default: 0.1)")
    ap.add_argument("--clip", choices=["value", "norm"], default="value",
                    help="clip_grad_value_ at 5 or clip_grad_norm_ at 5 (default: value)")
    ap.add_argument("--print-every", type=int, default=None,
                    help="updates between loss lines and samples (default: 300; 20 with --quick)")
    ap.add_argument("--save", metavar="CK.npz", help="write a checkpoint here at the end (default: none)")
    ap.add_argument("--resume", metavar="CK.npz", help="continue from this checkpoint (default: start afresh)")
    args = ap.parse_args(argv)
    for name in ("steps", "hidden", "seq_len", "streams", "print_every"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.save and not os.path.isdir(os.path.dirname(os.path.abspath(args.save))):
        ap.error(f"--save {args.save}: the folder does not exist")
    args.steps = args.steps or (60 if args.quick else 3000)
    args.hidden = args.hidden or (32 if args.quick else 100)
    args.print_every = args.print_every or (20 if args.quick else 300)

    text = read_text(args.text)
    chars = "".join(sorted(set(text)))
    data = np.array([chars.index(c) for c in text], dtype=np.int64)
    span = (len(data) - 1) // args.streams
    if span < args.seq_len:
        _common.fail(f"--text {args.text}: too short for {args.streams} streams of {args.seq_len} steps")
    inputs = np.stack([data[i * span:(i + 1) * span] for i in range(args.streams)], axis=1)  # (L, B)
    targets = np.stack([data[i * span + 1:(i + 1) * span + 1] for i in range(args.streams)], axis=1)

    mg.manual_seed(args.seed)
    model = CharRNN(len(chars), args.hidden)
    optimizer = optim.Adagrad(model.parameters(), lr=args.lr)
    criterion = nn.CrossEntropyLoss()
    config = make_config(args, chars)
    step, h = load_checkpoint(args.resume, config, model, optimizer) if args.resume else (0, None)
    if step >= args.steps:
        print(f"{args.resume} is already at step {step} and --steps is {args.steps}: nothing left to train "
              f"(ask for more with --steps N, N > {step})")
    windows_per_pass = span // args.seq_len
    rng = np.random.default_rng(args.seed)
    losses = []
    progress = _common.bar(args.steps, "training", initial=min(step, args.steps))
    while step < args.steps:
        start = (step % windows_per_pass) * args.seq_len  # where this pass over the text resumes
        if start == 0:
            h = None  # a new pass over the text starts from a zero state
        end = windows_per_pass * args.seq_len
        x = model.one_hot(inputs[start:end])
        for window, output, h_n in truncated_bptt(model.rnn, x, k1=args.seq_len, k2=args.seq_len, h0=h):
            optimizer.zero_grad()
            logits = model.head(output)
            y = targets[start + window.start:start + window.stop]
            loss = criterion(logits.reshape(-1, len(chars)), y.reshape(-1))
            loss.backward()
            if args.clip == "value":
                nn.utils.clip_grad_value_(model.parameters(), clip_value=5.0)
            else:
                nn.utils.clip_grad_norm_(model.parameters(), max_norm=5.0)
            optimizer.step()
            h, step = h_n.detach(), step + 1
            progress.update()
            losses.append(loss.item())
            if step % args.print_every == 0 or step == args.steps:
                print(f"step {step}: loss {np.mean(losses[-args.print_every:]):.4f} (chance "
                      f"{np.log(len(chars)):.2f})")
                print("  sample: " + sample(model, chars, text[0], 60 if args.quick else 200, rng).replace("\n", " "))
            if step >= args.steps:
                break
    progress.close()
    if args.save:
        mg.save({"kind": "char_rnn", "config": config, "model": model.state_dict(), "optim": optimizer.state_dict(),
                 "step": step, "h": None if h is None else h.data}, args.save)
        print(f"saved {args.save} at step {step}")
    return {"losses": losses, "state": model.state_dict(), "step": step}


if __name__ == "__main__":
    main()
