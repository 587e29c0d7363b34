"""The batches every side of bench/run.sh times: `emotune bench`'s draw (splitmix64 over the seed,
row = splitmix64(seed * 1000003 + step * batch + j) mod rows), each text tokenized by transformers'
tokenizer with truncation at 128 tokens, as `emotune bench` does."""

MASK = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def read_rows(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f]


def draw_batches(tok, rows, seed, batch_size, count, max_length=128, in_order=False):
    """count batches of (token ids, label ids) pairs; in_order: every row once, in the file's order
    (count is then ignored)."""
    if in_order:
        picks = [list(range(k, min(k + batch_size, len(rows)))) for k in range(0, len(rows), batch_size)]
    else:
        picks = [[splitmix64(seed * 1000003 + k * batch_size + j) % len(rows) for j in range(batch_size)]
                 for k in range(count)]
    return [[(tok(rows[i][0], truncation=True, max_length=max_length)["input_ids"],
              [int(x) for x in rows[i][1].split(",")]) for i in p] for p in picks]


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
