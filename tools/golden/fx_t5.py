"""Encoder-decoder parity fixtures: a small mT5 v1.1 / T5 PEGASUS, written here in PyTorch with
Hugging Face's state-dict names (transformers is not needed), small sizes and fixed weights.

Two fixtures in packages/models/test/fixtures/, with the same weights and inputs:
  t5_pegasus  bert4keras's T5 PEGASUS: the decoder's cross-attention also adds a position bias from
              the decoder's table (unidirectional buckets of encoder_pos - decoder_pos), and the
              logits are lm_head(decoder_output * d_model ** -0.5);
  mt5_hf      Hugging Face's MT5ForConditionalGeneration: no bias in EncDecAttention, no scale on the
              (untied) head.

A third, t5_generate.json, holds reference generations by t5_pegasus's weights (see GENERATION below).

Each holds the weights under their HF names ("shared.weight" the one input embedding of both stacks,
"lm_head.weight" untied), the inputs ("input.*"), the outputs ("out.*": encoder and decoder after
their final norms, logits, the loss, the position biases), the gradient of the loss with respect to
every parameter ("grad.<name>") and, in the metadata, the config and the losses of ten
torch.optim.AdamW steps, laid out as fx_models.py lays out its fixtures. Everything runs in float32
(no dropout).

Conventions, as HF's T5: RMSNorm x * rsqrt(mean(x^2) + eps) * w; attention scores q k^T with no
1/sqrt(d) scale plus the relative position bias [1, H, Tq, Tk] (T5Attention._relative_position_bucket,
table only in block 0 of each stack, shared by all its layers); masked keys -inf by masked_fill;
gated GELU FFN wo(gelu_tanh(wi_0 h) * wi_1 h); pre-norm residual blocks. Loss: mean cross-entropy
over the positions where decoder_mask is 1.
"""
import copy
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

import common

OUT = os.path.join(common.ROOT, "packages", "models", "test", "fixtures")
NEG = float("-inf")

BASE = dict(model_type="mt5", vocab_size=96, d_model=32, d_kv=8, num_heads=4, d_ff=48, num_layers=2,
            num_decoder_layers=2, relative_attention_num_buckets=32, relative_attention_max_distance=128,
            layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0,
            pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
B, TS, TD = 2, 9, 7
ENC_LENGTHS = [9, 6]
DEC_LENGTHS = [7, 4]


def relative_position_bucket(relative_position, bidirectional, num_buckets, max_distance):
    """HF's T5Attention._relative_position_bucket, step for step (relative_position = key - query)."""
    relative_buckets = 0
    if bidirectional:
        num_buckets //= 2
        relative_buckets += (relative_position > 0).to(torch.long) * num_buckets
        relative_position = torch.abs(relative_position)
    else:
        relative_position = -torch.min(relative_position, torch.zeros_like(relative_position))
    max_exact = num_buckets // 2
    is_small = relative_position < max_exact
    relative_position_if_large = max_exact + (
        torch.log(relative_position.float() / max_exact)
        / math.log(max_distance / max_exact)
        * (num_buckets - max_exact)
    ).to(torch.long)
    relative_position_if_large = torch.min(relative_position_if_large,
                                           torch.full_like(relative_position_if_large, num_buckets - 1))
    relative_buckets += torch.where(is_small, relative_position, relative_position_if_large)
    return relative_buckets


def check_buckets():
    rel = torch.tensor([-300, -128, -64, -20, -16, -9, -8, -7, -1, 0, 1, 7, 8, 9, 16, 20, 64, 128, 300])
    bi = relative_position_bucket(rel, True, 32, 128).tolist()
    uni = relative_position_bucket(rel, False, 32, 128).tolist()
    assert bi == [15, 15, 14, 10, 10, 8, 8, 7, 1, 0, 17, 23, 24, 24, 26, 26, 30, 31, 31], bi
    assert uni == [31, 31, 26, 17, 16, 9, 8, 7, 1, 0] + [0] * 9, uni


def position_bias(table, q_len, k_len, bidirectional, c):
    """table[bucket(key_pos - query_pos)] as [1, H, q_len, k_len]."""
    rel = torch.arange(k_len)[None, :] - torch.arange(q_len)[:, None]
    buckets = relative_position_bucket(rel, bidirectional, c["relative_attention_num_buckets"],
                                       c["relative_attention_max_distance"])
    return table(buckets).permute(2, 0, 1).unsqueeze(0)


class T5LayerNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return common.rms_norm_ref(x, self.weight, self.eps)


class T5Attention(nn.Module):
    def __init__(self, c, has_bias):
        super().__init__()
        self.heads, self.d_kv = c["num_heads"], c["d_kv"]
        inner = self.heads * self.d_kv
        self.q = nn.Linear(c["d_model"], inner, bias=False)
        self.k = nn.Linear(c["d_model"], inner, bias=False)
        self.v = nn.Linear(c["d_model"], inner, bias=False)
        self.o = nn.Linear(inner, c["d_model"], bias=False)
        if has_bias:
            self.relative_attention_bias = nn.Embedding(c["relative_attention_num_buckets"], self.heads)

    def forward(self, x, kv, keep, bias):
        """x [B, Tq, d], kv [B, Tk, d], keep [B, 1 or Tq, Tk] bool, bias [1, H, Tq, Tk] or None."""
        Bn = x.shape[0]
        split = lambda t: t.view(Bn, -1, self.heads, self.d_kv).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q(x)), split(self.k(kv)), split(self.v(kv))
        s = q @ k.transpose(-1, -2)  # no 1/sqrt(d_kv)
        if bias is not None:
            s = s + bias
        s = s.masked_fill(~keep[:, None], NEG)
        o = torch.softmax(s, -1) @ v
        return self.o(o.transpose(1, 2).reshape(Bn, -1, self.heads * self.d_kv))


class T5DenseGatedActDense(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.wi_0 = nn.Linear(c["d_model"], c["d_ff"], bias=False)
        self.wi_1 = nn.Linear(c["d_model"], c["d_ff"], bias=False)
        self.wo = nn.Linear(c["d_ff"], c["d_model"], bias=False)

    def forward(self, h):
        return self.wo(F.gelu(self.wi_0(h), approximate="tanh") * self.wi_1(h))


class T5LayerSelfAttention(nn.Module):
    def __init__(self, c, has_bias):
        super().__init__()
        self.SelfAttention = T5Attention(c, has_bias)
        self.layer_norm = T5LayerNorm(c["d_model"], c["layer_norm_epsilon"])

    def forward(self, x, keep, bias):
        h = self.layer_norm(x)
        return x + self.SelfAttention(h, h, keep, bias)


class T5LayerCrossAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.EncDecAttention = T5Attention(c, False)
        self.layer_norm = T5LayerNorm(c["d_model"], c["layer_norm_epsilon"])

    def forward(self, x, enc, keep, bias):
        return x + self.EncDecAttention(self.layer_norm(x), enc, keep, bias)


class T5LayerFF(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.DenseReluDense = T5DenseGatedActDense(c)
        self.layer_norm = T5LayerNorm(c["d_model"], c["layer_norm_epsilon"])

    def forward(self, x):
        return x + self.DenseReluDense(self.layer_norm(x))


class T5Block(nn.Module):
    def __init__(self, c, decoder, has_bias):
        super().__init__()
        layers = [T5LayerSelfAttention(c, has_bias)]
        if decoder:
            layers.append(T5LayerCrossAttention(c))
        layers.append(T5LayerFF(c))
        self.layer = nn.ModuleList(layers)

    def forward(self, x, keep, bias, enc=None, cross_keep=None, cross_bias=None):
        x = self.layer[0](x, keep, bias)
        if enc is not None:
            x = self.layer[1](x, enc, cross_keep, cross_bias)
        return self.layer[-1](x)


class T5Stack(nn.Module):
    """Blocks and the final norm; the embedding (shared) lives on the model, as HF saves it."""

    def __init__(self, c, decoder):
        super().__init__()
        n = c["num_decoder_layers"] if decoder else c["num_layers"]
        self.block = nn.ModuleList([T5Block(c, decoder, i == 0) for i in range(n)])
        self.final_layer_norm = T5LayerNorm(c["d_model"], c["layer_norm_epsilon"])

    @property
    def table(self):
        return self.block[0].layer[0].SelfAttention.relative_attention_bias

    def forward(self, x, keep, bias, enc=None, cross_keep=None, cross_bias=None):
        for blk in self.block:
            x = blk(x, keep, bias, enc, cross_keep, cross_bias)
        return self.final_layer_norm(x)


class T5ForConditionalGeneration(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.shared = nn.Embedding(c["vocab_size"], c["d_model"])
        self.encoder = T5Stack(c, decoder=False)
        self.decoder = T5Stack(c, decoder=True)
        self.lm_head = nn.Linear(c["d_model"], c["vocab_size"], bias=False)

    def forward(self, ids, mask, dec_ids, dec_mask, labels):
        c = self.c
        ts, td = ids.shape[1], dec_ids.shape[1]
        enc_bias = position_bias(self.encoder.table, ts, ts, True, c)
        enc = self.encoder(self.shared(ids), mask[:, None, :], enc_bias)
        dec_bias = position_bias(self.decoder.table, td, td, False, c)
        causal = torch.tril(torch.ones(td, td, dtype=torch.bool))
        dec_keep = causal[None] & dec_mask[:, None, :]
        # bert4keras: keys are encoder positions, queries decoder positions, the decoder's table
        cross_bias = position_bias(self.decoder.table, td, ts, False, c) if c["cross_position_bias"] else None
        dec = self.decoder(self.shared(dec_ids), dec_keep, dec_bias, enc, mask[:, None, :], cross_bias)
        logits = self.lm_head(dec * c["d_model"] ** -0.5 if c["scale_logits"] else dec)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="none")
        m = dec_mask.reshape(-1).float()
        loss = (ce * m).sum() / m.sum()
        outs = {"encoder": enc, "decoder": dec, "logits": logits, "encoder_bias": enc_bias.detach(),
                "decoder_bias": dec_bias.detach()}
        if cross_bias is not None:
            outs["cross_bias"] = cross_bias.detach()
        return loss, outs


def init_weights(model, seed):
    """Norm weights 1 + N(0, 0.1) (a wrong norm shows), shared and the position tables N(0, 1)."""
    g = common.generator(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.copy_(1.0 + common.randn(g, *p.shape, scale=0.1))
            elif "relative_attention_bias" in name or name == "shared.weight":
                p.copy_(common.randn(g, *p.shape, scale=1.0))
            elif name == "lm_head.weight":
                # logits of std ~0.5 with the d_model ** -0.5 scale, ~2.8 without
                p.copy_(common.randn(g, *p.shape, scale=0.5))
            else:
                # std 0.2 (~1/sqrt(d_model)): O(1) activations, attention not saturated (no 1/sqrt(d_kv))
                p.copy_(common.randn(g, *p.shape, scale=0.2))


def save(name, model, inputs, args, meta):
    common.save_model_fixture(OUT, name, model, inputs, args, meta)


def lengths_mask(lengths, n):
    mask = torch.zeros(len(lengths), n, dtype=torch.bool)
    for b, L in enumerate(lengths):
        mask[b, :L] = True
    return mask


def batch(seed):
    g = common.generator(seed)
    V = BASE["vocab_size"]
    mask = lengths_mask(ENC_LENGTHS, TS)
    ids = torch.randint(2, V, (B, TS), generator=g).masked_fill(~mask, BASE["pad_token_id"])
    dec_mask = lengths_mask(DEC_LENGTHS, TD)
    labels = torch.randint(2, V, (B, TD), generator=g).masked_fill(~dec_mask, BASE["pad_token_id"])
    # teacher forcing: decoder_start_token_id, then the labels shifted right; padding after each length
    start = torch.full((B, 1), BASE["decoder_start_token_id"], dtype=torch.long)
    dec_ids = torch.cat([start, labels[:, :-1]], 1).masked_fill(~dec_mask, BASE["pad_token_id"])
    return ids, mask, dec_ids, dec_mask, labels


check_buckets()
torch.manual_seed(0)

ids, mask, dec_ids, dec_mask, labels = batch(11)
inputs = {"ids": ids.int(), "mask": mask.to(torch.uint8), "decoder_ids": dec_ids.int(),
          "decoder_mask": dec_mask.to(torch.uint8), "labels": labels.int()}
args = (ids, mask, dec_ids, dec_mask, labels)

# T5 PEGASUS (bert4keras): cross-attention position bias, scaled logits
cfg = dict(BASE, cross_position_bias=True, scale_logits=True)
model = T5ForConditionalGeneration(cfg)
init_weights(model, 12)
pegasus = copy.deepcopy(model).eval()  # the fixture's weights (save() trains model afterwards); no random draws
save("t5_pegasus", model, inputs, args, {"name": "t5_pegasus", "config": cfg})

# A checkpoint directory as the published T5 PEGASUS weights come (config.json + pytorch_model.bin, a
# torch.save zip of transformers' state dict, whose stacks hold the shared table again as
# embed_tokens): T5ForConditionalGeneration.fromPretrained must load it with one call.
def save_release_layout(folder, m, config, **dump):
    """config.json and pytorch_model.bin (transformers' state dict with its embed_tokens copies)."""
    os.makedirs(folder, exist_ok=True)
    state = {k: v.detach().clone() for k, v in m.state_dict().items()}
    state["encoder.embed_tokens.weight"] = state["shared.weight"]
    state["decoder.embed_tokens.weight"] = state["shared.weight"]
    torch.save(state, os.path.join(folder, "pytorch_model.bin"))
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, **dump)
        f.write("\n")


save_release_layout(os.path.join(OUT, "t5_pegasus_checkpoint"), pegasus, dict(BASE, architectures=["T5ForConditionalGeneration"]), indent=1)

# Hugging Face mT5: the same weights and inputs, no cross bias, no scale
cfg = dict(BASE, cross_position_bias=False, scale_logits=False)
model = T5ForConditionalGeneration(cfg)
init_weights(model, 12)
save("mt5_hf", model, inputs, args, {"name": "mt5_hf", "config": cfg})

# SCALED: the two published sizes of ALGORITHMS.md §4.1 scaled down, as checkpoint directories laid
# out as the release's (its config.json keys, with the sizes divided; pytorch_model.bin with the
# embed_tokens copies): base 12 + 12 layers of 12 heads, small 8 + 8 layers of 6 heads whose
# heads x d_kv (12) is not d_model (16), as the real small's 384 is not 512. Each directory's
# expected.safetensors holds inputs long enough for the logarithmic buckets and the logits and
# encoder output PyTorch computes from them (the release's config has no cross_position_bias or
# scale_logits keys: the T5 PEGASUS defaults, on).
SCALED = {
    "base": dict(d_ff=64, d_kv=2, d_model=24, num_decoder_layers=12, num_heads=12, num_layers=12),
    "small": dict(d_ff=32, d_kv=2, d_model=16, num_decoder_layers=8, num_heads=6, num_layers=8),
}
RELEASE = dict(architectures=["T5ForConditionalGeneration"], decoder_start_token_id=0, dropout_rate=0.1, eos_token_id=1,
               feed_forward_proj="gated-gelu", initializer_factor=1.0, is_encoder_decoder=True, layer_norm_epsilon=1e-6,
               model_type="mt5", output_past=True, pad_token_id=0, relative_attention_num_buckets=32,
               tie_word_embeddings=False, tokenizer_class="T5Tokenizer", vocab_size=64)


@torch.no_grad()
def write_scaled(size, sizes, seed):
    release = dict(RELEASE, **sizes)
    cfg = dict(release, relative_attention_max_distance=128, cross_position_bias=True, scale_logits=True, dropout_rate=0.0)
    m = T5ForConditionalGeneration(cfg)
    init_weights(m, seed)
    m.eval()
    g = common.generator(seed + 1)
    ts, td, lengths, dec_lengths = 40, 20, [40, 23], [20, 11]
    mask, dec_mask = lengths_mask(lengths, ts), lengths_mask(dec_lengths, td)
    ids = torch.randint(2, cfg["vocab_size"], (2, ts), generator=g).masked_fill(~mask, 0)
    dec_ids = torch.randint(2, cfg["vocab_size"], (2, td), generator=g).masked_fill(~dec_mask, 0)
    _, outs = m(ids, mask, dec_ids, dec_mask, dec_ids.long())
    folder = os.path.join(OUT, f"t5_pegasus_{size}_scaled")
    save_release_layout(folder, m, release, indent=2, sort_keys=True)
    size_b = common.write_safetensors(os.path.join(folder, "expected.safetensors"), {
        "ids": ids.int(), "mask": mask.to(torch.uint8), "decoder_ids": dec_ids.int(), "decoder_mask": dec_mask.to(torch.uint8),
        "logits": outs["logits"], "encoder": outs["encoder"]})
    print(f"wrote {folder} (expected.safetensors {size_b} bytes)")


for i, (size, sizes) in enumerate(SCALED.items()):
    write_scaled(size, sizes, 30 + i)

# GENERATION: t5_generate.json, reference decoding by the t5_pegasus weights, written plainly with the
# decoder recomputed in full on every token so far at every step (no cache: kexue's KV-cached decoder
# must equal it). Scores are ln(softmax(logits) + 1e-12) in float32, as bert4keras's; the search
# draws nothing random.
MAX_NEW = 8


@torch.no_grad()
def encode(m, ids, mask):
    ts = ids.shape[1]
    return m.encoder(m.shared(ids), mask[:, None, :], position_bias(m.encoder.table, ts, ts, True, m.c))


@torch.no_grad()
def next_scores(m, enc, mask, dec_ids):
    """[B, V] float32 log-probs of the next token after dec_ids [B, T], the decoder run on all T."""
    c, td, ts = m.c, dec_ids.shape[1], enc.shape[1]
    causal = torch.tril(torch.ones(td, td, dtype=torch.bool))[None]
    cross_bias = position_bias(m.decoder.table, td, ts, False, c) if c["cross_position_bias"] else None
    dec = m.decoder(m.shared(dec_ids), causal, position_bias(m.decoder.table, td, td, False, c), enc,
                    mask[:, None, :], cross_bias)
    logits = m.lm_head(dec * c["d_model"] ** -0.5 if c["scale_logits"] else dec)[:, -1]
    return torch.log(torch.softmax(logits.float(), -1) + 1e-12)


def hold_end(scores, n_generated, end_id, min_new):
    if n_generated < min_new:
        scores = scores.clone()
        scores[:, end_id] = NEG
    return scores


def greedy(m, ids, mask, end_id, min_new):
    """Rows decoded together; a row stops after its end token (later steps ignore it)."""
    enc = encode(m, ids, mask)
    start = m.c["decoder_start_token_id"]
    seqs = [[start] for _ in range(ids.shape[0])]
    done = [False] * ids.shape[0]
    for n in range(MAX_NEW):
        if all(done):
            break
        scores = hold_end(next_scores(m, enc, mask, torch.tensor(seqs)), n, end_id, min_new)
        for b in range(ids.shape[0]):
            tok = end_id if done[b] else int(scores[b].argmax())  # a finished row pads with end_id
            seqs[b].append(tok)
            if not done[b] and tok == end_id:
                done[b] = True
    outs = []
    for s in seqs:
        s = s[1:]
        outs.append(s[: s.index(end_id) + 1] if end_id in s else s)
    return outs


def beam(m, ids, end_id, k, min_new):
    """bert4keras's AutoRegressiveDecoder.beam_search for one row (ids [1, S], no padding); returns the
    output, its score and how many finished candidates were dropped along the way."""
    mask = torch.ones_like(ids, dtype=torch.bool)
    enc = encode(m, ids, mask)
    start = m.c["decoder_start_token_id"]
    beams, beam_scores = [[start]], torch.zeros(1)
    dropped = 0
    for n in range(MAX_NEW):
        live = len(beams)
        scores = hold_end(next_scores(m, enc.expand(live, -1, -1), mask.expand(live, -1), torch.tensor(beams)),
                          n, end_id, min_new)
        flat = (beam_scores[:, None] + scores).reshape(-1)  # float32
        vocab = scores.shape[1]
        # global top-k over beams x vocab, by score descending, ties to the lower flattened index
        order = sorted(range(flat.numel()), key=lambda i: (-float(flat[i]), i))[:k]
        beams = [beams[i // vocab] + [i % vocab] for i in order]
        beam_scores = flat[torch.tensor(order)]
        if n + 1 >= min_new:
            if beams[0][-1] == end_id:
                return beams[0][1:], float(beam_scores[0]), dropped
            keep = [j for j, s in enumerate(beams) if s[-1] != end_id]
            dropped += len(beams) - len(keep)
            beams, beam_scores = [beams[j] for j in keep], beam_scores[torch.tensor(keep)]
            k = len(keep)
    best = int(torch.argmax(beam_scores))  # the first of equal maxima (the list is sorted)
    return beams[best][1:], float(beam_scores[best]), dropped


def generation_cases(m, ids, mask, end_id):
    cases = []
    for row, L in enumerate(ENC_LENGTHS):
        row_ids = ids[row: row + 1, :L]
        for mode, k, min_new in [("greedy", 1, 0), ("greedy", 1, 3), ("beam", 2, 0), ("beam", 3, 0), ("beam", 3, 3)]:
            case = dict(row=row, mode=mode, beams=k, min_new_tokens=min_new, input_ids=row_ids[0].tolist())
            if mode == "greedy":
                case["output"] = greedy(m, row_ids, torch.ones_like(row_ids, dtype=torch.bool), end_id, min_new)[0]
            else:
                case["output"], case["score"], case["_dropped"] = beam(m, row_ids, end_id, k, min_new)
            cases.append(case)
    return cases


def early(case, end_id):
    return case["output"][-1:] == [end_id] and len(case["output"]) < MAX_NEW


def at_max(case, end_id):
    return len(case["output"]) == MAX_NEW and case["output"][-1] != end_id


def good_end_id(cases, end_id, strict):
    """Some greedy and some beam run stop early and some run reaches MAX_NEW; strict also asks that
    min_new_tokens 3 change some greedy and some beam result (so the minimum is exercised) and that
    some beam run drop a finished candidate that was not the best (so the pruning is exercised)."""
    ok = (any(early(c, end_id) for c in cases if c["mode"] == "greedy")
          and any(early(c, end_id) for c in cases if c["mode"] == "beam")
          and any(at_max(c, end_id) for c in cases))
    if ok and strict:
        def differs(mode, k):
            pairs = {}
            for c in cases:
                if c["mode"] == mode and c["beams"] == k:
                    pairs.setdefault(c["row"], {})[c["min_new_tokens"]] = c["output"]
            return any(p[0] != p[3] for p in pairs.values())
        ok = differs("greedy", 1) and differs("beam", 3) and any(c.get("_dropped") for c in cases)
    return ok


def write_generations(m):
    by_id = {}
    end_id = None
    for strict in (True, False):  # candidates 2..95 in order; the first that fits, strict first
        for cand in range(2, BASE["vocab_size"]):
            if cand not in by_id:
                by_id[cand] = generation_cases(m, ids, mask, cand)
            if good_end_id(by_id[cand], cand, strict):
                end_id = cand
                break
        if end_id is not None:
            break
    assert end_id is not None, "no end_id fits"
    cases = by_id[end_id]
    dropped = [c.pop("_dropped", 0) for c in cases]
    batched = greedy(m, ids, mask, end_id, 0)
    for row in range(B):
        want = next(c["output"] for c in cases if c["row"] == row and c["mode"] == "greedy" and c["min_new_tokens"] == 0)
        assert batched[row] == want, (row, batched[row], want)
    doc = {"end_id": end_id, "max_new_tokens": MAX_NEW, "cases": cases,
           "batched_greedy": {"input_ids": ids.tolist(), "mask": mask.to(torch.int64).tolist(), "outputs": batched}}
    path = os.path.join(OUT, "t5_generate.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {path} (end_id {end_id}, strict {strict}, {len(cases)} cases)")
    for c, d in zip(cases, dropped):
        print(f"  row {c['row']} {c['mode']} k={c['beams']} min={c['min_new_tokens']}: {c['output']} "
              f"len {len(c['output'])} {'early' if early(c, end_id) else 'max' if at_max(c, end_id) else 'end at max'}"
              + (f" score {c['score']:.6f} dropped {d}" if "score" in c else ""))
    print(f"  batched greedy: {batched}")


write_generations(pegasus)
