"""Rollout storage and generalized advantage estimation for :mod:`chameleon.agent.ppo`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Rollout:
    """What ``explore`` stored for the update; time-major ``(T, B, ...)`` torch tensors."""

    obs: torch.Tensor
    """(T, B, K + E) float observations before each step."""
    actions: torch.Tensor
    """(T, B, K) long actions in {0: decrement, 1: stay, 2: increment}."""
    logprobs: torch.Tensor
    """(T, B) log-probability of the joint action under the acting policy."""
    values: torch.Tensor
    """(T, B) value estimates of ``obs``."""
    next_values: torch.Tensor
    """(T, B) value estimates of the observation after each step (bootstrap targets)."""
    rewards: torch.Tensor
    """(T, B) rewards (0 where the env had already finished)."""
    dones: torch.Tensor
    """(T, B) float, 1 at the last step of each episode."""
    terminals: torch.Tensor
    """(T, B) float, 1 where the episode ended in a terminal state (no bootstrap)."""
    alive: torch.Tensor
    """(T, B) bool, True where the env took this step."""
    active: torch.Tensor
    """(B, K) bool, knobs with at least two options."""


@dataclass(frozen=True)
class Exploration:
    """Result of one ``explore`` call: every configuration visited, in step-major order."""

    configs: np.ndarray
    """(N, K) int64 configuration after each step of each episode (starts are not included)."""
    sketch_ids: np.ndarray
    """(N,) int64 sketch id of each visited configuration."""
    rewards: np.ndarray
    """(N,) float64 ``reward_fn`` value of each visited configuration."""
    env_index: np.ndarray
    """(N,) int64 which start (row of ``starts``) the configuration's episode began from."""
    episode_lengths: np.ndarray
    """(B,) int64 steps taken by each episode."""
    rollout: Rollout
    """The rollout buffer ``PPOAgent.update`` trains on."""


def compute_gae(
    *,
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    dones: torch.Tensor,
    terminals: torch.Tensor,
    alive: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over time-major ``(T, B)`` tensors.

    Returns ``(advantages, returns)``; entries where ``alive`` is False are 0 / meaningless.
    """
    advantages = torch.zeros_like(rewards)
    lastgaelam = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        nextnonterminal = 1.0 - terminals[t]
        delta = rewards[t] + gamma * next_values[t] * nextnonterminal - values[t]
        # The chain of the episode stops at its last step; the next row belongs to nobody.
        lastgaelam = delta + gamma * gae_lambda * (1.0 - dones[t]) * lastgaelam
        lastgaelam = lastgaelam * alive[t]
        advantages[t] = lastgaelam
    returns = advantages + values
    return advantages, returns
