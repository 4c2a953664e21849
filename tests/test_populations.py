"""User families beyond the planted types, the rotating LMM-order baseline and the session's preference estimate,
on the real embedding world (shipped MiniLM embeddings of every tuple) and a real, small EM user model."""

from collections import Counter

import numpy as np
import pytest

from pasta.contracts import CATEGORIES
from pasta.policy.session_estimate import corrected_utilities, edit_utility, session_correction, types_explain_picks
from pasta.policy.slate import GreedyMyopicPolicy, LMMOrderPolicy, final_turn_keep
from pasta.policy.state import PolicyState
from pasta.policy.user_model import UserModel, UserModelConfig, column_features
from user_sim.evaluate_agents import EvalAgentsConfig, choice_data, evaluate_agents
from user_sim.policies import make_policy
from user_sim.populations import FAMILIES, POPULATIONS, FamilyUser, population
from user_sim.rollout import play, run_episode
from user_sim.world import EmbeddingWorld


@pytest.fixture(scope="module")
def world():
    return EmbeddingWorld()


def test_every_population_draws_the_same_users_for_the_same_seed(world):
    for name in POPULATIONS:
        a, b = (population(name).users(world, 12, seed=5) for _ in range(2))
        start = world.random_prompt(np.random.default_rng(0))
        assert [u.user_id for u in a] == [u.user_id for u in b]
        for x, y in zip(a, b):
            assert np.array_equal(x.for_session(world, start).utilities, y.for_session(world, start).utilities)
    with pytest.raises(ValueError, match="unknown population 'nope'"):
        population("nope")


def test_target_seekers_value_the_attributes_of_their_target(world):
    user = population("target").users(world, 1, seed=3)[0]
    assert isinstance(user, FamilyUser) and user.family == "target"
    table = user.for_session(world, 0).utilities
    target = world.index_of(user.params["target"])
    assert table.argmax() == target and table[target] == pytest.approx(sum(user.params["weights"]))
    # one attribute away from the target loses exactly that attribute's weight
    t = np.array(user.params["target"])
    t[0] = (t[0] + 1) % world.sizes[0]
    assert table[world.index_of(t)] == pytest.approx(table[target] - user.params["weights"][0])


def test_small_steps_users_pay_for_every_attribute_changed_from_their_first_prompt(world):
    user = population("small-steps").users(world, 1, seed=4)[0]
    start = 1234
    table = user.for_session(world, start).utilities
    changed = (world.tuples != world.tuples[start]).sum(1)
    taste = sum(np.asarray(w)[world.tuples[:, i]] for i, w in enumerate(user.params["taste"]))
    assert np.allclose(table, taste - 1.5 * changed, atol=1e-5)
    other = user.for_session(world, 99).utilities  # the same person starting elsewhere wants to stay there
    assert table[start] - table.mean() > 1 and other[99] - other.mean() > 1


def test_interaction_tastes_have_no_main_effect_and_flat_tastes_are_nearly_indifferent(world):
    user = population("interaction").users(world, 1, seed=6)[0]
    axes = world.axes  # the pairs the world's candidate categories edit: style x setting, subject x detail
    assert [tuple(p) for p in user.params["pairs"]] == [
        (axes.index("style"), axes.index("background")),
        (axes.index("garment"), axes.index("colour")),
    ]
    inter = user.for_session(world, 0).utilities
    style = world.axes.index("style")
    by_style = [inter[world.tuples[:, style] == v].mean() for v in range(world.sizes[style])]
    spread_within = inter.std()
    assert np.ptp(by_style) < spread_within  # a style alone says less than the style-background pairs
    flat = population("flat").users(world, 1, seed=6)[0].for_session(world, 0).utilities
    assert flat.std() < 0.1 * inter.std()


def test_a_mixture_draws_each_family_and_episodes_score_the_session_utility(world):
    users = population("mixture").users(world, 40, seed=2)
    assert Counter(u.family for u in users).keys() == set(FAMILIES)
    assert all(population("mixture").group_names()[u.type_index] == u.family for u in users)
    episode = run_episode(make_policy("oracle"), users[0], world, seed=11)
    session = users[0].for_session(world, episode.initial_index)
    chosen = [s.chosen_index for s in episode.turns]
    assert np.allclose(episode.utilities(), session.utilities[chosen])


def test_lmm_order_shows_every_category_equally_often(world):
    users = population("flat").users(world, 4, seed=0)
    episodes = play(LMMOrderPolicy(), world, users, [0, 1, 2, 3])
    shown = Counter(t.candidates[i].category for e in episodes for t in e.turns for i in t.slate)
    assert set(shown) == set(CATEGORIES) and max(shown.values()) - min(shown.values()) <= 4
    for turn in episodes[0].turns:  # still the generator's first candidate of each category shown
        for i in turn.slate:
            first = next(j for j, c in enumerate(turn.candidates) if c.category == turn.candidates[i].category)
            assert i == first


@pytest.fixture(scope="module")
def user_model(world):
    users = population("planted").users(world, 300, seed=1, types_seed=0)
    episodes = play(make_policy("random"), world, users, list(range(300)))
    model = UserModel(2 * world.embeddings.shape[1], UserModelConfig(n_types=2, em_iters=5))
    model.fit(choice_data(world, episodes))
    return model


def _picks(world, start: int, nearest: bool, turns: int = 4, seed: int = 0):
    """Slates of the start tuple's single edits, where the person always picks the edit nearest to (or farthest
    from) the first prompt."""
    E, rng = world.embeddings, np.random.default_rng(seed)
    options = world.single_edits(start, world.axes)
    slates = []
    for _ in range(turns):
        columns = rng.choice(options, 4, replace=False)
        near = E[columns] @ E[start]
        slates.append((column_features(E[columns], None), int(near.argmax() if nearest else near.argmin())))
    return slates


def test_the_session_estimate_learns_whether_the_person_stays_near_their_first_prompt(world, user_model):
    start, posterior = 1234, np.full(2, 0.5)
    initial = world.embeddings[start]
    stays = session_correction(user_model, _picks(world, start, nearest=True), posterior, initial, 1.0)
    strays = session_correction(user_model, _picks(world, start, nearest=False), posterior, initial, 1.0)
    assert stays > 0 > strays
    assert session_correction(user_model, _picks(world, start, True), posterior, initial, 4.0) == pytest.approx(
        4 * stays, rel=1e-5
    )  # the strength scales the first-order estimate
    assert session_correction(user_model, [], posterior, initial, 1.0) == 0.0
    assert session_correction(user_model, _picks(world, start, True), posterior, None, 1.0) == 0.0
    picks = _picks(world, start, True)
    unexplained = 1 - types_explain_picks(user_model, picks, posterior)  # the agents' gate: as "+explore" is scaled
    assert 0 < unexplained < 1
    assert session_correction(user_model, picks, posterior, initial, 1.0, gated=True) == pytest.approx(
        unexplained * stays, rel=1e-5
    )
    with pytest.raises(ValueError, match="strength must be >= 0"):
        session_correction(user_model, [], posterior, initial, -1.0)
    features = column_features(world.embeddings[[start, 7, 8]], None)
    u = np.zeros((3, 2), np.float32)
    adapted, extra = corrected_utilities(u, features, initial, stays)
    assert np.allclose(adapted, extra[:, None]) and extra.argmax() == 0  # the first prompt itself gains most
    assert np.allclose(corrected_utilities(u, features, initial, 0.0)[0], u)


def _fifth_turn(world, start: int, history: list, rng: np.random.Generator):
    """(the state before a fifth turn that still expands `start`, after `history`; its 25 candidates: `start`
    itself, then 24 of its single edits)."""
    from pasta.contracts import Candidate

    E = world.embeddings
    indices = [start] + list(rng.choice(world.single_edits(start, world.axes), 24, replace=False))
    candidates = [Candidate(world.captions[j], CATEGORIES[i % 5], "test") for i, j in enumerate(indices)]
    state = PolicyState(
        turn=4,
        seed=0,
        initial_embedding=E[start],
        current_embedding=E[start],
        history_slates=history,
        candidate_embeddings=E[indices],
        candidate_categories=[c.category for c in candidates],
    )
    return state, candidates


def test_an_adapting_policy_keeps_a_small_steps_person_near_their_prompt(world, user_model):
    state, candidates = _fifth_turn(world, 4321, _picks(world, 4321, nearest=True), np.random.default_rng(1))
    adapting = GreedyMyopicPolicy(user_model, "choice-model", adapt=1000.0)
    assert adapting.name == "greedy-slate+adapt" and GreedyMyopicPolicy(user_model).name == "greedy"
    slate, scores = adapting.select(state, candidates, 4)
    assert scores.argmax() == 0 and slate[0] == 0  # the first prompt itself (a rephrase) leads the slate


def test_eval_agents_runs_any_population_with_adapting_and_shipped_agents(tmp_path):
    cfg = EvalAgentsConfig(
        train_users=120,
        eval_users=40,
        population="mixture",
        bootstrap=50,
        out=tmp_path / "eval",
    )
    cfg.policies = (*cfg.policies, "shipped:no-keep")
    cfg.user_model.n_types, cfg.user_model.em_iters = 2, 3
    cfg.iql.steps = 20
    result = evaluate_agents(cfg, progress=False)
    assert set(result["policies"]) == set(cfg.policies)
    assert set(result["policies"]["iql"]["final_turn_by_type"]) <= set(FAMILIES)
    paired = result["summary"]["paired"]
    assert set(paired) == {"iql", "iql+adapt", "iql+explore", "shipped", "shipped+adapt", "shipped+explore"}
    assert {"lmm-order", "greedy-slate", "oracle", "iql"} <= set(paired["iql+explore"]) and "iql" not in paired["iql"]
    assert "shipped:no-keep" in paired["shipped"] and "shipped:no-keep" not in paired["shipped+adapt"]
    assert (tmp_path / "eval" / "metrics.json").exists()
    with pytest.raises(ValueError, match="unknown policies iql[+]nope"):  # before any simulation or training
        evaluate_agents(EvalAgentsConfig(policies=("lmm-order", "iql+nope"), out=tmp_path / "x"), progress=False)
    assert not (tmp_path / "x").exists()


def test_closed_loop_logs_retrains_from_the_store_and_evaluates_each_population(tmp_path):
    from pasta.logbook import LogStore
    from user_sim.closed_loop import ClosedLoopConfig, closed_loop, table

    cfg = ClosedLoopConfig(
        populations=("small-steps",),
        train_users=60,
        eval_users=30,
        ks=(1, 2),
        policies=("lmm-order", "greedy-slate", "retrained", "retrained+explore", "shipped", "bayes", "oracle"),
        bootstrap=20,
        out=tmp_path / "loop",
    )
    cfg.iql.steps = 10
    result = closed_loop(cfg, progress=False)
    run = result["populations"]["small-steps"]
    folder = tmp_path / "loop" / "small-steps"
    with LogStore(folder / "logs.sqlite", create=False) as store:
        assert len(list(store.episodes(source="simulator"))) == 60  # every simulated session went through the store
    assert (folder / "agent" / "user_model").is_dir() and (folder / "agent" / "qnet").is_dir()
    assert run["user_model"]["users"] == 60 and run["user_model"]["k"] in (1, 2)
    assert set(run["policies"]) == set(cfg.policies)
    assert set(run["summary"]["paired"]) == {"retrained", "retrained+explore", "shipped", "bayes"}
    assert "bayes" in run["summary"]["paired"]["retrained"] and "bayes" in run["summary"]["share_of_oracle_gain"]
    assert "small-steps" in table(run) and (tmp_path / "loop" / "metrics.json").exists()
    with pytest.raises(ValueError, match="unknown population"):
        closed_loop(ClosedLoopConfig(populations=("planted", "nope"), out=tmp_path / "x"), progress=False)
    with pytest.raises(ValueError, match="unknown policies retrained[+]nope"):  # before any simulation
        closed_loop(ClosedLoopConfig(policies=("lmm-order", "retrained+nope"), out=tmp_path / "y"), progress=False)
    assert not (tmp_path / "y" / "planted").exists()


def test_the_edit_utility_is_the_laplace_posterior_and_is_certain_only_where_slates_have_looked(world, user_model):
    import torch

    start, posterior = 2468, np.full(2, 0.5)
    E = world.embeddings
    picks = _picks(world, start, nearest=False)
    current = E[start]
    candidates = E[[start] + world.single_edits(start, world.axes)[:12]]
    mean, sd = edit_utility(user_model, picks, posterior, current, candidates, prior_variance=4.0)

    T = float(user_model.log_temperature.detach().exp())  # the same posterior, by a D x D inverse
    D = E.shape[1]
    precision, gradient = np.eye(D) / 4.0, np.zeros(D)
    for X, choice in picks:
        with torch.no_grad():
            p = user_model.predict_choice(X[None], posterior[None].astype(np.float32))[0].astype(np.float64)
        z = X[:, :D] - p @ X[:, :D]
        gradient += z[choice] / T
        precision += (z.T * p) @ z / T**2
    sigma = np.linalg.inv(precision)
    edits = candidates - current
    assert np.allclose(mean, edits @ sigma @ gradient, atol=1e-6)
    assert np.allclose(sd, np.sqrt(np.einsum("nd,de,ne->n", edits, sigma, edits)), atol=1e-6)
    assert mean[0] == 0 and sd[0] == 0  # the rephrase: no edit, nothing to learn or to find
    prior_mean, prior_sd = edit_utility(user_model, [], posterior, current, candidates, prior_variance=4.0)
    assert np.all(prior_mean == 0) and np.allclose(prior_sd, 2.0 * np.linalg.norm(edits, axis=1))
    assert np.all(sd[1:] < prior_sd[1:])  # every shown slate narrowed what is unknown


def test_exploring_happens_when_the_types_do_not_explain_the_picks(world, user_model):
    import torch

    E, rng = world.embeddings, np.random.default_rng(3)
    posterior = np.full(2, 0.5, np.float32)
    slates = [column_features(E[rng.choice(len(world), 4, replace=False)], None) for _ in range(4)]
    with torch.no_grad():
        predicted = [user_model.predict_choice(X[None], posterior[None])[0] for X in slates]
    expected = [(X, int(p.argmax())) for X, p in zip(slates, predicted)]
    contrary = [(X, int(p.argmin())) for X, p in zip(slates, predicted)]
    assert types_explain_picks(user_model, [], posterior) == 0.5
    assert (
        types_explain_picks(user_model, expected, posterior)
        > 0.5
        > types_explain_picks(user_model, contrary, posterior)
    )

    state, candidates = _fifth_turn(world, 1357, contrary, rng)
    plain, exploring = (
        GreedyMyopicPolicy(user_model, "choice-model"),
        GreedyMyopicPolicy(user_model, "choice-model", explore=1000.0),
    )
    assert exploring.name == "greedy-slate+explore"
    assert (
        GreedyMyopicPolicy(user_model, "choice-model", explore=0.0).select(state, candidates, 4)[0]
        == (plain.select(state, candidates, 4)[0])
    )
    slate, scores = exploring.select(state, candidates, 4)
    assert 0 not in slate and scores[0] == scores.min()  # the rephrase can find nothing new


def test_the_taste_panel_summary_reports_what_the_policys_estimates_read(world, user_model):
    """`session_taste` (the app's "your taste" panel) says what the policy uses: the types' fit, the nearness
    weight and the candidates whose edits the picks favour, each only where its estimate is on."""
    from pasta.policy.session_estimate import edit_utility, session_taste

    start = 4321
    state, _ = _fifth_turn(world, start, _picks(world, start, nearest=True), np.random.default_rng(1))
    posterior = np.full(2, 0.5, np.float32)
    taste = session_taste(user_model, state, posterior, adapt=32.0, explore=3.0)
    history = state.history_slates
    assert taste.picks == len(history) == 4
    assert taste.types_explain == pytest.approx(types_explain_picks(user_model, history, posterior))
    assert taste.nearness == pytest.approx(
        session_correction(user_model, history, posterior, state.initial_embedding, 32.0, gated=True)
    )
    assert taste.nearness > 0  # the picks stayed near the first prompt
    mean, _ = edit_utility(user_model, history, posterior, state.current_embedding, state.candidate_embeddings)
    assert list(taste.favoured) == [i for i in np.argsort(-mean, kind="stable")[:3] if mean[i] > 0]
    assert taste.favoured and all(mean[i] > 0 for i in taste.favoured)
    off = session_taste(user_model, state, posterior, adapt=0.0, explore=0.0)
    assert off.nearness == 0.0 and off.favoured == () and off.types_explain == taste.types_explain


def test_the_agents_slate_keeps_the_current_prompt_on_the_last_turn_only(world, user_model):
    """On the last turn the choice-model slate holds the rephrase (the current prompt, kept), so a person the
    models misjudge is never forced to trade their last pick for an edit; on earlier turns it is free to leave it
    out, and an unknown session length changes nothing."""
    users = population("interaction").users(world, 12, seed=3)
    policy = GreedyMyopicPolicy(user_model, slate="choice-model", explore=3.0)
    episodes = play(policy, world, users, list(range(12)))
    last = [e.turns[-1] for e in episodes]
    assert all(any(t.candidates[i].category == "rephrase" for i in t.slate) for t in last)
    earlier = [t for e in episodes for t in e.turns[:-1]]
    assert not all(any(t.candidates[i].category == "rephrase" for i in t.slate) for t in earlier)
    for kept in last:  # the policy's own columns otherwise: the slate holds the first rephrase and 3 others
        first = next(i for i, c in enumerate(kept.candidates) if c.category == "rephrase")
        assert first in kept.slate and len(set(kept.slate)) == 4

    # ":no-keep" plays the same policy without the rule: the same slates before the last turn
    from user_sim.policies import policy_factory

    without = policy_factory("greedy-slate+explore:no-keep", {"greedy-slate+explore": lambda: policy})()
    assert without.name == "greedy-slate+explore:no-keep"
    others = play(without, world, users, list(range(12)))
    assert [t.slate for e in others for t in e.turns[:-1]] == [t.slate for e in episodes for t in e.turns[:-1]]
    assert [e.turns[-1].slate for e in others] != [t.slate for t in last]

    state, candidates = _fifth_turn(world, 4321, _picks(world, 4321, nearest=True), np.random.default_rng(1))
    assert final_turn_keep(state, candidates) is None  # length unknown
    state.turns = 5
    assert final_turn_keep(state, candidates) == 0  # _fifth_turn's first candidate is the rephrase
    state.turns = 6
    assert final_turn_keep(state, candidates) is None
