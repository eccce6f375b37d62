"""PPO agent that walks the knob space (Chameleon's "adaptive exploration").

Read top to bottom like cleanrl's ``ppo.py``: the hyperparameters, the two networks, the
vectorised rollout (``PPOAgent.explore``), GAE (``compute_gae``) and the clipped PPO update
(``PPOAgent.update``).

Environment. A configuration is a vector of ``K`` integer knob indices; knob ``i`` of a config
has ``n_options[b, i]`` options. Configs of different sketches are padded to ``K``; a knob with
fewer than two options (padding has 0 or 1) is *inactive*: it is forced to "stay" and ignored by
the termination rule. The observation is the knob indices scaled to [0, 1]
(``index / max(n - 1, 1)``) concatenated with an optional extra vector per config (e.g. the
sketch one-hot). Every step each active knob picks one of {decrement, stay, increment}; all
knobs move at once and are clamped to their bounds. The reward of a step is ``reward_fn`` of the
new configs. An episode ends when at least ``stay_fraction`` of its active knobs chose stay or sit
at a bound after the step, or after ``max_steps`` steps.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from chameleon.agent.rollout import Exploration, Rollout, compute_gae

logger = logging.getLogger(__name__)

__all__ = ["Exploration", "PPOAgent", "PPOConfig", "RewardFn", "Rollout", "compute_gae"]

RewardFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``reward_fn(configs (B, K) int, sketch_ids (B,) int) -> rewards (B,) float``."""

_STAY = 1
"""Action index of "stay"; 0 is decrement and 2 increment, so the step is ``action - 1``."""
_MASKED_LOGIT = -1e9
"""Logit of a forbidden action (finite, so masked entries give 0 * -1e9 = 0 in the entropy)."""


@dataclass(frozen=True, kw_only=True)
class PPOConfig:
    """Hyperparameters; defaults are the Chameleon paper's (ICLR 2020) unless noted."""

    learning_rate: float = 1e-3
    """Adam learning rate of the policy and value networks."""
    update_epochs: int = 3
    """Passes over the (sub-sampled) rollout per update."""
    minibatch_size: int = 32
    """Samples per gradient step. 32 is the paper's; a larger minibatch (e.g. 256) makes an update
    ~8x cheaper in wall-clock (fewer, less noisy Adam steps on the same samples) at the price of
    fewer parameter updates per round, which may call for a higher learning rate."""
    max_update_samples: int = 4096
    """Cap on the rollout steps one update trains on: a larger rollout is sub-sampled uniformly
    without replacement. Bounds an update to ``update_epochs * max_update_samples /
    minibatch_size`` gradient steps (384 with the defaults) however long the episodes were.
    Not in the paper (which trains on the whole rollout)."""
    gamma: float = 0.9
    """Discount factor."""
    gae_lambda: float = 0.99
    """Lambda of generalised advantage estimation."""
    clip_coef: float = 0.2
    """PPO surrogate clipping coefficient."""
    vf_coef: float = 1.0
    """Weight of the value loss."""
    ent_coef: float = 0.3
    """Weight of the entropy bonus. The entropy is the joint entropy of the factorised policy
    (sum over active knobs of each knob's 3-way entropy), averaged over samples."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip (cleanrl's default; the paper does not give one)."""
    norm_adv: bool = True
    """Normalise advantages per minibatch (cleanrl's default)."""
    adam_eps: float = 1e-5
    """Adam epsilon (cleanrl's default)."""
    policy_hidden: tuple[int, ...] = (20, 20)
    """Hidden layer widths of the policy network (tanh), followed by a 3-way head per knob."""
    value_hidden: tuple[int, ...] = (20, 20, 20)
    """Hidden layer widths of the value network (tanh)."""
    num_starts: int = 128
    """Most episodes (start configurations) one ``explore`` call may run in parallel."""
    max_steps: int = 500
    """Episode length limit."""
    stay_fraction: float = 0.75
    """An episode ends once this fraction of its active knobs chose stay or sit at a bound."""
    num_threads: int | None = 1
    """torch intra-op threads while exploring and updating (restored afterwards); None leaves
    torch's setting alone. The networks are tiny, so threads only add overhead: on the shared
    2-core machine, 2 spinning OpenMP threads made one 128 x 500 explore 20x slower (15 s vs 0.7 s)."""
    terminal_on_stay: bool = False
    """Treat the stay-rule end of an episode as a terminal state (no value bootstrap). False
    (default) treats every end as a truncation: the end is a search-budget device, not a state of
    the world, and bootstrapping keeps the sign of the reward from teaching the agent to end
    episodes early (negative rewards) or to never end them (positive rewards)."""


def _layer_init(layer: nn.Linear, std: float = math.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


def _mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, out_std: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [_layer_init(nn.Linear(in_dim, width)), nn.Tanh()]
        in_dim = width
    layers.append(_layer_init(nn.Linear(in_dim, out_dim), std=out_std))
    return nn.Sequential(*layers)


@contextmanager
def _torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run a block with ``num_threads`` torch intra-op threads, then restore the previous value."""
    previous = torch.get_num_threads()
    if num_threads is None or num_threads == previous:
        yield
        return
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class PPOAgent:
    """Policy + value networks and their optimiser; persists across tuning rounds."""

    def __init__(self, *, num_knobs: int, extra_dim: int = 0, config: PPOConfig | None = None, seed: int = 0):
        if num_knobs < 1 or extra_dim < 0:
            raise ValueError(f"need num_knobs >= 1 and extra_dim >= 0, got {num_knobs}, {extra_dim}")
        self.num_knobs = num_knobs
        self.extra_dim = extra_dim
        self.config = config or PPOConfig()
        self.seed = seed
        # Explicit seeding: network init and every random draw of the agent use its own
        # generators, never the global ones, so agents do not disturb each other.
        self._gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            obs_dim = num_knobs + extra_dim
            self.actor = _mlp(obs_dim, self.config.policy_hidden, 3 * num_knobs, out_std=0.01)
            self.critic = _mlp(obs_dim, self.config.value_hidden, 1, out_std=1.0)
        self.optimizer = torch.optim.Adam(
            [*self.actor.parameters(), *self.critic.parameters()],
            lr=self.config.learning_rate,
            eps=self.config.adam_eps,
        )

    # ---- policy ------------------------------------------------------------------------------

    def _logits(self, obs: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """(N, K, 3) logits with decrement/increment masked out on inactive knobs."""
        logits = self.actor(obs).view(obs.shape[0], self.num_knobs, 3)
        forced = ~active.unsqueeze(-1) & (torch.arange(3) != _STAY)
        return logits.masked_fill(forced, _MASKED_LOGIT)

    # ---- rollout -----------------------------------------------------------------------------

    def explore(
        self,
        *,
        starts: np.ndarray,
        sketch_ids: np.ndarray,
        n_options: np.ndarray,
        extra: np.ndarray | None = None,
        reward_fn: RewardFn,
    ) -> Exploration:
        """Run one episode from each start configuration, all envs stepped as one batch.

        ``starts`` (B, K) int, ``sketch_ids`` (B,) int, ``n_options`` (B, K) int, ``extra``
        (B, E) float or None when ``extra_dim == 0``. ``reward_fn`` is called once per step with
        the new configs of the envs still running.
        """
        cfg = self.config
        starts_np, sketch_np, n_np, extra_t = self._check_inputs(starts, sketch_ids, n_options, extra)
        num_envs, num_knobs = starts_np.shape

        config = torch.from_numpy(starts_np.copy())
        n_opt = torch.from_numpy(n_np)
        upper = (n_opt - 1).clamp(min=0)
        scale = 1.0 / upper.clamp(min=1).to(torch.float32)
        active = n_opt > 1
        n_active = active.sum(dim=1).to(torch.float32)

        def observe(c: torch.Tensor) -> torch.Tensor:
            return torch.cat([c.to(torch.float32) * scale, extra_t], dim=1)

        T = cfg.max_steps
        obs_buf = torch.zeros((T, num_envs, num_knobs + self.extra_dim))
        act_buf = torch.zeros((T, num_envs, num_knobs), dtype=torch.long)
        logp_buf = torch.zeros((T, num_envs))
        val_buf = torch.zeros((T + 1, num_envs))
        rew_buf = torch.zeros((T, num_envs))
        done_buf = torch.zeros((T, num_envs))
        term_buf = torch.zeros((T, num_envs))
        alive_buf = torch.zeros((T, num_envs), dtype=torch.bool)
        visited: list[np.ndarray] = []
        visited_env: list[np.ndarray] = []
        visited_rew: list[np.ndarray] = []
        lengths = np.zeros(num_envs, dtype=np.int64)

        alive = torch.ones(num_envs, dtype=torch.bool)
        steps = T
        with _torch_threads(cfg.num_threads), torch.no_grad():
            for t in range(T):
                # Forward passes over all B envs (finished ones are frozen and masked out).
                obs = observe(config)
                logits = self._logits(obs, active)
                probs = torch.softmax(logits, dim=-1)
                action = torch.multinomial(probs.view(-1, 3), 1, generator=self._gen).view(num_envs, -1)
                logp = torch.log_softmax(logits, dim=-1).gather(-1, action.unsqueeze(-1)).squeeze(-1)
                obs_buf[t] = obs
                act_buf[t] = action
                logp_buf[t] = logp.sum(dim=1)
                val_buf[t] = self.critic(obs).squeeze(-1)
                alive_buf[t] = alive

                # Apply all knob moves at once, clamped; finished envs do not move.
                moved = torch.minimum(torch.clamp(config + action - 1, min=0), upper)
                new_config = torch.where(alive.unsqueeze(1), moved, config)
                settled = (action == _STAY) | (new_config == 0) | (new_config == upper)
                stay_rule = (settled & active).sum(dim=1) >= cfg.stay_fraction * n_active
                ended = alive & (stay_rule | (t == T - 1))
                done_buf[t] = ended.to(torch.float32)
                if cfg.terminal_on_stay:
                    term_buf[t] = (ended & stay_rule).to(torch.float32)

                # Reward only the envs that took this step.
                idx = torch.nonzero(alive).squeeze(1).numpy()
                new_np = new_config.numpy()[idx]
                rewards = np.asarray(reward_fn(new_np.copy(), sketch_np[idx].copy()), dtype=np.float64)
                if rewards.shape != (len(idx),):
                    raise ValueError(f"reward_fn returned shape {rewards.shape}, expected ({len(idx)},)")
                rew_buf[t, idx] = torch.from_numpy(rewards).to(torch.float32)
                visited.append(new_np)
                visited_env.append(idx)
                visited_rew.append(rewards)
                lengths[idx] += 1

                config = new_config
                alive = alive & ~ended
                if not alive.any():
                    steps = t + 1
                    break
            # Value of the final observations: finished envs are frozen, so row t + 1 is always
            # the value of the state after step t, including each episode's last step.
            val_buf[steps] = self.critic(observe(config)).squeeze(-1)

        rollout = Rollout(
            obs=obs_buf[:steps],
            actions=act_buf[:steps],
            logprobs=logp_buf[:steps],
            values=val_buf[:steps],
            next_values=val_buf[1 : steps + 1],
            rewards=rew_buf[:steps],
            dones=done_buf[:steps],
            terminals=term_buf[:steps],
            alive=alive_buf[:steps],
            active=active,
        )
        env_index = np.concatenate(visited_env).astype(np.int64)
        result = Exploration(
            configs=np.concatenate(visited).astype(np.int64),
            sketch_ids=sketch_np[env_index],
            rewards=np.concatenate(visited_rew),
            env_index=env_index,
            episode_lengths=lengths,
            rollout=rollout,
        )
        logger.debug("explore: %d envs, %d steps, %d visited", num_envs, steps, len(env_index))
        return result

    def _check_inputs(
        self,
        starts: np.ndarray,
        sketch_ids: np.ndarray,
        n_options: np.ndarray,
        extra: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, torch.Tensor]:
        starts_np = np.asarray(starts, dtype=np.int64)
        n_np = np.asarray(n_options, dtype=np.int64)
        sketch_np = np.asarray(sketch_ids, dtype=np.int64)
        if starts_np.ndim != 2 or starts_np.shape[1] != self.num_knobs or starts_np.shape[0] == 0:
            raise ValueError(f"starts must be (B, {self.num_knobs}) with B >= 1, got {starts_np.shape}")
        num_envs = starts_np.shape[0]
        if num_envs > self.config.num_starts:
            raise ValueError(f"{num_envs} starts exceed config.num_starts={self.config.num_starts}")
        if n_np.shape != starts_np.shape or sketch_np.shape != (num_envs,):
            raise ValueError(f"n_options {n_np.shape} / sketch_ids {sketch_np.shape} do not match starts")
        if (starts_np < 0).any() or (starts_np > np.maximum(n_np - 1, 0)).any():
            raise ValueError("a start configuration is out of its knob bounds")
        if extra is None:
            if self.extra_dim:
                raise ValueError(f"extra (B, {self.extra_dim}) is required")
            extra_np = np.zeros((num_envs, 0), dtype=np.float32)
        else:
            extra_np = np.asarray(extra, dtype=np.float32)
            if extra_np.shape != (num_envs, self.extra_dim):
                raise ValueError(f"extra must be ({num_envs}, {self.extra_dim}), got {extra_np.shape}")
        return starts_np, sketch_np, n_np, torch.from_numpy(extra_np)

    # ---- PPO update --------------------------------------------------------------------------

    def update(self, exploration: Exploration) -> dict[str, float]:
        """One PPO update on an exploration's rollout; returns namespaced metrics."""
        with _torch_threads(self.config.num_threads):
            return self._update(exploration)

    def _update(self, exploration: Exploration) -> dict[str, float]:
        cfg = self.config
        ro = exploration.rollout
        with torch.no_grad():
            advantages, returns = compute_gae(
                rewards=ro.rewards,
                values=ro.values,
                next_values=ro.next_values,
                dones=ro.dones,
                terminals=ro.terminals,
                alive=ro.alive.to(torch.float32),
                gamma=cfg.gamma,
                gae_lambda=cfg.gae_lambda,
            )

        # Flatten the steps the envs actually took, then cap their number.
        mask = ro.alive
        batch = {
            "obs": ro.obs[mask],
            "actions": ro.actions[mask],
            "logprobs": ro.logprobs[mask],
            "advantages": advantages[mask],
            "returns": returns[mask],
            "values": ro.values[mask],
            "active": ro.active.unsqueeze(0).expand(mask.shape[0], -1, -1)[mask],
        }
        total = int(mask.sum())
        if total > cfg.max_update_samples:
            keep = torch.randperm(total, generator=self._gen)[: cfg.max_update_samples]
            batch = {name: value[keep] for name, value in batch.items()}
        b_obs, b_actions, b_logprobs = batch["obs"], batch["actions"], batch["logprobs"]
        b_advantages, b_returns, b_values = batch["advantages"], batch["returns"], batch["values"]
        b_active = batch["active"]
        n = b_obs.shape[0]
        mb_size = min(cfg.minibatch_size, n)
        num_minibatches = n // mb_size  # full minibatches only; the remainder is reshuffled next epoch

        history: list[tuple[float, ...]] = []
        params = [*self.actor.parameters(), *self.critic.parameters()]
        for _epoch in range(cfg.update_epochs):
            perm = torch.randperm(n, generator=self._gen)
            for i in range(num_minibatches):
                mb = perm[i * mb_size : (i + 1) * mb_size]
                logits = self._logits(b_obs[mb], b_active[mb])
                log_probs = torch.log_softmax(logits, dim=-1)
                newlogprob = log_probs.gather(-1, b_actions[mb].unsqueeze(-1)).squeeze(-1).sum(dim=1)
                entropy = -(log_probs.exp() * log_probs).sum(dim=-1).sum(dim=1)
                newvalue = self.critic(b_obs[mb]).squeeze(-1)

                logratio = newlogprob - b_logprobs[mb]
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfrac = ((ratio - 1.0).abs() > cfg.clip_coef).float().mean()

                mb_advantages = b_advantages[mb]
                if cfg.norm_adv:
                    mb_advantages = (mb_advantages - mb_advantages.mean()) / (
                        mb_advantages.std(correction=0) + 1e-8
                    )

                # Clipped surrogate objective.
                pg_loss1 = -mb_advantages * ratio
                pg_loss2 = -mb_advantages * torch.clamp(ratio, 1 - cfg.clip_coef, 1 + cfg.clip_coef)
                pg_loss = torch.max(pg_loss1, pg_loss2).mean()
                # Value loss (unclipped) and entropy bonus.
                v_loss = 0.5 * ((newvalue - b_returns[mb]) ** 2).mean()
                entropy_loss = entropy.mean()
                loss = pg_loss - cfg.ent_coef * entropy_loss + v_loss * cfg.vf_coef

                self.optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                self.optimizer.step()

                history.append(tuple(x.item() for x in (pg_loss, v_loss, entropy_loss, approx_kl, clipfrac)))

        names = ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac")
        means = torch.tensor(history).mean(dim=0).tolist()
        var_y = b_returns.var().item() if n > 1 else 0.0
        explained_var = math.nan if var_y == 0 else 1 - (b_returns - b_values).var().item() / var_y
        metrics = {f"losses/{name}": value for name, value in zip(names, means, strict=True)}
        metrics["losses/explained_variance"] = explained_var
        metrics["rollout/samples"] = float(total)
        metrics["rollout/samples_used"] = float(n)
        metrics["rollout/gradient_steps"] = float(cfg.update_epochs * num_minibatches)
        metrics["rollout/mean_reward"] = float(np.mean(exploration.rewards))
        logger.debug("ppo update: %s", metrics)
        return metrics

    # ---- persistence -------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Everything needed to resume: networks, optimiser, RNG state and the config.

        A deep copy: torch's own state dicts alias the live tensors (and ``Adam.load_state_dict``
        keeps them aliased), so a snapshot taken before further updates would change with them.
        """
        return copy.deepcopy(
            {
                "num_knobs": self.num_knobs,
                "extra_dim": self.extra_dim,
                "config": asdict(self.config),
                "actor": self.actor.state_dict(),
                "critic": self.critic.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "rng": self._gen.get_state(),
            }
        )

    @classmethod
    def from_state_dict(cls, state: dict) -> PPOAgent:
        """A new agent with the saved config, networks, optimiser and RNG state."""
        saved = dict(state["config"])
        saved["policy_hidden"] = tuple(saved["policy_hidden"])
        saved["value_hidden"] = tuple(saved["value_hidden"])
        agent = cls(num_knobs=state["num_knobs"], extra_dim=state["extra_dim"], config=PPOConfig(**saved))
        agent.load_state_dict(state)
        return agent

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict``; the knob and extra dimensions must match."""
        if (state["num_knobs"], state["extra_dim"]) != (self.num_knobs, self.extra_dim):
            raise ValueError(
                f"state is for num_knobs={state['num_knobs']}, extra_dim={state['extra_dim']}; "
                f"this agent has {self.num_knobs}, {self.extra_dim}"
            )
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        self._gen.set_state(state["rng"])
