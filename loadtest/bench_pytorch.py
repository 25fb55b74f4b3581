#!/usr/bin/python3
"""PyTorch CPU reference timings for tiny-llama (issue #3), one JSON line on stdout.

Same model (models/reference/modeling.py, fp32, eager) and measurements as bench_model:
prefill tokens/s at 512 and 2048 tokens (1 warm-up, best of --repeats), decode ms/token
with 64 and 2048 tokens of context (median of --steps steps). bench_model runs this as a
child process and prints the ratios.
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "models", "reference"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "tiny-llama"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=16)
    a = ap.parse_args()

    import torch
    import modeling

    torch.set_num_threads(a.threads)
    c = json.load(open(os.path.join(a.model, "config.json")))
    c.setdefault("head_dim", c["hidden_size"] // c["num_attention_heads"])
    c.setdefault("rope_theta", 10000.0)
    m = modeling.LlamaForCausalLM(c)
    sd = {k: v.float() for k, v in modeling.load_model_dir_state(a.model).items()}
    m.load_state_dict(sd, strict=False)
    m.eval()
    vocab = c["vocab_size"]
    g = torch.Generator().manual_seed(1)

    def ids(n):
        return torch.randint(3, vocab, (1, n), generator=g)

    def forward_last(x, past=None):
        # Like m(x, past) but the lm_head on the last position only, as bench_model measures.
        off = 0 if past is None else past[0][0].shape[2]
        pos = torch.arange(off, off + x.shape[1])
        h = m.model.embed_tokens(x)
        cos, sin = modeling.rope_cos_sin(pos, c["head_dim"], c["rope_theta"], torch.float32)
        presents = []
        for i, layer in enumerate(m.model.layers):
            h, pr = layer(h, cos, sin, None if past is None else past[i])
            presents.append(pr)
        return m.lm_head(m.model.norm(h[:, -1:])), presents

    def timed(fn):
        # (wall seconds, process CPU seconds) of one call
        t, cpu = time.perf_counter(), time.process_time()
        r = fn()
        return time.perf_counter() - t, time.process_time() - cpu, r

    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    with torch.no_grad():
        for n in (512, 2048):
            x = ids(n)
            forward_last(x)  # warm-up
            runs = [timed(lambda: forward_last(x))[:2] for _ in range(a.repeats)]
            out["prefill%d_tok_s" % n] = n / min(r[0] for r in runs)
            out["prefill%d_cpu_tok_s" % n] = n / min(r[1] for r in runs)
        for ctx in (64, 2048):
            _, past = forward_last(ids(ctx - a.steps - 1))
            tok = ids(1)
            _, past = forward_last(tok, past)  # warm-up step
            wall, cpu = [], []
            for _ in range(a.steps):
                w, cp, (_, past) = timed(lambda: forward_last(tok, past))
                wall.append(w)
                cpu.append(cp)
            out["decode%d_ms" % ctx] = statistics.median(wall) * 1e3
            out["decode%d_cpu_ms" % ctx] = statistics.median(cpu) * 1e3
    print(json.dumps(out))


if __name__ == "__main__":
    main()
