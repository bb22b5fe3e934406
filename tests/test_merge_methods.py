"""The registered merging methods: each against a direct implementation of its
paper's formula on small tensors, the laws that relate them, the registry, the
streaming merge and the data hook."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tvcore import TaskVector
from tvcore.errors import UsageError
from tvcore.merging import METHODS, MergeSpec, diagonal_fisher, linear_input_grams, merge, method_named, select
from tvcore.merging.pcb import pcb_flat
from tvcore.merging.wudi import wudi_loss

from .strategies import seeds

M = METHODS


def rand(seed, *shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def vectors(seed, n=3, shapes=(("w", (5, 4)), ("b", (4,)))):
    return [TaskVector({k: rand(seed * 100 + i * 10 + j, *s) for j, (k, s) in enumerate(shapes)}, name=f"t{i}")
            for i in range(n)]


def np_(t):
    return t.detach().numpy()


def whitened(a):
    """``a (a^T a)^(-1/2)``: the orthonormal factor of ``a`` computed another way than
    tvcore's (eigen-decomposition, as the TSV authors' memory-reduced code)."""
    vals, vecs = np.linalg.eigh(a.T @ a)
    return a @ vecs @ np.diag(vals ** -0.5) @ vecs.T


def singular_values(t):
    return torch.linalg.svdvals(t.double())


matrices = st.tuples(st.integers(2, 7), st.integers(2, 7), st.integers(2, 4), seeds)


# ------------------------------------------------------------------ each method against its formula

def test_weight_averaging_is_the_mean_of_the_vectors():
    vs = vectors(1)
    out = M["weight-averaging"](vs)
    for k in ("w", "b"):
        torch.testing.assert_close(out[k], (vs[0][k] + vs[1][k] + vs[2][k]) / 3)


def test_consensus_keeps_entries_that_two_tasks_deem_relevant():
    vs = vectors(2, n=4, shapes=(("w", (3, 3)),))
    out = M["consensus-ta"](vs, lam=0.5, k=2, tall_lambda=0.4)["w"]
    tau = [v["w"].numpy() for v in vs]
    mtl = sum(tau)
    expected = np.zeros_like(mtl)
    for i in range(3):
        for j in range(3):
            votes = sum(1 for t in tau if abs(t[i, j]) > 0.4 * abs(mtl[i, j] - t[i, j]))
            expected[i, j] = 0.5 * mtl[i, j] if votes >= 2 else 0.0
    np.testing.assert_allclose(np_(out), expected, rtol=1e-12, atol=1e-12)


def test_tsv_m_by_the_paper_steps():
    vs = vectors(3, n=3, shapes=(("w", (6, 9)), ("b", (6,))))
    out = M["tsv-m"](vs, lam=0.7)
    count = 6 // 3  # each task keeps 1/T of the rank
    us, ss, vs_ = [], [], []
    for v in vs:
        u, s, vh = np.linalg.svd(v["w"].numpy(), full_matrices=False)
        us.append(u[:, :count])
        ss.append(s[:count])
        vs_.append(vh[:count].T)
    u, v = whitened(np.hstack(us)), whitened(np.hstack(vs_))
    expected = 0.7 * u @ np.diag(np.concatenate(ss)) @ v.T
    np.testing.assert_allclose(np_(out["w"]), expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np_(out["b"]), 0.7 * sum(v["b"].numpy() for v in vs) / 3, rtol=1e-12)


def test_iso_c_by_the_paper_steps():
    vs = vectors(4, n=3, shapes=(("w", (7, 5)), ("b", (5,))))
    out = M["iso-c"](vs, lam=1.3)
    u, s, vh = np.linalg.svd(sum(v["w"].numpy() for v in vs), full_matrices=False)
    np.testing.assert_allclose(np_(out["w"]), 1.3 * s.mean() * u @ vh, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np_(out["b"]), 1.3 * sum(v["b"].numpy() for v in vs) / 3, rtol=1e-12)


def test_iso_cts_by_the_paper_steps():
    vs = vectors(5, n=2, shapes=(("w", (10, 8)),))
    out = M["iso-cts"](vs, lam=1.0, common=0.5)["w"]
    tau = [v["w"].numpy() for v in vs]
    k, per_task = 4, 2  # rank 8: a common subspace of 4, then 2 directions per task
    u, s, vh = np.linalg.svd(sum(tau), full_matrices=False)
    us, ss, vhs = [u[:, :k]], [s[:k]], [vh[:k].T]
    for t in tau:
        ut, st_, vht = np.linalg.svd(t - u[:, :k] @ u[:, :k].T @ t, full_matrices=False)
        us.append(ut[:, :per_task])
        ss.append(st_[:per_task])
        vhs.append(vht[:per_task].T)
    expected = np.concatenate(ss).mean() * whitened(np.hstack(us)) @ whitened(np.hstack(vhs)).T
    np.testing.assert_allclose(np_(out), expected, rtol=1e-8, atol=1e-8)


def test_pcb_by_the_released_steps():
    flat = rand(6, 3, 40)
    got = pcb_flat(flat, lam=1.2, density=0.25).numpy()
    x = flat.numpy()
    n, d = x.shape

    def minmax(a):
        return (a - a.min()) / (a.max() - a.min())

    scaled, clipped = [], []
    for i in range(n):
        mag = np.sort(np.abs(x[i]))
        a = np.clip(np.abs(x[i]), mag[int(d * 1e-4)], mag[int(d * (1 - 1e-4)) - 1])
        clipped.append(np.sign(x[i]) * a)
        beta = np.exp(n * minmax(a) ** 2) * np.tanh(x[i] * x.sum(axis=0))
        floor = np.sort(beta)[int(d * (1 - 0.25))]
        scaled.append(minmax(np.maximum(beta, floor)))
    expected = 1.2 * sum(b * c for b, c in zip(scaled, clipped)) / np.maximum(sum(scaled), 1e-12)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_pcb_keeps_about_the_density_of_each_vector():
    flat = rand(7, 2, 1000)
    vs = [TaskVector({"w": flat[i]}) for i in range(2)]
    out = M["pcb"](vs, density=0.1)["w"]
    # At most the union of each vector's kept 10% (the threshold entry itself weighs 0).
    assert 0 < int((out != 0).sum()) <= 200


def test_wudi_loss_is_the_papers_objective():
    stacked, merged = rand(8, 3, 4, 5), rand(9, 4, 5)
    direct = sum(float(np.linalg.norm((merged.numpy() - t) @ t.T) ** 2 / np.linalg.norm(t) ** 2)
                 for t in stacked.numpy())
    assert float(wudi_loss(merged, stacked)) == pytest.approx(direct, rel=1e-12)


def test_wudi_starts_from_task_arithmetic():
    vs = vectors(10)
    out = M["wudi"](vs, iterations=0)
    for k in ("w", "b"):
        torch.testing.assert_close(out[k], vs[0][k] + vs[1][k] + vs[2][k])


def test_wudi_lowers_the_interference_it_minimizes():
    vs = vectors(11, shapes=(("w", (6, 5)),))
    stacked = torch.stack([v["w"] for v in vs])
    out = M["wudi"](vs, lr=1e-2, iterations=50)["w"]
    assert float(wudi_loss(out, stacked)) < float(wudi_loss(stacked.sum(0), stacked))


def test_wudi_converges_to_a_stationary_point_of_its_objective():
    vs = vectors(12, shapes=(("w", (4, 6)),))
    stacked = torch.stack([v["w"] for v in vs])
    out = M["wudi"](vs, lr=3e-2, iterations=3000)["w"]
    # dL/dM = 2 sum_t (M - tau_t) tau_t^T tau_t / ||tau_t||^2, zero at the optimum.
    grad = sum(2 * (out - t) @ t.T @ t / t.pow(2).sum() for t in stacked)
    assert float(grad.abs().max()) < 1e-3 * float(stacked.abs().max())


def _psd(seed, n):
    a = rand(seed, 2 * n, n)
    return a.T @ a


def test_regmean_solves_the_least_squares_of_the_weights():
    pre = rand(13, 3, 4)
    vs = vectors(14, n=2, shapes=(("w", (3, 4)), ("b", (3,))))
    grams = [{"w": _psd(15, 4)}, {"w": _psd(16, 4)}]
    out = M["regmean"](vs, stats=grams, alpha=0.6)
    # On the weights, W = (sum_t W_t G~_t)(sum_t G~_t)^-1 with W_t = W_0 + tau_t.
    gs = [0.6 * g["w"].numpy() + 0.4 * np.diag(np.diag(g["w"].numpy())) for g in grams]
    weights = [pre.numpy() + v["w"].numpy() for v in vs]
    merged = sum(w @ g for w, g in zip(weights, gs)) @ np.linalg.inv(sum(gs))
    np.testing.assert_allclose(np_(out["w"]), merged - pre.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np_(out["b"]), (vs[0]["b"] + vs[1]["b"]).numpy() / 2, rtol=1e-12)


def test_regmean_averages_the_columns_of_inputs_no_task_saw():
    vs = vectors(19, n=2, shapes=(("w", (3, 4)),))
    grams = []
    for i in range(2):
        g = _psd(20 + i, 4)
        g[2, :], g[:, 2] = 0, 0  # feature 2 is always zero
        grams.append({"w": g})
    out = M["regmean"](vs, stats=grams)["w"]
    torch.testing.assert_close(out[:, 2], (vs[0]["w"][:, 2] + vs[1]["w"][:, 2]) / 2)


def test_fisher_merging_is_the_fisher_weighted_average_of_the_weights():
    pre = rand(17, 6)
    vs = [TaskVector({"w": rand(18 + i, 6)}) for i in range(3)]
    fishers = [{"w": rand(30 + i, 6).abs()} for i in range(3)]
    out = M["fisher"](vs, stats=fishers, weights=(1.0, 2.0, 0.5))["w"]
    lam = (1.0, 2.0, 0.5)
    thetas = [pre + v["w"] for v in vs]
    num = sum(l * f["w"] * t for l, f, t in zip(lam, fishers, thetas))
    den = sum(l * f["w"] for l, f in zip(lam, fishers))
    torch.testing.assert_close(out, num / den - pre)


def test_fisher_floor_makes_uninformed_entries_an_average():
    vs = [TaskVector({"w": rand(40 + i, 5)}) for i in range(2)]
    zero = [{"w": torch.zeros(5, dtype=torch.float64)} for _ in range(2)]
    torch.testing.assert_close(M["fisher"](vs, stats=zero)["w"], (vs[0]["w"] + vs[1]["w"]) / 2)


# ------------------------------------------------------------------ laws

@given(seeds, st.integers(1, 5))
def test_weight_averaging_is_task_arithmetic_at_one_over_t(seed, n):
    vs = vectors(seed % 10_000, n=n)
    avg, ta = M["weight-averaging"](vs), M["task-arithmetic"](vs, lam=1 / n)
    for k in ("w", "b"):
        torch.testing.assert_close(avg[k], ta[k], rtol=1e-12, atol=1e-12)


@given(seeds, st.integers(1, 5))
def test_ties_at_full_density_without_sign_election_is_the_sum(seed, n):
    vs = vectors(seed % 10_000, n=n)
    out = merge(vs, MergeSpec(trim=1.0, consensus="none"))
    for k in ("w", "b"):
        torch.testing.assert_close(out[k], sum(v[k] for v in vs), rtol=1e-12, atol=1e-12)


@given(seeds, st.floats(0.1, 2.0))
def test_dare_at_drop_rate_zero_is_task_arithmetic(seed, lam):
    vs = vectors(seed % 10_000)
    dare, ta = M["dare"](vs, drop=0.0, lam=lam, seed=seed), M["task-arithmetic"](vs, lam=lam)
    for k in ("w", "b"):
        assert torch.equal(dare[k], ta[k])


@pytest.mark.parametrize("name", ["iso-c", "iso-cts"])
@given(shape=matrices, x=st.floats(0.0, 1.0))
def test_isotropic_merges_have_a_flat_spectrum(name, shape, x):
    rows, cols, n, seed = shape
    vs = vectors(seed % 10_000, n=n, shapes=(("w", (rows, cols)),))
    hp = {"lam": 0.1 + 2.9 * x} if name == "iso-c" else {"common": x}
    s = singular_values(METHODS[name](vs, **hp)["w"])
    torch.testing.assert_close(s, torch.full_like(s, float(s.mean())), rtol=1e-9, atol=1e-12)


@given(st.integers(1, 3), st.integers(2, 4), st.integers(0, 3), seeds)
def test_tsv_m_of_tasks_in_orthogonal_subspaces_is_the_sum(per_task, n, extra_cols, seed):
    rows, cols = per_task * n, per_task * n + extra_cols
    q_rows = torch.linalg.qr(rand(seed % 10_000, rows, rows))[0]
    q_cols = torch.linalg.qr(rand(seed % 10_000 + 1, cols, cols))[0]
    vs = []
    for t in range(n):
        block = slice(t * per_task, (t + 1) * per_task)
        s = rand(seed % 10_000 + 2 + t, per_task).abs() + 0.1
        vs.append(TaskVector({"w": q_rows[:, block] @ torch.diag(s) @ q_cols[:, block].T}))
    torch.testing.assert_close(M["tsv-m"](vs)["w"], sum(v["w"] for v in vs), rtol=1e-9, atol=1e-9)


@given(seeds, st.floats(0.0, 1.0))
def test_regmean_with_identity_grams_is_averaging(seed, alpha):
    vs = vectors(seed % 10_000)
    grams = [{"w": torch.eye(4, dtype=torch.float64)} for _ in vs]
    out, avg = M["regmean"](vs, stats=grams, alpha=alpha), M["weight-averaging"](vs)
    for k in ("w", "b"):
        torch.testing.assert_close(out[k], avg[k], rtol=1e-12, atol=1e-12)


@given(seeds)
def test_regmean_with_one_shared_gram_is_averaging(seed):
    vs = vectors(seed % 10_000)
    shared = _psd(seed % 10_000 + 7, 4)
    out = M["regmean"](vs, stats=[{"w": shared}] * 3)["w"]
    torch.testing.assert_close(out, M["weight-averaging"](vs)["w"], rtol=1e-9, atol=1e-9)


@given(seeds)
def test_fisher_with_equal_fishers_is_averaging(seed):
    vs = vectors(seed % 10_000)
    f = {k: rand(seed % 10_000 + 3, *vs[0][k].shape).abs() for k in ("w", "b")}
    out, avg = M["fisher"](vs, stats=[f] * 3), M["weight-averaging"](vs)
    for k in ("w", "b"):
        torch.testing.assert_close(out[k], avg[k], rtol=1e-12, atol=1e-12)


@given(seeds, st.floats(0.0, 2.0))
def test_consensus_with_no_vote_needed_is_task_arithmetic(seed, lam):
    vs = vectors(seed % 10_000)
    out, ta = M["consensus-ta"](vs, k=0, lam=lam), M["task-arithmetic"](vs, lam=lam)
    for k in ("w", "b"):
        torch.testing.assert_close(out[k], ta[k], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", [n for n, m in METHODS.items() if m.scales_by_lam])
def test_methods_that_scale_by_lam_are_linear_in_it(name):
    vs = vectors(50)
    one, scaled = METHODS[name](vs, lam=1.0), METHODS[name](vs, lam=0.35)
    for k in ("w", "b"):
        torch.testing.assert_close(scaled[k], 0.35 * one[k], rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ registry and selection

def test_every_method_names_its_paper_and_selection_rule():
    for name, m in METHODS.items():
        assert m.name == name
        assert " et al." in m.citation or "&" in m.citation, name
        assert m.rule, name
        assert set(m.grid) <= set(m.defaults), name


def test_unknown_method_is_one_line_naming_the_known_ones():
    with pytest.raises(UsageError) as info:
        method_named("slerp")
    message = str(info.value)
    assert "\n" not in message and "'slerp'" in message and "tsv-m" in message and "regmean" in message


def test_unknown_hyperparameter_names_the_methods_own():
    with pytest.raises(UsageError, match="iso-cts: unknown hyperparameter density; its hyperparameters: lam, common"):
        METHODS["iso-cts"](vectors(1), density=0.2)


def test_data_dependent_methods_refuse_to_run_without_statistics():
    with pytest.raises(UsageError, match="regmean needs each task's grams"):
        METHODS["regmean"](vectors(1))
    with pytest.raises(UsageError, match="fisher: 2 fisher mappings for 3 vectors"):
        METHODS["fisher"](vectors(1), stats=[{}, {}])


def test_select_keeps_the_grid_point_with_the_best_validation_score():
    vs = vectors(60)
    target = 0.35 * (vs[0]["w"] + vs[1]["w"] + vs[2]["w"])
    chosen = select(METHODS["task-arithmetic"], vs, lambda m: -float((m["w"] - target).norm()))
    assert chosen.hyperparameters["lam"] == 0.35
    assert len(chosen.scores) == 21
    torch.testing.assert_close(chosen.merged["w"], target)


def test_select_searches_every_hyperparameter_of_the_grid():
    vs = vectors(61)
    chosen = select(METHODS["consensus-ta"], vs, lambda m: float(m["w"].sum()), grid={"tall_lambda": (0.2, 0.6),
                                                                                      "lam": (0.5, 1.0)})
    assert [p for p, _ in chosen.scores] == [{"lam": lam, "k": 2, "tall_lambda": t}
                                             for t in (0.2, 0.6) for lam in (0.5, 1.0)]
    best = max(chosen.scores, key=lambda ps: ps[1])
    assert chosen.hyperparameters == best[0]


# ------------------------------------------------------------------ streaming files

def _stats_for(name, vs):
    m = METHODS[name]
    if m.statistics == "grams":
        return [{"w": _psd(70 + i, 4)} for i in range(len(vs))]
    if m.statistics == "fisher":
        return [{k: rand(80 + i, *v[k].shape).abs() for k in v.keys()} for i, v in enumerate(vs)]
    return None


FAST = {"wudi": {"iterations": 5, "lr": 1e-3}}


@pytest.mark.parametrize("name", list(METHODS))
def test_streaming_a_method_over_files_equals_merging_in_memory(tmp_path, name):
    vs = [v.to(dtype=torch.float32) for v in vectors(90, n=3)]
    paths = [v.save(tmp_path / f"v{i}.safetensors") for i, v in enumerate(vs)]
    stats = _stats_for(name, vs)
    hp = FAST.get(name, {})
    METHODS[name].stream(paths, tmp_path / "m.safetensors", stats=stats, **hp)
    streamed, in_memory = TaskVector.load(tmp_path / "m.safetensors"), METHODS[name](vs, stats=stats, **hp)
    for k in ("w", "b"):
        torch.testing.assert_close(streamed[k], in_memory[k], rtol=1e-6, atol=1e-6)


def test_streaming_into_a_base_file_writes_base_plus_the_merge(tmp_path):
    from safetensors.torch import load_file, save_file

    vs = [v.to(dtype=torch.float32) for v in vectors(91, n=2)]
    base = {"w": rand(92, 5, 4).float(), "b": rand(93, 4).float(), "position_ids": torch.arange(3)}
    save_file(base, str(tmp_path / "base.safetensors"))
    paths = [v.save(tmp_path / f"v{i}.safetensors") for i, v in enumerate(vs)]
    METHODS["iso-c"].stream(paths, tmp_path / "out.safetensors", base=tmp_path / "base.safetensors", lam=1.4)
    out = load_file(str(tmp_path / "out.safetensors"))
    expected = METHODS["iso-c"](vs, lam=1.4).apply_to(base)
    assert torch.equal(out["position_ids"], base["position_ids"])
    for k in ("w", "b"):
        torch.testing.assert_close(out[k], expected[k])


# ------------------------------------------------------------------ the data hook

class Tiny(torch.nn.Module):
    """Two linear layers and a self-attention block, as in a ViT."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2 = torch.nn.Linear(4, 6), torch.nn.Linear(6, 3)
        self.attn = torch.nn.MultiheadAttention(6, 2, batch_first=True)

    def forward(self, x):  # x: (batch, tokens, 4)
        h = torch.relu(self.fc1(x))
        h = h + self.attn(h, h, h, need_weights=False)[0]
        return self.fc2(h).mean(dim=1)


def test_grams_are_the_inputs_inner_products_of_each_linear_layer():
    model = Tiny()
    batches = [rand(100 + i, 2, 5, 4).float() for i in range(3)]
    grams = linear_input_grams(model, batches, prefix="visual.")
    x = torch.cat(batches).reshape(-1, 4).double()
    h = torch.relu(model.fc1(torch.cat(batches))).detach()
    h2 = (h + model.attn(h, h, h, need_weights=False)[0]).detach().reshape(-1, 6).double()
    torch.testing.assert_close(grams["visual.fc1.weight"].double(), x.T @ x, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(grams["visual.attn.in_proj_weight"].double(),
                               h.reshape(-1, 6).double().T @ h.reshape(-1, 6).double(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(grams["visual.fc2.weight"].double(), h2.T @ h2, rtol=1e-5, atol=1e-4)


def test_attention_output_projection_has_no_gram_and_falls_back_to_the_mean():
    grams = linear_input_grams(Tiny(), [rand(110, 2, 5, 4).float()])
    assert "attn.out_proj.weight" not in grams
    assert set(grams) == {"fc1.weight", "fc2.weight", "attn.in_proj_weight"}


def test_grams_hooks_are_removed_afterwards():
    model = Tiny()
    linear_input_grams(model, [rand(111, 1, 2, 4).float()])
    assert not model.fc1._forward_hooks and not model.attn._forward_pre_hooks


def test_grams_of_the_openclip_image_encoder_cover_attention_inputs_and_the_mlp(tiny_model):
    encoder = tiny_model.image_encoder
    grams = linear_input_grams(encoder, [torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))])
    weights = encoder.state_dict()
    blocks = {k.split(".attn.")[0] for k in weights if k.endswith(".attn.in_proj_weight")}
    assert blocks and set(grams) == {f"{b}.{p}" for b in blocks
                                     for p in ("attn.in_proj_weight", "mlp.c_fc.weight", "mlp.c_proj.weight")}
    assert all(grams[k].shape == (weights[k].shape[1],) * 2 for k in grams)


def test_regmean_with_hooked_grams_minimizes_the_output_mismatch():
    """Jin et al.'s objective: sum_t ||X_t W^T - X_t W_t^T||^2 is stationary at the merge (alpha = 1)."""
    pre = torch.nn.Linear(5, 3, bias=False).double()
    tuned, grams, taus = [], [], []
    for t in range(3):
        m = torch.nn.Linear(5, 3, bias=False).double()
        m.weight.data = pre.weight.data + rand(120 + t, 3, 5)
        tuned.append(m)
        xs = [rand(130 + t, 16, 5) + t]  # each task its own input distribution
        grams.append(linear_input_grams(m, xs, dtype=torch.float64))
        taus.append(TaskVector({"weight": m.weight.data - pre.weight.data}))
    merged = pre.weight.data + METHODS["regmean"](taus, stats=grams, alpha=1.0)["weight"]
    grad = sum((merged - m.weight.data) @ g["weight"] for m, g in zip(tuned, grams))
    assert float(grad.abs().max()) < 1e-9 * float(sum(g["weight"].abs().max() for g in grams))


def test_empirical_fisher_of_softmax_regression_matches_its_closed_form():
    model = torch.nn.Linear(4, 3).double()
    x, y = rand(140, 10, 4), torch.tensor([0, 1, 2, 1, 0, 2, 2, 1, 0, 0])
    fisher = diagonal_fisher(model, [(x[:6], y[:6]), (x[6:], y[6:])], labels="empirical")
    p = torch.softmax(model(x), dim=-1).detach()
    residual = torch.nn.functional.one_hot(y, 3).double() - p  # d log p_y / d logits
    expected_w = (residual[:, :, None] * x[:, None, :]).pow(2).mean(0)
    torch.testing.assert_close(fisher["weight"].double(), expected_w, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(fisher["bias"].double(), residual.pow(2).mean(0), rtol=1e-5, atol=1e-7)


def test_sampled_fisher_is_seeded():
    model = torch.nn.Linear(4, 3)
    batches = [rand(150, 8, 4).float()]
    a, b = diagonal_fisher(model, batches, seed=1), diagonal_fisher(model, batches, seed=1)
    assert torch.equal(a["weight"], b["weight"])
    assert set(a) == {"weight", "bias"}


# ------------------------------------------------------------------ the command line

def _saved(tmp_path, vs):
    return [str(v.save(tmp_path / f"v{i}.safetensors")) for i, v in enumerate(vs)]


def test_cli_merges_with_a_registered_method_and_its_hyperparameters(tmp_path):
    from tvcore.cli import main

    vs = [v.to(dtype=torch.float32) for v in vectors(200)]
    out = tmp_path / "m.safetensors"
    assert main(["vector", "merge", *_saved(tmp_path, vs), "-o", str(out), "--method", "iso-cts",
                 "--hp", "common=0.5", "--lam", "1.2"]) == 0
    expected = METHODS["iso-cts"](vs, common=0.5, lam=1.2)
    for k in ("w", "b"):
        torch.testing.assert_close(TaskVector.load(out)[k], expected[k])


def test_a_statistics_file_is_written_like_every_tvcore_file(tmp_path):
    import os

    from tvcore.merging import read_statistics, save_statistics
    from tvcore.outputs import file_mode

    path = tmp_path / "grams.safetensors"
    save_statistics({"w": _psd(220, 3).float()}, path)
    assert os.stat(path).st_mode & 0o777 == file_mode()
    assert [p.name for p in tmp_path.iterdir()] == ["grams.safetensors"]  # no temporary left beside it
    assert list(read_statistics(path)) == ["w"]


def test_cli_reads_one_statistics_file_per_vector(tmp_path):
    from tvcore.cli import main
    from tvcore.merging import save_statistics

    vs = [v.to(dtype=torch.float32) for v in vectors(201, n=2)]
    grams = [{"w": _psd(210 + i, 4).float()} for i in range(2)]
    stats = [str(tmp_path / f"g{i}.safetensors") for i in range(2)]
    for g, p in zip(grams, stats):
        save_statistics(g, p)
    out = tmp_path / "m.safetensors"
    assert main(["vector", "merge", *_saved(tmp_path, vs), "-o", str(out), "--method", "regmean",
                 "--hp", "alpha=0.5", "--stats", *stats]) == 0
    torch.testing.assert_close(TaskVector.load(out)["w"], METHODS["regmean"](vs, stats=grams, alpha=0.5)["w"])


def test_cli_unknown_method_is_one_line_naming_the_known_ones(tmp_path, capsys):
    from tvcore.cli import main

    paths = _saved(tmp_path, vectors(202, n=2))
    assert main(["vector", "merge", *paths, "-o", str(tmp_path / "m.safetensors"), "--method", "slerp"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "slerp" in err and all(name in err for name in METHODS)
    assert not (tmp_path / "m.safetensors").exists()


def test_cli_help_lists_every_method(capsys):
    from tvcore.cli import main

    with pytest.raises(SystemExit):
        main(["vector", "merge", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in METHODS)
