"""Replay of ggml's graph allocator (ggml-alloc.c) over a llama-style decoder graph: a research tool.

Re-implements, from reading ggml-alloc.c (no code copied), the rules that decide the CPU compute buffer:
leafs (graph inputs) are allocated first and the unused `inp_embd` input is never freed; nodes are
allocated in graph order with best fit over the free blocks (the last block may grow the buffer); a
node whose op may run in place (ggml_op_can_inplace) reuses its first source when that source is owned
by the allocator, is not a view, not a graph output, has the same layout and no other consumer; a
tensor is freed after its last consumer, a view's source after the view's last consumer; graph outputs
are never freed; every size is padded to the buffer alignment (32 B on the CPU). The graph is built
the way llama.cpp's llama / qwen3 (qk-norm) graph builds it (src/models/llama.cpp, llm_graph_context
build_attn / build_attn_mha / build_ffn). Used to check which terms the closed-form compute model in
facts/_estimate.py needs; not used by the package.

    python bench/accuracy/graph_sim.py --embd 64 --head 4 --head-kv 4 --head-dim 16 --ff 64 --vocab 384 \\
        --ctx 2048 --ubatch 512 --fa
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

ALIGN = 32
INPLACE = {"add", "mul", "scale", "rms_norm", "rope", "soft_max", "unary"}


def pad(n: int, to: int = ALIGN) -> int:
    return (n + to - 1) // to * to


@dataclass(eq=False)
class T:
    """One ggml tensor: bytes, op, sources; a view names the tensor it views."""

    name: str
    nbytes: int
    op: str = "none"
    src: list[T] = field(default_factory=list)
    view_of: T | None = None
    is_input: bool = False
    is_output: bool = False
    layout: tuple = ()  # (type, shape) for the same-layout test of in-place reuse


class Allocator:
    """ggml_dyn_tallocr with one chunk: sorted free blocks, best fit, the last block grows the buffer."""

    def __init__(self) -> None:
        self.free: list[list[int]] = [[0, 1 << 62]]
        self.max_size = 0

    def alloc(self, size: int) -> int:
        size = pad(size)
        best, best_size = -1, None
        for i, (_, bsize) in enumerate(self.free[:-1]):
            if bsize >= size and (best_size is None or bsize <= best_size):
                best, best_size = i, bsize
        if best < 0:
            best = len(self.free) - 1
        block = self.free[best]
        addr = block[0]
        block[0] += size
        block[1] -= size
        if block[1] == 0:
            del self.free[best]
        self.max_size = max(self.max_size, addr + size)
        return addr

    def release(self, addr: int, size: int) -> None:
        size = pad(size)
        for i, block in enumerate(self.free):
            if block[0] + block[1] == addr:
                block[1] += size
                if i + 1 < len(self.free) and block[0] + block[1] == self.free[i + 1][0]:
                    block[1] += self.free[i + 1][1]
                    del self.free[i + 1]
                return
            if addr + size == block[0]:
                block[0] = addr
                block[1] += size
                if i > 0 and self.free[i - 1][0] + self.free[i - 1][1] == block[0]:
                    self.free[i - 1][1] += block[1]
                    del self.free[i]
                return
        pos = 0
        while pos < len(self.free) and self.free[pos][0] < addr:
            pos += 1
        self.free.insert(pos, [addr, size])


class Graph:
    """Nodes in the order ggml_build_forward_expand visits them (sources depth-first, left to right)."""

    def __init__(self) -> None:
        self.nodes: list[T] = []
        self.leafs: list[T] = []
        self.seen: set[int] = set()

    def expand(self, t: T) -> T:
        if id(t) in self.seen:
            return t
        for s in t.src:
            self.expand(s)
        self.seen.add(id(t))
        (self.leafs if t.op == "none" and t.view_of is None else self.nodes).append(t)
        return t


def allocate(g: Graph, trace: list | None = None) -> int:
    """Peak buffer size of ggml_gallocr_alloc_graph_impl for graph `g` (one CPU buffer).

    `trace` (a list) receives (node name, buffer size after it, {live tensor name: (offset, bytes)}) each
    time the buffer grows."""
    a = Allocator()
    addr: dict[int, int] = {}
    own: set[int] = set()
    children: dict[int, int] = {}
    views: dict[int, int] = {}

    def allocate_node(t: T) -> None:
        if t.nbytes == 0 or t.view_of is not None or id(t) in own or id(t) in addr:
            return
        own.add(id(t))
        if t.op in INPLACE:
            for p in t.src:
                if (id(p) in own and p.view_of is None and not p.is_output and p.layout == t.layout
                        and children.get(id(p), 0) == 1 and views.get(id(p), 0) == 0):
                    addr[id(t)] = addr.pop(id(p))
                    own.discard(id(p))
                    return
        addr[id(t)] = a.alloc(t.nbytes)

    def free_node(t: T) -> None:
        if t.is_output or id(t) not in own:
            return
        a.release(addr.pop(id(t)), t.nbytes)
        own.discard(id(t))

    for leaf in g.leafs:
        if leaf.is_input:
            allocate_node(leaf)
    for n in g.nodes:
        if n.view_of is not None and n.op != "none":
            views[id(n.view_of)] = views.get(id(n.view_of), 0) + 1
        for s in n.src:
            children[id(s)] = children.get(id(s), 0) + 1
    names = {id(t): t for t in g.leafs + g.nodes}
    for n in g.nodes:
        before = a.max_size
        allocate_node(n)
        if trace is not None and a.max_size > before:
            trace.append((n.name, a.max_size, {names[k].name: (v, names[k].nbytes) for k, v in addr.items()}))
        for p in n.src:
            children[id(p)] -= 1
            if children[id(p)] == 0 and views.get(id(p), 0) == 0:
                if p.view_of is not None:
                    v = p.view_of
                    views[id(v)] -= 1
                    if views[id(v)] == 0 and children.get(id(v), 0) == 0:
                        free_node(v)
                else:
                    free_node(p)
    return a.max_size


@dataclass
class Shape:
    embd: int
    head: int
    head_kv: int
    head_dim: int
    ff: int
    vocab: int
    n_layer: int = 2
    qk_norm: bool = False
    n_expert: int = 0  # MoE FFN (qwen3moe): router over n_expert, n_used experts of width ff_exp
    n_used: int = 0
    ff_exp: int = 0


def build_llama(m: Shape, *, n_tok: int, n_kv: int, n_stream: int, fa: bool, k_type: str, v_type: str,
                v_idx_width: int, k_rot: int = 0, v_rot: int = 0, n_out: int | None = None) -> Graph:
    """The llama / qwen3 decoder graph of one worst-case prompt ubatch (llama.cpp's build order).

    `n_tok` is the ubatch rounded up to a multiple of the slots (graph_reserve), `n_out` the outputs
    (the unrounded ubatch): the last layer continues with the output rows only (inp_out_ids)."""
    n_out = n_out or n_tok
    f32 = 4
    g = Graph()

    def t(name, nbytes, op, *src, layout=None, **kw):
        return T(name, nbytes, op, list(src), layout=layout or (name.split("-")[0], nbytes), **kw)

    def view(of, name="view"):  # ggml: a view of a view shares the first view's source
        return T(name, 0, "view", [of], view_of=of.view_of or of)

    E, Q = m.embd * n_tok * f32, m.head * m.head_dim * n_tok * f32
    K = m.head_kv * m.head_dim * n_tok * f32
    weight = T("w", 0)
    tokens = T("inp_tokens", n_tok * 4, is_input=True)
    embd = t("embd", E, "get_rows", weight, tokens, layout=("act", E))
    g.expand(embd)
    g.expand(T("inp_embd", E, is_input=True))
    pos = T("inp_pos", n_tok * 4, is_input=True)
    k_idxs = T("k_idxs", n_tok * 8, is_input=True)
    v_idxs = T("v_idxs", n_tok * 8 * (v_idx_width if not fa else 1), is_input=True)
    mask = T("kq_mask", n_kv * n_tok * (2 if fa else 4), is_input=True)  # [n_kv, n_tok / n_stream, 1, n_stream]
    out_ids = T("out_ids", n_out * 4, is_input=True)
    cache = T("cache", 0)
    rot_k = T("k_rot", k_rot * k_rot * 4, is_input=True) if k_rot else None
    rot_v = T("v_rot", v_rot * v_rot * 4, is_input=True) if v_rot else None

    def hadamard(x, rot, nbytes, name):  # llama_mul_mat_hadamard: reshape (a view) + mul_mat + reshape
        return view(t(name, nbytes, "mul_mat", rot, view(x)))

    def moe(cur, n_tok):  # llm_graph_context::build_moe_ffn, softmax gating, normalised weights
        E = m.embd * n_tok * f32
        X, W = m.n_expert * n_tok * f32, m.n_used * n_tok * f32
        logits = t("moe_logits", X, "mul_mat", weight, cur)
        probs = t("moe_probs", X, "soft_max", logits, layout=("probs", X))
        logits.layout = ("probs", X)
        sel = view(t("moe_argsort", X, "argsort", probs))
        w = t("moe_weights", W, "get_rows", view(probs), sel)
        wsum = t("moe_wsum", n_tok * f32, "sum_rows", view(w))
        wsum2 = t("moe_wsum_c", n_tok * f32, "clamp", wsum)
        w = view(t("moe_wnorm", W, "div", view(w), wsum2, layout=("w", W)))
        g.expand(w)
        x = view(cur)
        U = m.ff_exp * m.n_used * n_tok * f32
        up = t("moe_up", U, "mul_mat_id", weight, x, sel)
        gate = t("moe_gate", U, "mul_mat_id", weight, x, sel)
        act = t("moe_swiglu", U, "glu", gate, up)
        ex = t("moe_down", m.n_used * E, "mul_mat_id", weight, act, sel, layout=("ex", m.n_used * E))
        ex = t("moe_weighted", m.n_used * E, "mul", ex, w, layout=("ex", m.n_used * E))
        g.expand(ex)
        views = [view(ex) for _ in range(m.n_used)]
        for v_ in views:
            g.expand(v_)
        out = views[0]
        for v_ in views[1:]:
            out = t("moe_out", E, "add", out, v_, layout=("act", E))
            g.expand(out)
        return out

    inp = embd
    for il in range(m.n_layer):
        norm = t("norm", E, "rms_norm", inp, layout=("act", E))
        cur = t("attn_norm", E, "mul", norm, weight, layout=("act", E))
        q = t("q", Q, "mul_mat", weight, cur)
        if m.qk_norm:
            q = t("qn", Q, "rms_norm", view(q), layout=("q", Q))
            q = t("qn", Q, "mul", q, weight, layout=("q", Q))
        q = t("q_rope", Q, "rope", q if m.qk_norm else view(q), pos, layout=("q", Q))
        v = t("v", K, "mul_mat", weight, cur)
        k = t("k", K, "mul_mat", weight, cur)
        if m.qk_norm:
            k = t("kn", K, "rms_norm", view(k), layout=("k", K))
            k = t("kn", K, "mul", k, weight, layout=("k", K))
        k = t("k_rope", K, "rope", k if m.qk_norm else view(k), pos, layout=("k", K))
        v = view(v)  # the reshaped V
        if rot_k:
            q = hadamard(q, rot_k, Q, "q_rot")
            k = hadamard(k, rot_k, K, "k_rot")
        if rot_v:
            v = hadamard(v, rot_v, K, "v_rot")
        g.expand(q)
        g.expand(v)
        g.expand(k)
        g.expand(T("set_k", 0, "set_rows", [view(cache), view(k), k_idxs], view_of=cache))
        g.expand(T("set_v", 0, "set_rows", [view(cache), view(v), v_idxs], view_of=cache))
        qv = view(view(q))
        kc, vc = view(view(cache)), view(view(cache))
        if fa:
            if k_type == "f32":
                kc = t("k_f16", n_kv * n_stream * m.head_kv * m.head_dim * 2, "cpy", kc)
            if v_type == "f32":
                vc = t("v_f16", n_kv * n_stream * m.head_kv * m.head_dim * 2, "cpy", vc)
            att = t("fa", Q, "flash_attn", qv, kc, vc, mask)
        else:
            kq = t("kq", n_kv * n_tok * m.head * f32, "mul_mat", kc, qv)
            kq = t("kq_sm", kq.nbytes, "soft_max", kq, mask, layout=("kq", kq.nbytes))
            kq.layout = ("kq", kq.nbytes)
            kqv = t("kqv", Q, "mul_mat", vc, kq)
            att = t("kqv_cont", Q, "cont", view(kqv))
        att = view(att)
        if rot_v:
            att = hadamard(att, rot_v, Q, "o_rot")
        out = t("attn_out", E, "mul_mat", weight, att, layout=("act", E))
        res, nt = inp, n_tok
        if il == m.n_layer - 1:
            nt, E = n_out, m.embd * n_out * f32
            out = t("get_rows", E, "get_rows", out, out_ids, layout=("act", E))
            res = t("get_rows", E, "get_rows", inp, out_ids, layout=("act", E))
        ffn_inp = t("ffn_inp", E, "add", out, res, layout=("act", E))
        norm = t("norm", E, "rms_norm", ffn_inp, layout=("act", E))
        cur = t("ffn_norm", E, "mul", norm, weight, layout=("act", E))
        if m.n_expert:
            down = moe(cur, nt)
        else:
            F = m.ff * nt * f32
            gate = t("gate", F, "mul_mat", weight, cur)
            up = t("up", F, "mul_mat", weight, cur)
            act = t("swiglu", F, "glu", gate, up)
            down = t("down", E, "mul_mat", weight, act, layout=("act", E))
        inp = t("l_out", E, "add", down, ffn_inp, layout=("act", E))
        g.expand(inp)
    norm = t("norm", E, "rms_norm", inp, layout=("act", E))
    rn = t("result_norm", E, "mul", norm, weight, layout=("act", E), is_output=True)
    logits = t("result_output", m.vocab * n_out * f32, "mul_mat", weight, rn, is_output=True)
    g.expand(logits)
    return g


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("embd", "head", "head-kv", "head-dim", "ff", "vocab", "ctx", "ubatch"):
        ap.add_argument(f"--{name}", type=int, required=True)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--qk-norm", action="store_true")
    ap.add_argument("--fa", action="store_true")
    ap.add_argument("--ctk", default="f16")
    ap.add_argument("--ctv", default="f16")
    a = ap.parse_args()
    m = Shape(a.embd, a.head, a.head_kv, a.head_dim, a.ff, a.vocab, a.layers, a.qk_norm)
    n_kv = pad(a.ctx, 256)
    g = build_llama(m, n_tok=min(a.ubatch, a.ctx), n_kv=n_kv, n_stream=1, fa=a.fa, k_type=a.ctk, v_type=a.ctv,
                    v_idx_width=a.head_kv * a.head_dim)
    print(f"{allocate(g) / (1 << 20):.2f} MiB")


if __name__ == "__main__":
    main()
