"""A tiny pure-Python training run for ratchet's demo and tests.

Logistic regression by mini-batch gradient descent on a generated binary
classification problem. The data set is fixed (its own seed), so runs are
comparable; RATCHET_SEED (default 0) only changes the weight initialisation
and the batch order, which is the run-to-run noise ratchet's repeated trials
average out. Hyperparameters live in config.py.

Writes, next to this file:
  metrics.jsonl    one record per epoch: epoch, train_loss, val_loss, val_acc
  metrics.json     the final record, written once at the end (atomically)
  checkpoint.json  the trained weights and the config that produced them (atomically)
and prints the final `val_loss: X` on stdout.
"""

import json
import math
import os
import random
import sys

import config

HERE = os.path.dirname(os.path.abspath(__file__))
DATA_SEED = 1234
N_TRAIN, N_VAL, N_FEATURES = 4000, 2000, 8
SCALES = [1.0, 50.0, 0.02, 10.0, 1.0, 200.0, 0.5, 5.0]


def make_data():
    """Labels from a fixed logistic model with one interaction, on features of very different scales."""
    rng = random.Random(DATA_SEED)
    true_w = [1.5, -2.0, 1.0, 0.8, -1.2, 0.6, 0.0, -0.7]
    rows = []
    for _ in range(N_TRAIN + N_VAL):
        z = [rng.gauss(0.0, 1.0) for _ in range(N_FEATURES)]
        logit = sum(w * v for w, v in zip(true_w, z)) + 1.5 * z[0] * z[1] - 0.3
        label = 1 if rng.random() < 1.0 / (1.0 + math.exp(-logit)) else 0
        rows.append(([v * s for v, s in zip(z, SCALES)], label))
    return rows[:N_TRAIN], rows[N_TRAIN:]


def featurize(rows, stats):
    out = []
    for x, y in rows:
        if stats:
            x = [(v - m) / s for v, (m, s) in zip(x, stats)]
        if config.INTERACTIONS:
            x = x + [x[i] * x[j] for i in range(4) for j in range(i + 1, 4)]
        out.append((x, y))
    return out


def column_stats(rows):
    stats = []
    for j in range(N_FEATURES):
        col = [x[j] for x, _ in rows]
        mean = sum(col) / len(col)
        std = math.sqrt(sum((v - mean) ** 2 for v in col) / len(col)) or 1.0
        stats.append((mean, std))
    return stats


def sigmoid(t):
    if t >= 0:
        return 1.0 / (1.0 + math.exp(-t))
    e = math.exp(t)
    return e / (1.0 + e)


def evaluate(w, b, rows):
    """(mean log loss, accuracy); nan when the weights have diverged."""
    loss = correct = 0.0
    for x, y in rows:
        t = sum(wi * xi for wi, xi in zip(w, x)) + b
        if not math.isfinite(t):
            return float("nan"), 0.0
        # log(1 + e^-|t|) + max(t, 0) - y*t is the stable form of the log loss
        loss += math.log1p(math.exp(-abs(t))) + max(t, 0.0) - y * t
        correct += (t > 0) == (y == 1)
    return loss / len(rows), correct / len(rows)


def train_epoch(w, b, rows, rng):
    rng.shuffle(rows)
    lr, l2 = config.LEARNING_RATE, config.L2
    for start in range(0, len(rows), config.BATCH_SIZE):
        batch = rows[start:start + config.BATCH_SIZE]
        gw, gb = [0.0] * len(w), 0.0
        for x, y in batch:
            t = sum(wi * xi for wi, xi in zip(w, x)) + b
            err = (sigmoid(t) if math.isfinite(t) else float("nan")) - y
            for i, xi in enumerate(x):
                gw[i] += err * xi
            gb += err
        n = len(batch)
        w = [wi - lr * (g / n + l2 * wi) for wi, g in zip(w, gw)]
        b -= lr * gb / n
    return w, b


def write_json_atomic(path, record):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f)
        f.write("\n")
    os.replace(tmp, path)


def main():
    rng = random.Random(int(os.environ.get("RATCHET_SEED", "0")))
    train_raw, val_raw = make_data()
    stats = column_stats(train_raw) if config.STANDARDIZE else None
    train, val = featurize(train_raw, stats), featurize(val_raw, stats)
    width = len(train[0][0])
    w, b = [rng.gauss(0.0, 0.01) for _ in range(width)], 0.0
    record = {}
    with open(os.path.join(HERE, "metrics.jsonl"), "w") as log:
        for epoch in range(1, config.EPOCHS + 1):
            w, b = train_epoch(w, b, train, rng)
            train_loss, _ = evaluate(w, b, train)
            val_loss, val_acc = evaluate(w, b, val)
            record = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_acc": val_acc}
            log.write(json.dumps(record) + "\n")
            log.flush()
    write_json_atomic(os.path.join(HERE, "metrics.json"), record)
    settings = {k: getattr(config, k) for k in dir(config) if k.isupper()}
    write_json_atomic(os.path.join(HERE, "checkpoint.json"), {"w": w, "b": b, "config": settings, **record})
    print(f"val_acc: {record.get('val_acc', float('nan')):.4f}")
    print(f"val_loss: {record.get('val_loss', float('nan')):.6f}")
    return 0 if record and math.isfinite(record["val_loss"]) else 1


if __name__ == "__main__":
    sys.exit(main())
