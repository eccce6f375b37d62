"""PPO agent: environment semantics of ``explore``, GAE, learning, determinism, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from chameleon.agent.ppo import PPOAgent, PPOConfig, compute_gae


def _space(seed: int, num_envs: int, num_knobs: int, max_options: int = 6):
    """Random padded knob space: per-env bounds (0/1 = inactive) and in-bounds starts."""
    rng = np.random.default_rng(seed)
    n_options = rng.integers(0, max_options + 1, size=(num_envs, num_knobs))
    starts = rng.integers(0, np.maximum(n_options, 1))
    sketch_ids = rng.integers(0, 3, size=num_envs)
    return starts, sketch_ids, n_options


def _zero_reward(configs, sketch_ids):
    return np.zeros(len(configs))


def _trajectories(ex):
    """Per env, the configs it visited in step order."""
    return [ex.configs[ex.env_index == b] for b in range(len(ex.episode_lengths))]


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    num_envs=st.integers(1, 12),
    num_knobs=st.integers(1, 6),
    stay_fraction=st.sampled_from([0.5, 0.75, 1.0]),
    terminal_on_stay=st.booleans(),
)
def test_explore_respects_bounds_masks_and_the_stay_rule(
    seed, num_envs, num_knobs, stay_fraction, terminal_on_stay
):
    starts, sketch_ids, n_options = _space(seed, num_envs, num_knobs)
    config = PPOConfig(max_steps=15, stay_fraction=stay_fraction, terminal_on_stay=terminal_on_stay)
    agent = PPOAgent(num_knobs=num_knobs, extra_dim=2, config=config, seed=seed)
    extra = np.random.default_rng(seed).uniform(size=(num_envs, 2))
    calls = []

    def reward_fn(configs, sids):
        calls.append((configs.copy(), sids.copy()))
        return configs.sum(axis=1).astype(float)

    ex = agent.explore(
        starts=starts, sketch_ids=sketch_ids, n_options=n_options, extra=extra, reward_fn=reward_fn
    )
    active = n_options > 1
    upper = np.maximum(n_options - 1, 0)
    ro = ex.rollout
    assert len(ex.configs) == len(ex.rewards) == len(ex.sketch_ids) == ex.episode_lengths.sum()
    assert sum(len(c) for c, _ in calls) == len(ex.configs)
    assert np.array_equal(ex.rewards, ex.configs.sum(axis=1))
    assert np.array_equal(ex.sketch_ids, sketch_ids[ex.env_index])
    assert np.all((ex.configs >= 0) & (ex.configs <= upper[ex.env_index]))
    for b, traj in enumerate(_trajectories(ex)):
        length = ex.episode_lengths[b]
        assert 1 <= length <= config.max_steps
        assert ro.alive[:, b].sum() == length and ro.alive[:length, b].all()
        prev = starts[b]
        for t, cfg in enumerate(traj):
            action = ro.actions[t, b].numpy()
            assert np.all(action[~active[b]] == 1)  # inactive knobs stay
            assert np.array_equal(cfg, np.clip(prev + action - 1, 0, upper[b]))
            settled = (action == 1) | (cfg == 0) | (cfg == upper[b])
            stay_rule = (settled & active[b]).sum() >= stay_fraction * active[b].sum()
            is_last = t == length - 1
            assert stay_rule == is_last or (is_last and length == config.max_steps)
            assert ro.dones[t, b] == float(is_last)
            assert ro.terminals[t, b] == float(is_last and stay_rule and terminal_on_stay)
            # The observation is the normalised config before the step plus the extra vector.
            expected_obs = np.concatenate([prev / np.maximum(upper[b], 1), extra[b]])
            assert np.allclose(ro.obs[t, b].numpy(), expected_obs, atol=1e-6)
            prev = cfg


def test_explore_rejects_bad_inputs():
    starts, sketch_ids, n_options = _space(0, 4, 3)
    agent = PPOAgent(num_knobs=3, config=PPOConfig(num_starts=4))
    with pytest.raises(ValueError):
        bad = starts.copy()
        bad[0, 0] = max(n_options[0, 0], 1)
        agent.explore(starts=bad, sketch_ids=sketch_ids, n_options=n_options, reward_fn=_zero_reward)
    with pytest.raises(ValueError):
        agent.explore(
            starts=np.vstack([starts, starts]),
            sketch_ids=np.r_[sketch_ids, sketch_ids],
            n_options=np.vstack([n_options, n_options]),
            reward_fn=_zero_reward,
        )
    with pytest.raises(ValueError):
        agent.explore(
            starts=starts,
            sketch_ids=sketch_ids,
            n_options=n_options,
            extra=np.zeros((4, 1)),
            reward_fn=_zero_reward,
        )


def _gae_reference(rewards, values, next_values, dones, terminals, alive, gamma, lam):
    """Per env, plain-python GAE over its own steps."""
    T, B = rewards.shape
    adv = np.zeros((T, B))
    for b in range(B):
        steps = [t for t in range(T) if alive[t, b]]
        running = 0.0
        for t in reversed(steps):
            bootstrap = 0.0 if terminals[t, b] else next_values[t, b]
            delta = rewards[t, b] + gamma * bootstrap - values[t, b]
            running = delta + (0.0 if dones[t, b] else gamma * lam * running)
            adv[t, b] = running
    return adv


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), T=st.integers(1, 8), B=st.integers(1, 5))
def test_compute_gae_matches_a_per_env_reference(seed, T, B):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, size=B)
    alive = np.arange(T)[:, None] < lengths[None, :]
    dones = (np.arange(T)[:, None] == lengths[None, :] - 1).astype(float)
    terminals = dones * rng.integers(0, 2, size=(T, B))
    rewards = rng.normal(size=(T, B)) * alive
    values = rng.normal(size=(T, B))
    next_values = rng.normal(size=(T, B))
    adv, ret = compute_gae(
        rewards=torch.tensor(rewards),
        values=torch.tensor(values),
        next_values=torch.tensor(next_values),
        dones=torch.tensor(dones),
        terminals=torch.tensor(terminals),
        alive=torch.tensor(alive, dtype=float),
        gamma=0.9,
        gae_lambda=0.99,
    )
    expected = _gae_reference(rewards, values, next_values, dones, terminals, alive, 0.9, 0.99)
    assert np.allclose(adv.numpy()[alive], expected[alive])
    assert np.allclose(ret.numpy()[alive], (expected + values)[alive])


def _toy_run(seed: int, rounds: int, *, agent: PPOAgent | None = None):
    """Explore/update rounds on reward = -normalised L1 distance to a hidden target."""
    num_knobs, num_envs, options = 3, 64, 10
    rng = np.random.default_rng(seed)
    target = rng.integers(0, options, size=num_knobs)
    n_options = np.full((num_envs, num_knobs), options)
    agent = agent or PPOAgent(num_knobs=num_knobs, config=PPOConfig(max_steps=50), seed=seed)

    def reward_fn(configs, sketch_ids):
        return -np.abs(configs - target).mean(axis=1) / (options - 1)

    means, metrics = [], []
    for _ in range(rounds):
        ex = agent.explore(
            starts=rng.integers(0, n_options),
            sketch_ids=np.zeros(num_envs, int),
            n_options=n_options,
            reward_fn=reward_fn,
        )
        means.append(float(ex.rewards.mean()))
        metrics.append(agent.update(ex))
    return agent, means, metrics


@pytest.mark.parametrize("seed", [0, 1])
def test_ppo_learns_to_approach_a_hidden_target(seed):
    _, means, metrics = _toy_run(seed, rounds=24)
    assert np.mean(means[-4:]) > np.mean(means[:4]) + 0.08
    assert all(np.isfinite(m["losses/policy_loss"]) and np.isfinite(m["losses/value_loss"]) for m in metrics)


def test_same_seed_gives_identical_exploration_and_updates():
    _, means_a, metrics_a = _toy_run(3, rounds=3)
    _, means_b, metrics_b = _toy_run(3, rounds=3)
    assert means_a == means_b and metrics_a == metrics_b
    starts, sketch_ids, n_options = _space(5, 16, 4)
    runs = [
        PPOAgent(num_knobs=4, config=PPOConfig(max_steps=20), seed=s).explore(
            starts=starts, sketch_ids=sketch_ids, n_options=n_options, reward_fn=_zero_reward
        )
        for s in (7, 7, 8)
    ]
    assert np.array_equal(runs[0].configs, runs[1].configs)
    assert torch.equal(runs[0].rollout.actions, runs[1].rollout.actions)
    assert not torch.equal(runs[0].rollout.actions[:1], runs[2].rollout.actions[:1])


def test_update_is_capped_and_state_dict_round_trips():
    config = PPOConfig(max_steps=40, stay_fraction=1.01, max_update_samples=256, minibatch_size=64)
    starts, sketch_ids, n_options = _space(1, 32, 5)
    agent = PPOAgent(num_knobs=5, extra_dim=1, config=config, seed=2)
    extra = np.ones((32, 1))
    ex = agent.explore(
        starts=starts, sketch_ids=sketch_ids, n_options=n_options, extra=extra, reward_fn=_zero_reward
    )
    metrics = agent.update(ex)
    assert metrics["rollout/samples"] == 32 * 40
    assert metrics["rollout/samples_used"] == 256
    assert metrics["rollout/gradient_steps"] == config.update_epochs * 256 // 64

    clone = PPOAgent.from_state_dict(agent.state_dict())
    assert clone.config == config
    a, b = (
        x.explore(
            starts=starts, sketch_ids=sketch_ids, n_options=n_options, extra=extra, reward_fn=_zero_reward
        )
        for x in (agent, clone)
    )
    assert np.array_equal(a.configs, b.configs)
    assert agent.update(a) == clone.update(b)
    with pytest.raises(ValueError):
        PPOAgent(num_knobs=4, extra_dim=1).load_state_dict(agent.state_dict())
