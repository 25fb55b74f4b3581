"""Compares ctxstream's per-token p(keep) with models/reference/modeling.py on a real window.

Usage (Debian python with python3-torch):
  ./build/bin/lingua_quality --dump_probs=/tmp/dump.txt   # "classifier_id p_keep" lines
  /usr/bin/python3 tools/lingua_quality/check_probs.py /tmp/dump.txt
"""
import json
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "models", "reference"))
from modeling import XLMRobertaForTokenClassification, load_model_dir_state  # noqa: E402

d = os.path.join(ROOT, "models", "tiny-lingua2")
m = XLMRobertaForTokenClassification(json.load(open(os.path.join(d, "config.json"))))
m.load_state_dict({k: v.float() for k, v in load_model_dir_state(d).items()})
m.eval()
rows = [line.split() for line in open(sys.argv[1])]
ids = torch.tensor([[int(r[0]) for r in rows]])
ours = torch.tensor([float(r[1]) for r in rows])
with torch.no_grad():
    ref = torch.softmax(m(ids), -1)[0, :, 1]
diff = (ref - ours).abs()
print("positions %d  max |p_ref - p_ours| %.2e  mean p %.4f" % (len(rows), diff.max().item(), ref.mean().item()))
