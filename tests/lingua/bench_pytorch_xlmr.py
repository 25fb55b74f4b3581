#!/usr/bin/python3
"""PyTorch CPU reference speed of the LLMLingua-2 classifier (issue #5), one JSON line on stdout.

The same model as ctx::lingua's XlmrClassifier (models/reference/modeling.py, XLM-R token
classifier, fp32 eager) on batch x 512-id chunks (<s> 510 ids </s>): tokens/s of the forward
pass (logits), 1 warm-up then the mean of --iters passes, for each --batch. lingua_bench runs
this as a child process and prints the ratios.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "models", "reference"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "tiny-lingua2"))
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    a = ap.parse_args()

    import torch
    import modeling

    torch.set_num_threads(a.threads)
    c = json.load(open(os.path.join(a.model, "config.json")))
    m = modeling.XLMRobertaForTokenClassification(c)
    sd = {k: v.float() for k, v in modeling.load_model_dir_state(a.model).items()}
    m.load_state_dict(sd, strict=False)
    m.eval()
    g = torch.Generator().manual_seed(1)
    chunk = torch.randint(4, c["vocab_size"] - 1, (512,), generator=g)
    chunk[0], chunk[-1] = c["bos_token_id"], c["eos_token_id"]

    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    with torch.no_grad():
        for b in a.batch:
            ids = chunk[None, :].repeat(b, 1)
            m(ids)  # warm-up
            t, cpu = time.perf_counter(), time.process_time()
            for _ in range(a.iters):
                m(ids)
            wall, cpu = time.perf_counter() - t, time.process_time() - cpu
            out["batch%d_tok_s" % b] = a.iters * b * 512 / wall
            out["batch%d_cpu_tok_s" % b] = a.iters * b * 512 / cpu
    print(json.dumps(out))


if __name__ == "__main__":
    main()
