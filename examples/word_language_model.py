"""A word-level language model, written as an ordinary PyTorch script: only the first import says minigrad.

    python examples/word_language_model.py [--quick] [--epochs 3] [--model RNN_TANH|RNN_RELU] [--seed 1]

It has the shape of PyTorch's well-known word_language_model example: a corpus tokenised into a dictionary,
batchify with narrow/view/t().contiguous(), an RNNModel (Embedding → RNN → dropout → Linear) initialised with
nn.init, the hidden state made with weight.new_zeros and detached between batches (repackage_hidden), NLLLoss on
F.log_softmax, clip_grad_norm_, a hand-written SGD step (p.data.add_(p.grad, alpha=-lr)), evaluation under
no_grad, the learning rate annealed when validation stops improving, and the best model kept with torch.save /
torch.load. Change the first import to `import torch` and it runs under PyTorch; the tests run both from the same
initial weights (--init-from) and compare the losses.
"""
import argparse
import math
import os
import time

import numpy as np

import minigrad as torch  # the one line that changes: `import torch` runs it under PyTorch
import minigrad.nn as nn
import minigrad.nn.functional as F

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "corpus.txt")


class Dictionary:
    def __init__(self):
        self.word2idx = {}
        self.idx2word = []

    def add_word(self, word):
        if word not in self.word2idx:
            self.idx2word.append(word)
            self.word2idx[word] = len(self.idx2word) - 1
        return self.word2idx[word]

    def __len__(self):
        return len(self.idx2word)


class Corpus:
    """The text split 80/10/10 into train, valid and test; every line ends with <eos>."""

    def __init__(self, path):
        self.dictionary = Dictionary()
        with open(path, encoding="utf-8") as f:
            lines = [line.split() + ["<eos>"] for line in f if line.strip()]
        for words in lines:
            for word in words:
                self.dictionary.add_word(word)
        ids = torch.LongTensor([self.dictionary.word2idx[w] for words in lines for w in words])
        n = ids.size(0)
        self.train = ids[: int(0.8 * n)]
        self.valid = ids[int(0.8 * n): int(0.9 * n)]
        self.test = ids[int(0.9 * n):]


class RNNModel(nn.Module):
    """Container module with an encoder, a recurrent module, and a decoder."""

    def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.5):
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        nonlinearity = {"RNN_TANH": "tanh", "RNN_RELU": "relu"}[rnn_type]
        self.rnn = nn.RNN(ninp, nhid, nlayers, nonlinearity=nonlinearity, dropout=dropout if nlayers > 1 else 0.0)
        self.decoder = nn.Linear(nhid, ntoken)
        self.init_weights()
        self.nhid = nhid
        self.nlayers = nlayers

    def init_weights(self):
        initrange = 0.1
        nn.init.uniform_(self.encoder.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -initrange, initrange)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output)
        decoded = decoded.view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        return weight.new_zeros(self.nlayers, bsz, self.nhid)


def batchify(data, bsz, device):
    # Work out how cleanly we can divide the dataset into bsz parts.
    nbatch = data.size(0) // bsz
    # Trim off any extra elements that wouldn't cleanly fit (remainders).
    data = data.narrow(0, 0, nbatch * bsz)
    # Evenly divide the data across the bsz batches.
    data = data.view(bsz, -1).t().contiguous()
    return data.to(device)


def repackage_hidden(h):
    """Wraps hidden states in new Tensors, to detach them from their history."""
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


def get_batch(source, i, bptt):
    seq_len = min(bptt, len(source) - 1 - i)
    data = source[i:i + seq_len]
    target = source[i + 1:i + 1 + seq_len].view(-1)
    return data, target


def evaluate(model, criterion, data_source, ntokens, eval_batch_size, bptt):
    model.eval()
    total_loss = 0.0
    hidden = model.init_hidden(eval_batch_size)
    with torch.no_grad():
        for i in range(0, data_source.size(0) - 1, bptt):
            data, targets = get_batch(data_source, i, bptt)
            output, hidden = model(data, hidden)
            hidden = repackage_hidden(hidden)
            total_loss += len(data) * criterion(output, targets).item()
    return total_loss / (len(data_source) - 1)


def train_epoch(model, criterion, train_data, ntokens, args, lr, epoch, losses):
    model.train()
    total_loss = 0.0
    hidden = model.init_hidden(args.batch_size)
    starts = range(0, train_data.size(0) - 1, args.bptt)
    for i in starts:
        data, targets = get_batch(train_data, i, args.bptt)
        # Starting each batch, we detach the hidden state from how it was previously produced.
        hidden = repackage_hidden(hidden)
        model.zero_grad()
        output, hidden = model(data, hidden)
        loss = criterion(output, targets)
        loss.backward()
        # `clip_grad_norm` helps prevent the exploding gradient problem in RNNs.
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-lr)
        total_loss += loss.item()
        losses.append(loss.item())
    return total_loss / max(len(starts), 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="RNN_TANH", choices=["RNN_TANH", "RNN_RELU"])
    parser.add_argument("--emsize", type=int, default=32)
    parser.add_argument("--nhid", type=int, default=64)
    parser.add_argument("--nlayers", type=int, default=2)
    parser.add_argument("--lr", type=float, default=5.0)
    parser.add_argument("--clip", type=float, default=0.25)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--bptt", type=int, default=12)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--save", default=None, help="where to keep the best model (default: a temporary file)")
    parser.add_argument("--init-from", default=None, help="start from these weights (an .npz of numpy arrays)")
    parser.add_argument("--init-to", default=None, help="write the initial weights there (an .npz)")
    parser.add_argument("--losses-to", default=None, help="write every training loss there (one per line)")
    parser.add_argument("--quick", action="store_true", help="2 epochs of a smaller model (seconds)")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.nhid, args.emsize = 2, 32, 16

    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    corpus = Corpus(CORPUS)
    eval_batch_size = 2
    train_data = batchify(corpus.train, args.batch_size, device)
    val_data = batchify(corpus.valid, eval_batch_size, device)
    test_data = batchify(corpus.test, eval_batch_size, device)

    ntokens = len(corpus.dictionary)
    model = RNNModel(args.model, ntokens, args.emsize, args.nhid, args.nlayers, args.dropout).to(device)
    if args.init_from:
        arrays = np.load(args.init_from)
        model.load_state_dict({k: torch.from_numpy(arrays[k]) for k in arrays.files})
    if args.init_to:
        np.savez(args.init_to, **{k: v.cpu().numpy() for k, v in model.state_dict().items()})
    criterion = nn.NLLLoss()
    save = args.save or os.path.join(os.environ.get("TMPDIR", "/tmp"), f"wlm-{os.getpid()}.pt")

    lr, best_val_loss, losses = args.lr, None, []
    for epoch in range(1, args.epochs + 1):
        start = time.time()
        train_loss = train_epoch(model, criterion, train_data, ntokens, args, lr, epoch, losses)
        val_loss = evaluate(model, criterion, val_data, ntokens, eval_batch_size, args.bptt)
        print(f"| end of epoch {epoch:3d} | time: {time.time() - start:5.2f}s | train loss {train_loss:5.2f} | "
              f"valid loss {val_loss:5.2f} | valid ppl {math.exp(val_loss):8.2f}")
        if best_val_loss is None or val_loss < best_val_loss:
            torch.save(model.state_dict(), save)
            best_val_loss = val_loss
        else:
            lr /= 4.0  # anneal the learning rate when validation does not improve
    model.load_state_dict(torch.load(save))
    test_loss = evaluate(model, criterion, test_data, ntokens, eval_batch_size, args.bptt)
    print(f"| end of training | test loss {test_loss:5.2f} | test ppl {math.exp(test_loss):8.2f}")
    if not args.save:
        os.remove(save)
    if args.losses_to:
        with open(args.losses_to, "w") as f:
            f.write("\n".join(repr(v) for v in losses) + "\n")
    return test_loss


if __name__ == "__main__":
    main()
