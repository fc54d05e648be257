"""The Learn page: a guided tour of token reduction, one step at a time, on one short example.

Each step says in plain words what happens, gives the formula from docs/methods.md, and shows it on
real data (the default model) or on a small picture. Computation lives in ``pyramid``; this page
only arranges and explains it.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from pyramid.core.loading import DEFAULT_MODEL, ModelLoadError
from pyramid.core.schedule import Schedule, encoder_flops
from pyramid.present.teaching import layer_attention, soft_mask_curves, toy_kcenter

from .resources import get_model, on_torch
from .settings import load_settings

EXAMPLE = "even horror fans will most likely not find what they 're seeking ; the movie lacks both thrills and humor ."

STEPS = ("1 · Tokens and layers", "2 · The pyramid schedule", "3 · Core-set: covering balls",
         "4 · Attention significance and LTP", "5 · AdapLeR's predictors", "6 · TR-BERT's policy", "7 · Token Dropping",
         "8 · Merge, not drop", "9 · Train-Select", "10 · Measuring honestly")

REFERENCES = """
**Papers**

* Huang, Khetan, Bidart, Karnin. *Pyramid-BERT: Reducing Complexity via Successive Core-set based Token
  Selection.* ACL 2022 (arXiv 2203.14380).
* Modarressi, Mohebbi, Pilehvar. *AdapLeR: Speeding up Inference by Adaptive Length Reduction.* ACL 2022
  (arXiv 2203.08991).
* Ye, Lin, Huang, Sun. *TR-BERT: Dynamic Token Reduction for Accelerating BERT Inference.* NAACL 2021
  (arXiv 2105.11618).
* Hou et al. *Token Dropping for Efficient BERT Pretraining.* ACL 2022 (arXiv 2203.13240).
* Goyal et al. *PoWER-BERT: Accelerating BERT Inference via Progressive Word-vector Elimination.* ICML 2020.
* Sener and Savarese. *Active Learning for Convolutional Neural Networks: A Core-Set Approach.* ICLR 2018
  (greedy k-center as a core-set).
* Jain and Wallace. *Attention is not Explanation.* NAACL 2019.
* Bolya, Fu, Dai, Zhang, Feichtenhofer, Hoffman. *Token Merging: Your ViT But Faster.* ICLR 2023 (ToMe).
* Marin, Chang, Ranjan, Prabhu, Rastegari, Tuzel. *Token Pooling in Vision Transformers for Image
  Classification.* WACV 2023.
"""


@st.cache_data(show_spinner=False)
def _toy_kcenter(n: int, k: int, seed: int) -> dict:
    return toy_kcenter(n, k, seed)


def _kcenter_figure(toy: dict) -> go.Figure:
    pts, keep, r = toy["points"], toy["keep"], toy["radius"]
    fig = go.Figure()
    for rank, i in enumerate(toy["order"], start=1):
        x, y = pts[i]
        fig.add_shape(type="circle", x0=x - r, y0=y - r, x1=x + r, y1=y + r, line=dict(color="#1f77b4", width=1),
                      fillcolor="rgba(31,119,180,0.08)")
        fig.add_annotation(x=x, y=y, text=str(rank), showarrow=False, yshift=12, font=dict(size=11, color="#0b2e4f"))
    dropped = ~keep
    for i in np.flatnonzero(dropped):
        j = toy["nearest"][i]
        fig.add_trace(go.Scatter(x=[pts[i, 0], pts[j, 0]], y=[pts[i, 1], pts[j, 1]], mode="lines",
                                 line=dict(color="#ff7f0e", width=1), showlegend=False, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=pts[dropped, 0], y=pts[dropped, 1], mode="markers", name="dropped",
                             marker=dict(symbol="x", color="#ff7f0e", size=8)))
    fig.add_trace(go.Scatter(x=pts[keep, 0], y=pts[keep, 1], mode="markers", name="kept (centres)",
                             marker=dict(color="#1f77b4", size=11)))
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=30, b=10), yaxis=dict(scaleanchor="x"),
                      title=f"Greedy k-center, k = {len(toy['order'])}: coverage radius {r:.2f}")
    return fig


def _penalty_figure() -> go.Figure:
    n, eta = 20, 0.25
    data = soft_mask_curves(n, eta)
    fig = go.Figure()
    for lam, y in data["curves"].items():
        fig.add_trace(go.Scatter(x=data["x"], y=y, mode="lines", name=f"λ = {lam:g}"))
    fig.add_vline(x=data["delta"], line_dash="dash", annotation_text="δ = η / n")
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="predicted contribution p",
                      yaxis_title="soft keep-mask exp(S(p))", title=f"Soft removal (n = {n}, η = {eta})")
    return fig


@st.cache_data(show_spinner=False)
def _layer1_attention(_encoder, model_name: str, text: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Tokens, head-mean attention of layer 1 ``(N, N)`` and PoWER significance ``(N,)``."""
    return on_torch(layer_attention, _encoder, text, 1)


def render() -> None:
    """Draw the Learn page."""
    settings = load_settings()
    st.title("Pyramid Lens · learn")
    st.caption("A guided tour, one step at a time: what an encoder computes, how each method chooses tokens, and "
               "how to measure what it costs. Formulas follow `docs/methods.md`; the papers are cited at the end.")
    try:
        encoder = get_model(DEFAULT_MODEL, settings.allow_hub).encoder
    except ModelLoadError as exc:
        st.error(f"Could not load the default model: {exc}")
        return
    step = st.radio("Step", STEPS, horizontal=True, key="learn_step", label_visibility="collapsed")
    cfg = encoder.config
    L = encoder.num_layers
    tokens = encoder.tokenizer.convert_ids_to_tokens(encoder.tokenizer(EXAMPLE)["input_ids"])
    n = len(tokens)

    if step == STEPS[0]:
        st.subheader("Tokens and layers")
        st.markdown(
            f"The text is cut into **word pieces** (tokens); `[CLS]` is added at the start and `[SEP]` at the end. "
            f"Our example has **{n} tokens**:")
        st.html("<div style='font-family:monospace;line-height:2'>" + " ".join(
            f"<span style='border:1px solid #9cc3ea;background:#cfe3f7;border-radius:3px;padding:1px 4px'>"
            f"{html.escape(t)}</span>" for t in tokens) + "</div>")
        st.markdown(
            f"Each token becomes a vector of {cfg.hidden_size} numbers (its *hidden state*). The encoder has "
            f"**{L} layers**; every layer updates every token's vector by looking at all the others "
            "(**self-attention**: each token takes a weighted average of the others' values, the weights being "
            "softmax-normalised dot products) and then passing it through a small two-layer network (**FFN**):")
        st.latex(r"A = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_h}}\right),\quad "
                 r"H' = \mathrm{LN}(H + A V W_O),\quad H'' = \mathrm{LN}(H' + \mathrm{FFN}(H'))")
        st.markdown(
            "Attention compares every pair of tokens, so its cost grows with the **square** of the number of "
            "tokens n; the rest grows linearly. A classifier reads only the `[CLS]` vector after the last layer. "
            "**Token reduction** drops tokens between layers so that later layers compute less.")
    elif step == STEPS[1]:
        st.subheader("The pyramid schedule")
        st.markdown(
            "Pyramid-BERT keeps fewer tokens after each layer, shrinking by the same factor every time, from the "
            "start layer s on, so that the last layer receives a share ρ (the **final retention ratio**) of the "
            "tokens (docs/methods.md 1.3, as its FLOPs table computes it):")
        st.latex(r"\ell_j = \left\lceil n\,\rho^{(j-s+1)/(L-s)} \right\rceil,\qquad s \le j \le L-1")
        c1, c2 = st.columns(2)
        rho = c1.slider("ρ", 0.1, 1.0, 0.3, 0.05, key="learn_rho", help="Final retention ratio.")
        s = c2.slider("s", 1, max(2, L - 1), 1, key="learn_s", help="Start layer: the first layer after which tokens are dropped.")
        sch = Schedule(retention=rho, start_layer=int(s))
        n_demo = 128
        alive = sch.alive_lengths(n_demo, L)
        full = encoder_flops([n_demo] * L, cfg)
        pyr = encoder_flops(alive, cfg)
        st.dataframe(pd.DataFrame({"layer": list(range(1, L + 1)), "tokens entering": alive}).set_index("layer").T,
                     key="learn-sched")
        st.markdown(f"For a {n_demo}-token text this encoder does **{full / 1e9:.2f} GFLOPs** at full length and "
                    f"**{pyr / 1e9:.2f} GFLOPs** with the pyramid: a FLOPs speedup of **{full / pyr:.2f}x** "
                    "(before the selector's own cost). FLOPs per layer on m tokens (docs/methods.md 0.3):")
        st.latex(r"c(m) = m\,(8d^2 + 4df) + 4m^2 d + \ldots")
        st.caption("With only 6 layers and selection from layer 1, the speedup tops out near 2.3x at ρ = 0.1; "
                   "Pyramid-BERT's 3-3.5x is for 12-layer BERT-base.")
    elif step == STEPS[2]:
        st.subheader("Core-set selection: greedy k-center")
        st.markdown(
            "Which tokens to keep? Pyramid-BERT keeps a **core-set**: a few tokens whose hidden states are close to "
            "every dropped token's state, so the kept set still *represents* the whole sequence. Greedy k-center "
            "starts from `[CLS]` and repeatedly adds the token **furthest** from everything kept so far "
            "(docs/methods.md 1.2):")
        st.latex(r"c_{t+1} = \arg\max_{i}\ \min_{c \in C_t} \lVert h_i - h_c \rVert_2,\qquad "
                 r"r(C) = \max_i \min_{c\in C} \lVert h_i - h_c\rVert_2")
        k = st.slider("centres k", 1, 12, 5, key="learn_k")
        toy = _toy_kcenter(40, int(k), 0)
        st.plotly_chart(_kcenter_figure(toy), key="learn-kc", width="stretch")
        st.caption("Forty points in 2-D instead of 384-D hidden states. Numbers give the order in which centres were "
                   "chosen. Every point lies within the **coverage radius** r of a centre (the balls); greedy "
                   "furthest-point selection guarantees r is at most twice the best possible radius for k centres. "
                   "Outliers are picked early: k-center covers, it does not rank by importance.")
    elif step == STEPS[3]:
        st.subheader("Attention significance (PoWER-BERT)")
        st.markdown("A simpler rule: keep the tokens that receive the most attention. The **significance** of "
                    "token t at a layer sums the attention every other token pays to it, averaged over heads "
                    "(docs/methods.md 5.1):")
        st.latex(r"\mathrm{sig}(t) = \frac{1}{H}\sum_{h=1}^{H}\sum_{i \ne t} A_h[i, t]")
        toks, att, sig = _layer1_attention(encoder, DEFAULT_MODEL, EXAMPLE)
        labels = [f"{i}:{t}" for i, t in enumerate(toks)]
        fig = go.Figure(go.Heatmap(z=att, x=labels, y=labels, colorscale="Blues", colorbar=dict(title="A")))
        fig.update_layout(height=480, margin=dict(l=10, r=10, t=30, b=10), yaxis=dict(autorange="reversed"),
                          title="Layer 1 attention, mean over heads (rows attend to columns)")
        st.plotly_chart(fig, key="learn-att", width="stretch")
        top = np.argsort(-sig)[:5]
        st.markdown("Highest significance at layer 1: " + ", ".join(f"`{html.escape(toks[i])}`" for i in top) + ".")
        st.caption("Column sums of this matrix (without the diagonal) are the significance. Attention often piles "
                   "onto [CLS], [SEP] and punctuation. Attention weights say where the model looks, not why it "
                   "decides (Jain and Wallace, 2019).")
        st.markdown(
            "**LTP** (Learned Token Pruning, Kim et al. 2022) uses the same signal without a schedule: after each "
            "layer a token stays if the attention it receives, averaged, is above a **learned threshold** for that "
            "layer (docs/methods.md 5.2). The thresholds are trained with soft masks, "
            "σ((s − θ)/T), multiplying each token's output, then frozen while the model adapts to hard pruning; each "
            "text ends up with its own lengths.")
        st.latex(r"s_j(t) = \frac{1}{H N_{ref}} \sum_h \sum_i A_h[i, t],\qquad \text{keep } t \iff s_j(t) \ge \theta_j")
    elif step == STEPS[4]:
        st.subheader("AdapLeR: learned contribution predictors")
        st.markdown(
            "AdapLeR trains a tiny network per layer (hidden → 32 → GELU → 1, softmax over the alive tokens) to "
            "**predict each token's saliency**, i.e. how much the prediction depends on it (gradient × input, "
            "docs/methods.md 2.2-2.4). Before layer l+1 a token stays if its predicted share is at least a learned "
            "fraction η of the uniform share:")
        st.latex(r"s_i = \left\lVert \frac{\partial z_y}{\partial E_i} \odot E_i \right\rVert_2,\qquad "
                 r"\text{keep } i \iff \hat p^{\,l}_i \ge \frac{\eta_l}{n_l}")
        st.markdown("In training, removal is *soft*: below the threshold a token's attention is faded out by "
                    "exp(S(p)), which gets steeper as the temperature λ rises each epoch:")
        st.plotly_chart(_penalty_figure(), key="learn-pen", width="stretch")
        try:
            from pyramid.core.selectors.adapler import load_predictors

            _, cfg_a = load_predictors()
            eta = cfg_a.training.get("eta")
            st.markdown(f"The shipped predictors (`{cfg_a.name}`, trained against the frozen `{cfg_a.head}` model) "
                        "learned η = " + ", ".join(f"{e:.2f}" for e in eta) + " for CP0..CP5. Lengths differ per "
                        "text: no schedule, the threshold decides. The Train-Select regime's AdapLeR was trained "
                        "**jointly**: the encoder (LoRA), the classifier, the predictors and η in the same steps, as "
                        "the authors' code does (docs/methods.md 8.1).")
        except ValueError:
            st.info("AdapLeR predictors are not installed: `python -m pyramid train-adapler` trains them.")
    elif step == STEPS[5]:
        st.subheader("TR-BERT: a policy network trained with reinforcement learning")
        st.markdown(
            "TR-BERT puts a small **policy network** at two points of the encoder (after layer 1 and after the "
            "middle layer). It gives each token a probability of staying, π(keep | h). Training samples several "
            "keep/drop choices per text and rewards those that keep the task loss low with few tokens "
            "(**REINFORCE**, docs/methods.md 3.2):")
        st.latex(r"R = -\mathcal{L}_{task} - \alpha\,\frac{\#\text{kept}}{n},\qquad "
                 r"\nabla J = \mathbb{E}\big[(R - \bar R)\,\nabla \log \pi(a \mid h)\big]")
        st.markdown("In the explorer, the **TR-BERT** selector runs the shipped policies: after layers 1 and 3 a token "
                    "stays if π ≥ 0.5. In the inference-only regime the policies were trained with the encoder frozen "
                    "(the RL phase); in the Train-Select regime a **joint phase** followed, in which the encoder, the "
                    "classifier and the policies learn together, the classifier imitating the full-length model's "
                    "predictions (docs/methods.md 3.3, 8.2).")
    elif step == STEPS[6]:
        st.subheader("Token Dropping: leave the middle layers, rejoin at the end")
        st.markdown(
            "Token Dropping (a *pre-training* method) skips unimportant tokens in the **middle** layers only: "
            "all tokens pass the first layers, the important ones continue through the middle, and the dropped "
            "tokens **rejoin** before the last layer with the states they had when they left (docs/methods.md 4.1). "
            "Importance is a running average of each vocabulary word's masked-language-model loss (4.2).")
        st.markdown("In the explorer, the **Token Dropping** selector uses the shipped importance table (built with "
                    "`python -m pyramid train-token-dropping`): after layer 2 it keeps the share ρ of tokens with "
                    "the highest MLM-loss importance; layer 3 is the cross layer; the others rejoin before layer 6 "
                    "(green in the token pyramid). Its paper's claim is pre-training compute (about 25% less on "
                    "BERT-base); here it serves classification.")
    elif step == STEPS[7]:
        _merge_step()
    elif step == STEPS[8]:
        _train_select_step()
    else:
        st.subheader("Measuring honestly")
        st.markdown(
            "* **Accuracy vs retention**: does the prediction survive? Compare with the full-length model "
            "(*agreement*) and with the labels (*accuracy*).\n"
            "* **FLOPs speedup**: analytic, counting the selector's own cost (the Gram matrix of k-center, the "
            "predictors' MLPs).\n"
            "* **Measured speedup**: wall time on this machine; gathering tokens, Python overhead and slower "
            "kernels can eat into the FLOPs prediction (`python -m pyramid bench`).\n"
            "* **Inference-only vs Train-Select**: a model that never saw dropped tokens suffers more than one "
            "fine-tuned with its selector in the loop (step 8); compare methods within the same regime.\n"
            "* **At matched speedup**: a learned selector sets its own lengths, so compare it with the others at "
            "the same FLOPs speedup, not the same ρ.\n\n"
            "The **Benchmarks** page has all of these for SST-2 and IMDB, with the commands that made them.")
    with st.expander("Papers"):
        st.markdown(REFERENCES)


def _train_select_step() -> None:
    """What Train-Select is, with the numbers of the shipped result files (none hard-coded here)."""
    from pyramid.analysis.results import RESULTS_DIR, accuracy_at_speedup, load_eval_results
    from pyramid.core.selectors import SELECTORS

    st.subheader("Train-Select: fine-tune with the selection in the loop")
    st.markdown(
        "A model fine-tuned on full sequences has never seen a sequence with holes in it. Every paper here fine-tunes "
        "its model **with its own selection active**, in training exactly as at inference: Pyramid-BERT keeps its "
        "core-set in the forward pass, AdapLeR trains the encoder together with its predictors, TR-BERT ends with a "
        "joint phase, LTP trains with soft then hard masks. Pyramid Lens shows every selector in two regimes: "
        "**inference-only** (the full-length `sst2-lora` model, selection added at inference) and **Train-Select** "
        "(a model fine-tuned from `sst2-lora` with that selector in the loop; docs/methods.md 8). For the "
        "fixed-schedule selectors one model serves every retention: each training step also runs the smallest and "
        "two random sub-models and teaches them to agree with the full one (LengthDrop, Kim and Cho 2021).")
    results, _ = load_eval_results(RESULTS_DIR)
    res = next((r for r in results if r.dataset == "sst2-dev" and not r.head), None)
    if res is None:
        st.info("No result file with both regimes is installed (`bash scripts/make_results.sh` makes it).")
        return
    rows = res.rows
    table = []
    for name, cls in SELECTORS.items():
        line = {"selector": cls.label}
        for regime, col in (("inference", "inference-only"), ("train-select", "Train-Select")):
            for x in (1.6, 2.0):
                acc = accuracy_at_speedup(rows, name, x, regime)
                line[f"{col} at {x:g}x"] = "" if acc is None else f"{100 * acc:.1f}%"
        table.append(line)
    st.markdown(f"Accuracy on SST-2 dev at the same FLOPs speedup, in both regimes (full length: "
                f"{100 * (res.full_accuracy or 0):.1f}%); blank where a selector does not reach that speedup:")
    st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch", key="learn-ts")
    st.caption("From the shipped result file (the Benchmarks page has every point and the command that made it).")


def _merge_step() -> None:
    """Merge vs drop: ToMe's bipartite soft matching, the size-weighted mean and proportional attention."""
    st.subheader("Merge, not drop: ToMe and core-set pooling")
    st.markdown(
        "Dropping throws a token's state away. **Merging** keeps its information: the token is averaged into a "
        "similar kept token, which from then on stands for both. A **size** `s` (how many original tokens a state "
        "stands for) travels with the states; a merge replaces the target by the size-weighted mean "
        "(docs/methods.md 10.1):")
    st.latex(r"x_t \leftarrow \frac{s_t\,x_t + \sum_{i \to t} s_i\,x_i}{s_t + \sum_{i \to t} s_i},\qquad "
             r"s_t \leftarrow s_t + \sum_{i \to t} s_i")
    st.markdown(
        "So that a merged state weighs as much as the tokens inside it, **proportional attention** adds "
        "`log s` to every later attention logit towards it:")
    st.latex(r"A = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_h}} + \log s\right)")
    st.markdown(
        "**ToMe** (Bolya et al., ICLR 2023) chooses what to merge by **bipartite soft matching**: the alive tokens "
        "are split alternately into sets A and B; each A token finds its most similar B token, by the cosine of "
        "the layer's attention keys averaged over heads; the `r` best-matched A tokens merge into their partners. "
        "It is cheap (one `|A| x |B|` product, no iteration) and needs no training. [CLS] is never merged, and "
        "nothing merges into it: the classifier reads it. Where the schedule asks for more than half of a layer's "
        "tokens, the matching runs again on what is left (docs/methods.md 10.2).")
    st.latex(r"\mathrm{sim}(a, b) = \frac{\bar k_a \cdot \bar k_b}{\lVert \bar k_a\rVert\,\lVert \bar k_b\rVert},"
             r"\quad \bar k = \tfrac1H \textstyle\sum_h k_h,\qquad a \to \arg\max_b \mathrm{sim}(a, b)")
    st.markdown(
        "**Core-set pooling** (the idea of Token Pooling, Marin et al., WACV 2023) keeps Pyramid-BERT's k-center "
        "centres and merges every dropped token into the centre that covers it: each kept token becomes the mean "
        "of its cluster. Its coverage radius is the same notion as for dropping: the largest distance from a "
        "token to the kept token that represents it (docs/methods.md 10.4).")
    st.markdown(
        "In the explorer, choose **ToMe** or **Core-set pooling**: merged tokens are violet (hover says which "
        "token absorbed them), a kept token that stands for several shows its size as a subscript, and the "
        "embeddings view joins each merged token to its absorber. Compare **Core-set** with **Core-set pooling** "
        "on the same text to see drop against merge; the Benchmarks page compares them at equal FLOPs speedup.")
