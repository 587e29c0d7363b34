"""Test-only oracle: DistilBertForSequenceClassification in plain PyTorch, the same computation as
Hugging Face's modeling_distilbert.py, reading and writing safetensors by Hugging Face names."""
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(body[b:end]), dtype=DTYPES[e["dtype"]]) if end > b else torch.empty(0)
        out[name] = t.reshape(e["shape"]).to(torch.float32)
    return out, header


def write_safetensors(path, tensors, dtype="F32"):
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        raw = t.detach().to(DTYPES[dtype]).contiguous().view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_heads, self.dim = c["n_heads"], c["dim"]
        self.q_lin, self.k_lin = nn.Linear(self.dim, self.dim), nn.Linear(self.dim, self.dim)
        self.v_lin, self.out_lin = nn.Linear(self.dim, self.dim), nn.Linear(self.dim, self.dim)
        self.dropout = nn.Dropout(c.get("attention_dropout", 0.1))

    def forward(self, x, mask):
        bs, q_len, _ = x.shape
        hd = self.dim // self.n_heads

        def shape(t):
            return t.view(bs, -1, self.n_heads, hd).transpose(1, 2)

        q = shape(self.q_lin(x)) / math.sqrt(hd)
        k, v = shape(self.k_lin(x)), shape(self.v_lin(x))
        scores = q @ k.transpose(2, 3)
        scores = scores.masked_fill((mask == 0).view(bs, 1, 1, -1).expand_as(scores), torch.finfo(scores.dtype).min)
        w = self.dropout(F.softmax(scores, dim=-1))
        ctx = (w @ v).transpose(1, 2).reshape(bs, -1, self.dim)
        return self.out_lin(ctx)


class FFN(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.lin1, self.lin2 = nn.Linear(c["dim"], c["hidden_dim"]), nn.Linear(c["hidden_dim"], c["dim"])
        self.dropout = nn.Dropout(c.get("dropout", 0.1))
        self.act = F.gelu if c.get("activation", "gelu") == "gelu" else F.relu

    def forward(self, x):
        return self.dropout(self.lin2(self.act(self.lin1(x))))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = Attention(c)
        self.sa_layer_norm = nn.LayerNorm(c["dim"], eps=1e-12)
        self.ffn = FFN(c)
        self.output_layer_norm = nn.LayerNorm(c["dim"], eps=1e-12)

    def forward(self, x, mask):
        sa = self.sa_layer_norm(self.attention(x, mask) + x)
        return self.output_layer_norm(self.ffn(sa) + sa)


class Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c["vocab_size"], c["dim"], padding_idx=c.get("pad_token_id", 0))
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], c["dim"])
        self.LayerNorm = nn.LayerNorm(c["dim"], eps=1e-12)
        self.dropout = nn.Dropout(c.get("dropout", 0.1))

    def forward(self, ids):
        pos = torch.arange(ids.shape[1]).unsqueeze(0)
        return self.dropout(self.LayerNorm(self.word_embeddings(ids) + self.position_embeddings(pos)))


class Transformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([Block(c) for _ in range(c["n_layers"])])


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = Embeddings(c)
        self.transformer = Transformer(c)

    def forward(self, ids, mask):
        h = self.embeddings(ids)
        for block in self.transformer.layer:
            h = block(h, mask)
        return h


class DistilBertClassifier(nn.Module):
    def __init__(self, c):
        super().__init__()
        num_labels = len(c["id2label"])
        self.distilbert = Encoder(c)
        self.pre_classifier = nn.Linear(c["dim"], c["dim"])
        self.classifier = nn.Linear(c["dim"], num_labels)
        self.dropout = nn.Dropout(c.get("seq_classif_dropout", 0.2))

    def forward(self, ids, mask):
        h = self.distilbert(ids, mask)[:, 0]
        return self.classifier(self.dropout(F.relu(self.pre_classifier(h))))


def load_classifier(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    model = DistilBertClassifier(config)
    tensors, _ = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    model.load_state_dict(tensors, strict=True)  # every Hugging Face name, nothing else
    model.eval()
    return model, config


def batch(id_lists, pad_id=0):
    seq = max(len(x) for x in id_lists)
    ids = torch.full((len(id_lists), seq), pad_id, dtype=torch.long)
    mask = torch.zeros((len(id_lists), seq), dtype=torch.long)
    for i, x in enumerate(id_lists):
        ids[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = 1
    return ids, mask
