#!/usr/bin/python3
"""An application backend on ctxstream, in Python (issue #6 item 6).

Uses Debian's python3-grpcio and stubs generated from proto/ at build time (never committed):

    protoc -I proto --python_out=GEN --grpc_python_out=GEN \
        --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin proto/ctxstream/v1/*.proto

(cmake does this into build/examples/python/gen). Run with /usr/bin/python3:

    /usr/bin/python3 examples/python/backend.py --stubs build/examples/python/gen \
        --controller 127.0.0.1:50050 --api-key KEY --document models/README.md \
        --question "What does the bundle contain?" [--slo 0.5] [--objective fastest]

It registers the document (printing progress), asks the question (printing the plan, the
answer as it streams, and the timings), lists the tenant's contexts and deletes the one it
made (unless --keep). The last line on stdout is one JSON object summarising the run.
"""
import argparse
import json
import sys
import time


class ContextQA:
    """The few calls a backend needs, with the API key and a deadline on every call."""

    def __init__(self, address, api_key="", timeout_s=600.0):
        import grpc
        from ctxstream.v1 import common_pb2, controller_pb2, controller_pb2_grpc

        self.pb = controller_pb2
        self.common = common_pb2
        self.grpc = grpc
        self.channel = grpc.insecure_channel(address)
        self.stub = controller_pb2_grpc.ControllerStub(self.channel)
        self.metadata = [("x-api-key", api_key)] if api_key else []
        self.timeout_s = timeout_s

    def register(self, text, name="", on_progress=None):
        req = self.pb.RegisterContextRequest(text=text, name=name)
        last = None
        for p in self.stub.RegisterContext(req, metadata=self.metadata, timeout=self.timeout_s):
            last = p
            if on_progress:
                on_progress(p)
        if last is None:
            raise RuntimeError("RegisterContext ended without progress")
        return last

    def ask(self, context_id, question, max_tokens=32, slo_s=0.0, quality_floor=0.0,
            objective="quality", on_token=None):
        objectives = {
            "quality": self.pb.OBJECTIVE_BEST_QUALITY_WITHIN_SLO,
            "fastest": self.pb.OBJECTIVE_FASTEST_WITHIN_FLOOR,
        }
        req = self.pb.QueryRequest(context_id=context_id, question=question,
                                   max_tokens=max_tokens, slo_ttft_seconds=slo_s,
                                   max_quality_loss=quality_floor, force_level=-1,
                                   objective=objectives[objective])
        out = {"plan": None, "decisions": [], "answer": "", "result": None}
        for ev in self.stub.Query(req, metadata=self.metadata, timeout=self.timeout_s):
            kind = ev.WhichOneof("event")
            if kind == "plan":
                out["plan"] = ev.plan
            elif kind == "decision":
                out["decisions"].append(ev.decision)
            elif kind == "token":
                out["answer"] += ev.token.text
                if on_token:
                    on_token(ev.token.text)
            elif kind == "result":
                out["result"] = ev.result
        return out

    def list(self):
        ids, token = [], ""
        while True:
            resp = self.stub.ListContexts(self.pb.ListContextsRequest(page_token=token),
                                          metadata=self.metadata, timeout=10)
            ids += [c.context_id for c in resp.contexts]
            token = resp.next_page_token
            if not token:
                return ids

    def delete(self, context_id):
        resp = self.stub.DeleteContext(
            self.pb.ControllerDeleteContextRequest(context_id=context_id),
            metadata=self.metadata, timeout=10)
        return resp.deleted


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stubs", required=True, help="directory with the generated ctxstream/v1")
    ap.add_argument("--controller", default="127.0.0.1:50050")
    ap.add_argument("--api-key", default="")
    ap.add_argument("--document", required=True)
    ap.add_argument("--max-chars", type=int, default=0, help="use the first N characters")
    ap.add_argument("--question", required=True)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--slo", type=float, default=0.0)
    ap.add_argument("--quality-floor", type=float, default=0.0)
    ap.add_argument("--objective", choices=["quality", "fastest"], default="quality")
    ap.add_argument("--keep", action="store_true", help="do not delete the context")
    args = ap.parse_args()
    sys.path.insert(0, args.stubs)

    with open(args.document, encoding="utf-8") as f:
        text = f.read()
    if args.max_chars > 0:
        text = text[: args.max_chars]
    qa = ContextQA(args.controller, args.api_key)
    try:
        reg = qa.register(text, name=args.document, on_progress=lambda p: print(
            f"register {p.context_id}: {p.message} tokens={p.tokens} "
            f"chunks={p.chunks_done}/{p.chunks_total}{' [ready]' if p.ready else ''}"))
        t0 = time.monotonic()
        print("answer: ", end="", flush=True)
        out = qa.ask(reg.context_id, args.question, args.max_tokens, args.slo,
                     args.quality_floor, args.objective,
                     on_token=lambda t: print(t, end="", flush=True))
        print()
        wall = time.monotonic() - t0
        plan, result = out["plan"], out["result"]
        form = qa.common.Form.Name(plan.form)
        levels = [c.level for c in plan.chunks]
        print(f"plan: {form} levels={levels} predicted_ttft={plan.predicted_ttft_seconds:.3f}s "
              f"reason: {plan.reason}")
        t = result.timings
        print(f"timings: ttft={t.ttft_seconds:.3f}s fetch={t.fetch_seconds:.3f}s "
              f"decode={t.decode_seconds:.3f}s prefill={t.prefill_seconds:.3f}s "
              f"fell_back={result.fell_back} {result.fallback_reason}")
        listed = qa.list()
        deleted = False if args.keep else qa.delete(reg.context_id)
        print(json.dumps({
            "context_id": reg.context_id, "tokens": reg.tokens, "kv_ready": reg.ready,
            "form": form, "levels": levels, "predicted_ttft_s": plan.predicted_ttft_seconds,
            "ttft_s": t.ttft_seconds, "wall_s": wall, "answer": out["answer"],
            "generated_tokens": result.generated_tokens, "fell_back": result.fell_back,
            "decisions": len(out["decisions"]), "listed": reg.context_id in listed,
            "deleted": deleted}))
    except qa.grpc.RpcError as e:
        print(f"backend.py: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
