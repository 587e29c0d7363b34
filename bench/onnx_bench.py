"""The ONNX Runtime peer of `emotune bench infer`: the model directory exported to ONNX by torch
(transformers' classifier with eager attention, the graph ONNX Runtime's fusions recognise), run through
ONNX Runtime's transformer optimizer (Attention, SkipLayerNorm, BiasGelu fusions) in float32, and with
--quantize int8 through quantize_dynamic (int8 weights, activations quantized per call) as ONNX
Runtime's documentation recommends for transformers on CPUs. Times the same batches as `emotune bench`
(bench/batches.py), each padded to its longest text, intra-op threads = --threads, inter-op 1.
Run it with build/peersenv/bin/python (bench/install-peers.sh). Prints one JSON line; "fusions" counts
the fused operators, "agreement_top1" (int8 only) the share of the timed texts whose top label the
int8 model gives as the float32 one does.
"max_abs_diff_to_transformers" compares the first timed batch's logits with transformers' own.
Usage: onnx_bench.py --model DIR --data FILE [--steps N] [--warmup N] [--batch-size N] [--seed N]
       [--threads N] [--quantize none|int8] [--in-order] [--work DIR]"""
import argparse
import collections
import contextlib
import json
import os
import resource
import sys
import time

import numpy as np
import torch
from batches import draw_batches, percentile, read_rows


def export(model, path):
    ids = torch.ones(2, 8, dtype=torch.int64)
    with torch.inference_mode(), contextlib.redirect_stdout(sys.stderr):
        torch.onnx.export(model, (ids, torch.ones_like(ids)), path, input_names=["input_ids", "attention_mask"],
                          output_names=["logits"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                                        "logits": {0: "batch"}})


def optimize(path, out, config):
    from onnxruntime.transformers import optimizer
    with contextlib.redirect_stdout(sys.stderr):
        m = optimizer.optimize_model(path, model_type="bert", num_heads=config.num_attention_heads,
                                     hidden_size=config.hidden_size, opt_level=1)
    m.save_model_to_file(out)


def fusions_in(path):
    import onnx
    graph = onnx.load(path, load_external_data=False).graph
    return dict(collections.Counter(n.op_type for n in graph.node if n.domain == "com.microsoft"))


def quantize(path, out):
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    # The fused operators are ONNX Runtime's own: shape inference cannot type their outputs, so the
    # quantizer is told they are float (its own advice for an optimized model).
    quantize_dynamic(path, out, weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def session(path, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def padded(batch, pad_id):
    n = max(len(ids) for ids, _ in batch)
    ids = np.full((len(batch), n), pad_id, dtype=np.int64)
    mask = np.zeros((len(batch), n), dtype=np.int64)
    for i, (t, _) in enumerate(batch):
        ids[i, :len(t)] = t
        mask[i, :len(t)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--quantize", choices=["none", "int8"], default="none")
    ap.add_argument("--in-order", action="store_true",
                    help="every text of --data once, in order, instead of random draws (for agreement over a split)")
    ap.add_argument("--work", default=None, help="where the .onnx files go (default: MODEL/onnx); reused when there")
    a = ap.parse_args()
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging
    import onnxruntime as ort
    hf_logging.set_verbosity_error()
    torch.set_num_threads(a.threads)

    work = a.work or os.path.join(a.model, "onnx")
    os.makedirs(work, exist_ok=True)
    plain, fused, int8 = (os.path.join(work, n) for n in ("model.onnx", "model-opt.onnx", "model-opt-int8.onnx"))
    # Eager attention: the graph ONNX Runtime's fusions recognise, and the reference the export is checked against.
    hf = AutoModelForSequenceClassification.from_pretrained(a.model, attn_implementation="eager").eval()
    if not os.path.exists(plain):
        export(hf, plain)
    if not os.path.exists(fused):
        optimize(plain, fused, hf.config)
    fusions = fusions_in(fused)
    if a.quantize == "int8" and not os.path.exists(int8):
        quantize(fused, int8)

    tok = AutoTokenizer.from_pretrained(a.model)
    ex = draw_batches(tok, read_rows(a.data), a.seed, a.batch_size, a.warmup + a.steps, in_order=a.in_order)
    if a.in_order:
        a.warmup, a.steps = 0, len(ex)
    feeds = [padded(b, tok.pad_token_id) for b in ex]
    run = session(int8 if a.quantize == "int8" else fused, a.threads)
    times, outputs = [], []
    for k, feed in enumerate(feeds):
        t0 = time.perf_counter()
        logits = run.run(["logits"], feed)[0]
        if k >= a.warmup:
            times.append(time.perf_counter() - t0)
            outputs.append(logits)
    seconds = sum(times)
    real = sum(len(ids) for b in ex[a.warmup:] for ids, _ in b)
    pad = sum(max(len(ids) for ids, _ in b) * len(b) for b in ex[a.warmup:])
    result = {"mode": "infer", "impl": "onnxruntime-" + ort.__version__, "precision": "int8" if a.quantize == "int8" else "f32",
              "batch_size": a.batch_size, "steps": a.steps, "threads": a.threads,
              "examples_per_s": sum(len(b) for b in ex[a.warmup:]) / seconds, "tokens_per_s": real / seconds,
              "padded_tokens_per_s": pad / seconds, "step_ms_p50": percentile(times, 0.5) * 1000,
              "step_ms_p99": percentile(times, 0.99) * 1000, "fusions": fusions}
    # The export is checked, not trusted: the first timed batch against transformers' own logits.
    with torch.inference_mode():
        want = hf(**{k: torch.from_numpy(v) for k, v in feeds[a.warmup].items()}).logits.numpy()
    result["max_abs_diff_to_transformers"] = float(np.abs(want - outputs[0]).max())
    if a.quantize == "int8":
        reference = session(fused, a.threads)
        same = total = 0
        for feed, got in zip(feeds[a.warmup:], outputs):
            want = reference.run(["logits"], feed)[0]
            same += int((want.argmax(1) == got.argmax(1)).sum())
            total += len(got)
        result["agreement_top1"] = same / total
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
