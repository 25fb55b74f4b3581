#!/usr/bin/python3
"""Held-out cost of context models in the KV codec's entropy coder (kv-codec-measurements.md §5).

  ./build/bin/kvsymdump --out /tmp/kvsym && /usr/bin/python3 tools/kvsymdump/ctx_entropy.py /tmp/kvsym

Tables are counted on the calibration windows (calib/, what the shipped profile is built from)
and charged on the long documents (eval/): static tables as the codec builds them (10-bit
frequencies, every symbol >= 1: NormalizeFrequencies), cost = 10 - log2 f per symbol. A context
model = one such table per (slot, channel, context); sparse contexts are smoothed offline with
ALPHA pseudo-counts of the order-0 table of the same channel (still one static table each).
Contexts only use what a chunk decoder has (chunks decode independently): symbols of earlier
rows of the same chunk, the row's scale (sent before the symbols), token ids (the receiver has
them). "ctx-wide" rows also look at earlier chunks (would need sequential chunk decoding).
"""
import glob
import os
import sys

import numpy as np

M, SPARE_BITS = 1024, 10
CHUNK = 256
ALPHA = 16.0  # pseudo-counts of the channel's order-0 distribution added to each context table

LEVELS = {  # name: (K bins, V bins) per layer; 0 = not sent
    "L3 OC-r0": ([0, 6, 12, 16, 32, 32], [0, 6, 6, 6, 6, 12]),
    "L4 OD-r0": ([0, 6, 12, 16, 32, 32], [0, 4, 6, 6, 6, 8]),
    "L5 OE-r0": ([0, 6, 12, 16, 16, 32], [0, 4, 4, 4, 4, 8]),
    "P4": ([0, 6, 12, 20, 24, 32], [0, 4, 6, 6, 6, 8]),
}


# Per-slot-kind combinations (K slot candidate, V slot candidate).
HYBRIDS = {
    "H1 chunk-local: K (a5), V (c)+(a5) repeat in chunk per ch":
        ("(a) prev q signed 5 buckets", "(c)+(a5) repeat in chunk: q_rep per ch, else prev 5+1"),
    "H2 context-wide: K (a5), V (c)+(a5) repeat in context per ch":
        ("(a) prev q signed 5 buckets", "(c)+(a5) repeat in context: q_rep per ch, else prev 5+1"),
    "H3 chunk-local, small tables: K (a5), V (c) repeat in chunk per ch":
        ("(a) prev q signed 5 buckets", "(c) repeat in chunk: q_rep per ch, else order-0"),
}


def load(d, split):
    ids, scale, sym = [], [], []
    for f in sorted(glob.glob(f"{d}/{split}/*_ids.npy")):
        p = f[: -len("ids.npy")]
        ids.append(np.load(f))
        scale.append(np.load(p + "scale.npy"))
        sym.append(np.load(p + "sym.npy"))
    return ids, scale, sym


def normalize(counts):
    """counts [K, A] (float) -> 10-bit freqs [K, A] as NormalizeFrequencies does."""
    K, A = counts.shape
    total = counts.sum(1, keepdims=True)
    extra = np.where(total > 0, np.floor((M - A) * counts / np.maximum(total, 1e-300)), (M - A) // A)
    f = 1 + extra
    f[np.arange(K), counts.argmax(1)] += M - f.sum(1)
    return f


def positions(ids_list):
    """Per window: t within chunk, last same-id row in the chunk / in the window, bigram match."""
    out = []
    for ids in ids_list:
        T = len(ids)
        tin = np.arange(T) % CHUNK
        rep_chunk = np.full(T, -1)
        rep_ctx = np.full(T, -1)
        rep_bi = np.full(T, -1)  # same (previous id, id) earlier in the chunk
        last, last_bi = {}, {}
        for t in range(T):
            i = int(ids[t])
            if t % CHUNK == 0:
                last_chunk, last_bi = {}, {}
            if i in last:
                rep_ctx[t] = last[i]
            if i in last_chunk:
                rep_chunk[t] = last_chunk[i]
            if t % CHUNK > 0:
                key = (int(ids[t - 1]), i)
                if key in last_bi:
                    rep_bi[t] = last_bi[key]
                last_bi[key] = t
            last[i] = t
            last_chunk[i] = t
        out.append((tin, rep_chunk, rep_ctx, rep_bi))
    return out


def concat(ids, scale, sym, pos, p, slot):
    Q = np.concatenate([s[p] for s in sym]).astype(np.int64)  # [N, C]
    off = np.cumsum([0] + [len(i) for i in ids[:-1]])
    tin = np.concatenate([x[0] for x in pos])
    reps = [np.concatenate([np.where(x[k] >= 0, x[k] + o, -1) for x, o in zip(pos, off)])
            for k in (1, 2, 3)]
    sc = np.concatenate([s[slot] for s in scale])
    return Q, tin, reps, sc


def features(Q, tin, reps, sc, m, A, sc_edges):
    """Context arrays [N, C] of each candidate, and their context counts."""
    N, C = Q.shape
    prev = np.vstack([np.full((1, C), m), Q[:-1]])
    first = (tin == 0)[:, None]
    d = prev - m
    ad = np.abs(d)
    f = {}
    f["order-0 (today)"] = (np.zeros_like(Q), 1)
    a4 = np.select([ad == 0, ad == 1, ad <= 3], [0, 1, 2], 3)
    f["(a) prev |q| 4 buckets"] = (np.where(first, 4, a4), 5)
    a5 = np.clip(d, -2, 2) + 2
    f["(a) prev q signed 5 buckets"] = (np.where(first, 5, a5), 6)
    f["(a) prev q exact"] = (np.where(first, A, prev), A + 1)
    b4 = np.searchsorted(sc_edges[4], sc)[:, None] + np.zeros_like(Q)
    f["(b) row scale 4 buckets"] = (b4, 4)
    b8 = np.searchsorted(sc_edges[8], sc)[:, None] + np.zeros_like(Q)
    f["(b) row scale 8 buckets"] = (b8, 8)
    f["(a)x(b) prev 4+1 x scale 4"] = (np.where(first, 4, a4) * 4 + b4, 20)
    f["(a5)x(b) prev 5+1 x scale 4"] = (np.where(first, 5, a5) * 4 + b4, 24)
    f["_a5"] = (np.where(first, 5, a5), 6)
    for name, r in (("chunk", reps[0]), ("context", reps[1]), ("chunk, bigram", reps[2])):
        f["_rep " + name] = (r >= 0, Q[np.maximum(r, 0)])
    return f


def cost_bits(Qtr, ctr, nctx, Qev, cev, A, alpha=ALPHA, per_channel=True, rows=False):
    """Held-out bits of Qev under static tables per (channel, context) counted on Qtr (with
    rows: bits per row of Qev)."""
    C = Qtr.shape[1]
    ch_tr = np.broadcast_to(np.arange(C), Qtr.shape) if per_channel else np.zeros_like(Qtr)
    ch_ev = np.broadcast_to(np.arange(C), Qev.shape) if per_channel else np.zeros_like(Qev)
    nch = C if per_channel else 1
    cnt = np.bincount(((ch_tr * nctx + ctr) * A + Qtr).ravel(), minlength=nch * nctx * A)
    cnt = cnt.reshape(nch, nctx, A).astype(np.float64)
    if nctx > 1:
        p0 = cnt.sum(1, keepdims=True)
        p0 = p0 / np.maximum(p0.sum(2, keepdims=True), 1)
        cnt = cnt + alpha * p0
    f = normalize(cnt.reshape(nch * nctx, A)).reshape(nch, nctx, A)
    bits = SPARE_BITS - np.log2(f[ch_ev, cev, Qev])
    return (bits.sum(1) if rows else bits.sum()), nch * nctx


def adaptive_bits(Qtr, Qev, tin_ev, A, prior_w):
    """Order-0 static prior (weight prior_w) + counts of the chunk so far, per channel (ideal
    arithmetic cost, no 10-bit rounding)."""
    C = Qtr.shape[1]
    cnt = np.zeros((C, A))
    np.add.at(cnt, (np.broadcast_to(np.arange(C), Qtr.shape), Qtr), 1)
    p0 = (cnt + 0.5) / (cnt + 0.5).sum(1, keepdims=True)
    starts = np.flatnonzero(tin_ev == 0)
    total = 0.0
    ar = np.arange(C)
    for s, e in zip(starts, list(starts[1:]) + [len(Qev)]):
        c = prior_w * p0.copy()
        for t in range(s, e):
            q = Qev[t]
            total += -np.log2(c[ar, q] / c.sum(1)).sum()
            c[ar, q] += 1
    return total


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "/tmp/kvsym"
    do_adaptive = "--adaptive" in sys.argv
    pairs = [tuple(map(int, l.split())) for l in open(f"{d}/pairs.txt")]
    tr, ev = load(d, "calib"), load(d, "eval")
    pos_tr, pos_ev = positions(tr[0]), positions(ev[0])
    n_ev = sum(len(i) for i in ev[0])
    C = ev[2][0].shape[2]
    S = ev[1][0].shape[0]
    elements = n_ev * C * S  # all slots, layer 0 (not sent at r0 levels) included
    # Repetition statistics (rows whose id occurred earlier).
    for k, name in ((1, "in the chunk"), (3, "in the chunk, same bigram"), (2, "in the context")):
        rows = sum((p[k] >= 0).sum() for p in pos_ev)
        print(f"# eval rows whose token id occurred earlier {name}: {rows / n_ev:.3f}")
    print(f"# eval: {n_ev} rows x {C} channels x {S} slots; calib: {sum(len(i) for i in tr[0])} rows")
    res = {}  # (slot, bins) -> {candidate: (bits, tables)}
    kb3, vb3 = LEVELS["L3 OC-r0"]
    l3_pairs = {(2 * l + p, b) for l in range(len(kb3)) for p, b in ((0, kb3[l]), (1, vb3[l])) if b}
    doc_base, doc_rep = np.zeros(n_ev), np.zeros(n_ev)  # L3 bits per eval row
    for p, (slot, bins) in enumerate(pairs):
        m, A = bins // 2 - 1, bins - 1
        sc_tr = np.concatenate([s[slot] for s in tr[1]])
        edges = {k: np.quantile(sc_tr[sc_tr > 0], np.arange(1, k) / k) for k in (4, 8)}
        Qtr, ttr, rtr, stt = concat(*tr, pos_tr, p, slot)
        Qev, tev, rev, sev = concat(*ev, pos_ev, p, slot)
        ftr = features(Qtr, ttr, rtr, stt, m, A, edges)
        fev = features(Qev, tev, rev, sev, m, A, edges)
        r = {}
        for name in ftr:
            if name.startswith("_"):
                continue
            (ctr, nctx), (cev, _) = ftr[name], fev[name]
            r[name] = cost_bits(Qtr, ctr, nctx, Qev, cev, A)
        # Repetition: rows whose token id occurred earlier (in the chunk / context / as the same
        # bigram) take a table conditioned on that row's symbol q_rep in the same channel, per
        # channel (A contexts) or pooled over the slot's channels (A tables); the other rows keep
        # order-0 or the (a5) context. Both parts are disjoint contexts of one model.
        zero_tr, zero_ev = np.zeros_like(Qtr), np.zeros_like(Qev)
        for rname in ("chunk", "context", "chunk, bigram"):
            htr, qtr = ftr["_rep " + rname]
            hev, qev = fev["_rep " + rname]
            ntr, nev = ~htr, ~hev
            o0, _ = cost_bits(Qtr[ntr], zero_tr[ntr], 1, Qev[nev], zero_ev[nev], A)
            a5b, _ = cost_bits(Qtr[ntr], ftr["_a5"][0][ntr], 6, Qev[nev], fev["_a5"][0][nev], A)
            pc, _ = cost_bits(Qtr[htr], qtr[htr], A, Qev[hev], qev[hev], A)
            po, _ = cost_bits(Qtr[htr], qtr[htr], A, Qev[hev], qev[hev], A, per_channel=False)
            r[f"(c) repeat in {rname}: q_rep per ch, else order-0"] = (pc + o0, C * (A + 1))
            if rname == "chunk" and (slot, bins) in l3_pairs:
                doc_base += cost_bits(Qtr, zero_tr, 1, Qev, zero_ev, A, rows=True)[0]
                doc_rep[~hev] += cost_bits(Qtr[ntr], zero_tr[ntr], 1, Qev[nev], zero_ev[nev], A,
                                           rows=True)[0]
                doc_rep[hev] += cost_bits(Qtr[htr], qtr[htr], A, Qev[hev], qev[hev], A,
                                          per_channel=False, rows=True)[0]
            r[f"(c) repeat in {rname}: q_rep pooled, else order-0"] = (po + o0, A + C)
            r[f"(c)+(a5) repeat in {rname}: q_rep per ch, else prev 5+1"] = (pc + a5b, C * (A + 6))
            r[f"(c)+(a5) repeat in {rname}: q_rep pooled, else prev 5+1"] = (po + a5b, A + 6 * C)
        if do_adaptive:
            for w in (16, 64):
                r[f"(d) adaptive per chunk, prior weight {w} (ideal)"] = (
                    adaptive_bits(Qtr, Qev, tev, A, w), C)
        # Oracle: in-sample order-0 (eval's own tables), ideal entropy.
        cnt = np.zeros((C, A))
        np.add.at(cnt, (np.broadcast_to(np.arange(C), Qev.shape), Qev), 1)
        pr = cnt / cnt.sum(1, keepdims=True)
        r["oracle: eval's own order-0 entropy"] = (-(cnt * np.log2(np.where(cnt > 0, pr, 1))).sum(), 0)
        res[(slot, bins)] = r
        rep = ", ".join(f"{k[:22]} {v[0] / Qev.size:.3f}" for k, v in list(r.items())[:6])
        print(f"# slot {'KV'[slot & 1]}{slot // 2} bins {bins}: {rep}", flush=True)

    for h, (kname, vname) in HYBRIDS.items():
        for key, r in res.items():
            r[h] = r[vname if key[0] & 1 else kname]
    names = list(next(iter(res.values())).keys())
    print("\nPer long document, L3 payload bits/el: order-0 -> (c) repeat in chunk, pooled:")
    start = 0
    for k, ids in enumerate(ev[0]):
        sl, el = slice(start, start + len(ids)), len(ids) * C * S
        print(f"#   doc {k:2d}: ids repeated in chunk {(pos_ev[k][1] >= 0).mean():.2f}, "
              f"{doc_base[sl].sum() / el:.3f} -> {doc_rep[sl].sum() / el:.3f} "
              f"(-{(doc_base[sl].sum() - doc_rep[sl].sum()) / el:.3f})")
        start += len(ids)
    print("\nPayload bits/element (all 12 slots' elements), held-out long docs:")
    hdr = "| candidate | L3 tables (decode LUT, largest slot) | " + " | ".join(LEVELS) + " |"
    print(hdr)
    print("|" + " --- |" * (2 + len(LEVELS)))
    for name in names:
        cells = []
        for lv, (kb, vb) in LEVELS.items():
            tot = 0.0
            for layer in range(len(kb)):
                for part, b in ((0, kb[layer]), (1, vb[layer])):
                    if b:
                        tot += res[(2 * layer + part, b)][name][0]
            cells.append(f"{tot / elements:.4f}")
        kb3, vb3 = LEVELS["L3 OC-r0"]
        l3 = [res[(2 * l + p, b)][name][1] for l in range(len(kb3))
              for p, b in ((0, kb3[l]), (1, vb3[l])) if b]
        tabs = f"{sum(l3)} ({max(l3) * M // 1024} KB)"
        print(f"| {name} | {tabs} | " + " | ".join(cells) + " |")
    # All-in projection: the real coder's all-in size of the level (codec_sizes.txt, same chunks)
    # minus the payload saved against this script's order-0 model of it.
    allin = {}
    if os.path.exists(f"{d}/codec_sizes.txt"):
        for line in open(f"{d}/codec_sizes.txt"):
            if not line.startswith("#"):
                _, lname, tot, pay = line.split()[:4]
                allin[lname] = (float(tot), float(pay))
    print("\nAll-in bits/element projected = codec all-in - (order-0 model - candidate); "
          "P4 (no codec level): order-0 model + L3's side bits")
    print("| candidate | " + " | ".join(LEVELS) + " |")
    print("|" + " --- |" * (1 + len(LEVELS)))
    base = {}
    for lv, (kb, vb) in LEVELS.items():
        base[lv] = sum(res[(2 * l + p, b)]["order-0 (today)"][0] for l in range(len(kb))
                       for p, b in ((0, kb[l]), (1, vb[l])) if b) / elements
    side3 = allin["OC-r0"][0] - base["L3 OC-r0"] if "OC-r0" in allin else 0.0
    for name in names:
        cells = []
        for lv, (kb, vb) in LEVELS.items():
            tot = sum(res[(2 * l + p, b)][name][0] for l in range(len(kb))
                      for p, b in ((0, kb[l]), (1, vb[l])) if b) / elements
            key = lv.split()[-1]
            ref = allin[key][0] - base[lv] if key in allin else side3
            cells.append(f"{tot + ref:.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nPer slot at L3 (bits per element of the slot):")
    kb, vb = LEVELS["L3 OC-r0"]
    slots = [(2 * l + p, b) for l in range(len(kb)) for p, b in ((0, kb[l]), (1, vb[l])) if b]
    print("| candidate | " + " | ".join(f"{'KV'[s & 1]}{s // 2}/{b}" for s, b in slots) + " |")
    print("|" + " --- |" * (1 + len(slots)))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{res[k][name][0] / (n_ev * C):.3f}" for k in slots) + " |")


if __name__ == "__main__":
    main()
