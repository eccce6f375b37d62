"""The Chameleon search (ICLR'20) on MetaSchedule design spaces.

Each round of a task:
1. refit the knob-level XGBoost cost model on everything measured so far;
2. the PPO agent runs episodes from the best measured configurations and fresh random ones,
   stepping every knob by -1/0/+1, rewarded by the cost model; it keeps learning across rounds;
3. the visited configurations that were never measured are ranked by predicted throughput; the top
   ``rerank_pool`` are materialised (invalid ones dropped) and re-ranked together with
   MetaSchedule's own XGBoost on program features (a richer model the agent cannot afford to call
   tens of thousands of times); the top ``plan_size`` form the round's plan;
4. adaptive sampling: k-means over the plan (k grown in steps of 8 while the loss keeps falling
   by more than 2.5x, at most the round's measurements: ``agent_round``, 2 by default or one
   per farm device when there are more, so k = 2 on one device); one representative per cluster
   is measured, the cluster's best-ranked member (the paper takes the one closest to the centroid:
   ``representative="centroid"``);
5. sample synthesis replaces representatives that are invalid, duplicated or already measured
   (other members, then a majority vote per knob, then re-draws).
The first round of a task (no measurement yet, no warm start) measures ``random_first_round`` (8)
random valid configurations.
Random configurations (first round, fresh episode starts) come from MetaSchedule's own sampler, not
from a uniform draw over the knob options (see :meth:`KnobSpace.sample_config`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace

import numpy as np
from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.search_strategy import PySearchStrategy

from chameleon.agent.ppo import PPOAgent, PPOConfig
from chameleon.cost_model.knob_model import KnobCostModel, KnobModelConfig
from chameleon.errors import UsageError
from chameleon.sampling.adaptive import choose_k, members_by_distance
from chameleon.sampling.synthesis import synthesize
from chameleon.search.registry import SearchSetup, StrategyOptions, apply_overrides, register
from chameleon.space.space import Config, KnobSpace, to_measure_candidate

logger = logging.getLogger(__name__)

_STALE_BATCHES = 3
"""Random batches in a row without a new configuration after which a round stops drawing."""


@dataclass(frozen=True, kw_only=True)
class ChameleonConfig:
    """Hyperparameters of the search (the agent's live in :class:`PPOConfig`)."""

    plan_size: int = 64
    """Top predicted unvisited configurations per round (the paper's 64)."""
    rerank_pool: int = 128
    """Unvisited configurations the knob model shortlists for re-ranking with program features
    (``plan_size`` or less: no re-ranking)."""
    program_model_weight: float = 0.5
    """Weight of MetaSchedule's program-feature XGBoost in the plan's rank (the knob model gets the rest)."""
    adaptive_sampling: bool = True
    """Cluster the plan and measure one representative per cluster; False: measure the top of the plan."""
    k_step: int = 8
    """k-means k grows in steps of this many clusters."""
    k_threshold: float = 2.5
    """Grow k while the k-means loss drops by more than this factor."""
    representative: str = "best"
    """Which member of a cluster is measured: ``best`` (the best ranked) or ``centroid`` (the
    paper's: the one closest to the centroid); synthesis falls back to the others in that order.
    ``best`` keeps the paper's one-measurement-per-cluster diversity and adds exploitation: on the
    simulated ResNet-18 tasks it reached lower latency than ``centroid`` at the same budget
    (experiments/results/offline-representative.md)."""
    exploit_share: float = 0.0
    """Share of a round's measurements given to the top of the plan (pure exploitation) before
    adaptive sampling picks the rest; it grows linearly with the budget spent, from 0 in the first
    round to this value in the last. 0: every measurement is a cluster representative."""
    best_starts: int = 32
    """Episodes start from up to this many best measured configurations (rest: random)."""
    random_first_round: int = 8
    """Random valid configurations measured before the cost model has data (capped by round size);
    16 until session 16 (see ``agent_round``). 16 with rounds of 2 was measured against 8 on the
    11 ResNet-18 conv tasks, seeds 1 and 2 pooled: measurement ratio 1.58 against 2.72, 7 of 20 runs
    better (experiments/results/README.md, "A random first round of 16")."""
    agent_round: int = 2
    """Measurements per round once the cost model is trained (capped by the tuner's round size);
    0: the tuner's round size (agent rounds then measure k = 8, the elbow rule's first step: the
    default until session 15). Fewer per round means more refits of the cost model and the agent
    per measurement. On the 11 ResNet-18 conv tasks (AMD host, 5 timing passes, seed 1) rounds of
    4 reached the target with fewer measurements than rounds of 8 and ended on faster code (the
    default in session 15); rounds of 2 after a random first round of 8 (session 16's default)
    then needed fewer again in the same run: median 62 measurements to the target against 114, 10
    of 11 tasks reaching it against 8 (experiments/results/README.md, "Smaller agent rounds"). A run takes ~1.6x the
    wall-clock time of rounds of 4. A round's candidates are measured in parallel on a farm:
    with more devices for the key than this, a round measures one configuration per device, so
    none waits (unless the spec sets it, ``--strategy chameleon:agent_round=N``)."""
    warm_first_round: int = 0
    """With a warm start (``--warm-start``: the knob model starts from other devices' records), the
    first round is an agent round on that model alone; it measures this many configurations, one
    per k-means cluster of its plan, so the first measurements spread over the region the other
    devices favour instead of falling on its top 2. 0: ``agent_round``, like the rounds after it.
    Measured on one task only (experiments/results/README.md, "A wider first round under a warm
    start"): there two identical cold runs ended 1.40x apart, more than 8 against 0 changed; the
    warm-start set of session 21 had ended slower than cold on 3 of 11 tasks with 0."""
    even_sketches: bool = True
    """Random configurations (the first round, the agent's fresh episode starts) cover the sketches
    evenly (and the blueprint prior picks among each sketch's draws) instead of drawing each one's
    sketch at random (False: the default until session 24, which every earlier result used). With
    random sketches, a seed's draws lean alike on every task (the sketch choices come first from the
    seed's stream): with seed 2, none of the first round's 8 came from one of the 3 sketches on 4 of
    the 11 ResNet-18 conv tasks, and the prior's pick may lean further. On those 11 tasks (Zen 5,
    5 passes 0.25 s apart, seeds 1-3) even sketches ended on code 0.974x as fast as random ones in
    median (1.016, 0.865 and 0.933 on the seeds alone), faster on 9 tasks, and 13 of 33 runs reached
    the target against 6 (experiments/results/README.md, "Sketches drawn evenly" and "Even sketches
    on seeds 1 and 3")."""
    sketch_floor: float = 0.0
    """Each sketch keeps at least this share of an even split of the measurements: while one has
    fewer than ``sketch_floor * measured / sketches``, each round first measures the agent's
    best-ranked unmeasured configuration of it (the sketch furthest below). A run that settles in
    one sketch's region early keeps learning the others, so the cost model can tell when another
    sketch's best is faster (the 3 sketches of a ResNet-18 conv task: runs of one task that ended
    far apart had spent 6-7 of 128 measurements on the sketch of the fastest runs). 0: off.
    A sketch where a round finds no valid unmeasured configuration of it is left alone for the rest
    of the task.
    Session 18 simulated the same rule at a 20% share per sketch and dropped it (final latency
    1.094x, 2 tasks x 2 seeds; experiments/results/README.md, "A measurement per round for an
    under-measured sketch"). On the hardware at 0.5 (seed 3, the 11 ResNet-18 conv tasks, Zen 5): final
    latency 0.957x the default's, faster on 7 tasks, behind until ~64 measurements (same log, "A floor per
    sketch"); on seed 2's first 6 tasks slower on 4, so off."""
    search_threads: int = 0
    """Threads that replay and post-process configurations (the shortlist's, the sampler's);
    0: the tune context's (``num_threads``: the physical cores, as MetaSchedule's own search).
    Only the speed changes: the same random draws, in the same order, and the same results."""
    max_materialize_tries: int = 200
    """Attempts to find valid random configurations per round."""
    pretrained_first_round: bool = False
    """With ``--warm-start`` logs, rank each task's first round with MetaSchedule's program model
    trained on their records of every workload (cross-task transfer) instead of measuring random
    configurations. Off: on 3 ResNet-18 conv tasks (seed 0, transfer from 5 other conv tasks' runs)
    it led after 16 and after 64 measurements on 2 of them, but ended worse at 128 on 2, 1.11x slower
    in median (experiments/results/README.md, "Cross-task transfer"); small per-task budgets are not measured."""
    strict_validity: bool = False
    """Reject configurations that break any of the blueprint's soft rules too (hard rules and the
    soft rules in ``validity.REJECTING_SOFT_RULES`` always reject)."""
    prior_oversample: int = 4
    """With a blueprint, random configurations are the prior's pick of this many times as many samples."""
    prior_weight: float = 0.1
    """Weight of the blueprint prior (log-weight, 0 best) added to the agent's reward."""
    ppo: PPOConfig = field(default_factory=lambda: PPOConfig(num_starts=64, max_steps=200, minibatch_size=64))
    model: KnobModelConfig = field(default_factory=KnobModelConfig)

    def __post_init__(self) -> None:
        if self.search_threads < 0:
            raise UsageError(
                f"search_threads must be 0 (the tune context's) or more, not {self.search_threads}"
            )
        if self.warm_first_round < 0:
            raise UsageError(f"warm_first_round must be 0 (agent_round) or more, not {self.warm_first_round}")
        if self.agent_round < 0:
            raise UsageError(
                f"agent_round must be 0 (the tuner's round size) or more, not {self.agent_round}"
            )
        if not 0.0 <= self.sketch_floor <= 1.0:
            raise UsageError(f"sketch_floor must be in [0, 1], not {self.sketch_floor}")
        if not 0.0 <= self.exploit_share <= 1.0:
            raise UsageError(f"exploit_share must be in [0, 1], not {self.exploit_share}")
        if self.representative not in ("centroid", "best"):
            raise UsageError(f"representative must be 'centroid' or 'best', not {self.representative!r}")


@derived_object
class ChameleonSearch(PySearchStrategy):
    """PPO agent + adaptive sampling + sample synthesis (see module docstring)."""

    def __init__(
        self,
        *,
        config: ChameleonConfig | None = None,
        seed: int = 0,
        blueprint=None,
        warm_start: tuple[str, ...] = (),
        stats: dict | None = None,
        program_model=None,
        pretrained_model=None,
    ) -> None:
        self.config = config or ChameleonConfig()
        self.stats = {} if stats is None else stats
        """Shared by every clone (one per task): ``post_tuning`` puts the task's counters here."""
        self.program_model = program_model
        """MetaSchedule's ``XGBModel`` on per-store program features, shared by every task and updated
        by the task scheduler after each measurement; it re-ranks the knob model's shortlist."""
        self.pretrained_model = pretrained_model
        """MetaSchedule's ``XGBModel`` trained on the warm-start logs' records of every workload
        (``search.transfer``); it ranks the first round of a task whose knob model has nothing to
        learn from yet. None unless ``pretrained_first_round`` and a warm start."""
        self.seed = seed
        self.blueprint = blueprint
        """Hardware blueprint (Glimpse): priors, validity checks, embedding in the cost model; None: off."""
        self.warm_start = tuple(warm_start)

    # ---------------------------------------------------------------- lifecycle
    def _initialize_with_tune_context(self, context) -> None:
        self.context = context
        self.postprocs = list(context.space_generator.postprocs)
        self.threads = self.config.search_threads or max(int(context.num_threads or 1), 1)

    def pre_tuning(
        self, max_trials, num_trials_per_iter, design_spaces, database=None, cost_model=None
    ) -> None:
        self.max_trials = int(max_trials)
        self.round_size = int(num_trials_per_iter)
        self.sent = 0
        self.rng = np.random.default_rng(self.seed)
        self.space = KnobSpace.from_design_spaces(
            mod=self.context.mod,
            design_spaces=design_spaces,
            postprocs=self.postprocs,
            precheck=self._precheck(),
        )
        n_sketch, kmax = len(self.space.sketches), max(self.space.num_knobs_max, 1)
        self.n_options = np.ones((n_sketch, kmax), dtype=np.int64)
        for s in range(n_sketch):
            counts = self.space.option_counts(s)
            self.n_options[s, : len(counts)] = counts
        self.measured: dict[Config, float] = {}
        self.invalid: set[Config] = set()
        self.pending: list[Config] = []
        self.barren: set[int] = set()
        """Sketches where ``sketch_floor`` found no valid unmeasured configuration among the agent's visits."""
        self.model = KnobCostModel(config=self.config.model, seed=self.seed)
        self.agent = PPOAgent(num_knobs=kmax, extra_dim=n_sketch, config=self.config.ppo, seed=self.seed)
        self.prior = None
        self.embedding = np.zeros(0, dtype=np.float32)
        self.rejected = 0
        self.checks_validity = False
        if self.blueprint is not None:
            from chameleon.hardware.blueprints import embedding
            from chameleon.hardware.priors import BlueprintPrior
            from chameleon.hardware.validity import enforced_by_target

            self.prior = BlueprintPrior(space=self.space, blueprint=self.blueprint)
            self.embedding = embedding(self.blueprint).astype(np.float32)
            self.checks_validity = self.config.strict_validity or not enforced_by_target(
                self.context.target, self.postprocs, self.blueprint
            )
        self._load_database(database)
        if self.warm_start:
            from chameleon.search.transfer import warm_start_records

            X, y = warm_start_records(
                self.space, self.context.mod, self.warm_start, with_embedding=self.blueprint is not None
            )
            if len(y):
                self.model.set_prior(X, y)

    def _precheck(self):
        """On a GPU target, reject before the postprocessors what ``VerifyGPUCode`` rejects after them."""
        from chameleon.tvm_glue.gpu_precheck import GpuPrecheck

        target = self.context.target
        return GpuPrecheck(target).rejects if GpuPrecheck.applies_to(target, self.postprocs) else None

    def post_tuning(self) -> None:
        self.stats[self.context.task_name] = {
            "measured": len(self.measured),
            "invalid": len(self.invalid) - self.rejected,
            "rejected_by_blueprint": self.rejected,
            "invalid_before_postprocs": self.space.prechecked,
        }
        logger.info(
            "%s: %d measured, %d invalid configurations seen (%d of them found before the postprocessors), "
            "%d rejected by the blueprint before measuring",
            self.context.task_name,
            len(self.measured),
            len(self.invalid) - self.rejected,
            self.space.prechecked,
            self.rejected,
        )

    def clone(self):
        return ChameleonSearch(
            config=self.config,
            seed=self.seed,
            blueprint=self.blueprint,
            warm_start=self.warm_start,
            stats=self.stats,
            program_model=self.program_model,
            pretrained_model=self.pretrained_model,
        )

    def _load_database(self, database) -> None:
        if database is None or not database.has_workload(self.context.mod):
            return
        from chameleon.logs.timeline import mean_latency

        workload = database.commit_workload(self.context.mod)
        for rec in database.get_top_k(workload, 100000):
            config = self.space.decode_trace_fast(rec.trace)
            if config is not None:
                lat = mean_latency(rec.run_secs)
                self.measured[config] = math.inf if lat is None else lat
        logger.info("%s: %d configurations from the log", self.context.task_name, len(self.measured))

    # ---------------------------------------------------------------- one round
    def generate_measure_candidates(self):
        budget = min(self.round_size, self.max_trials - self.sent)
        if budget <= 0:
            return None
        trained = self._fit_model()
        if trained:
            chosen = self._agent_round(min(budget, self._agent_budget() or budget))
        elif self.pretrained_model is not None and self.pretrained_model.booster is not None:
            chosen = self._ranked_random_round(budget)
        else:
            chosen = self._random_valid(min(budget, self.config.random_first_round))
        if not chosen:
            chosen = self._random_valid(budget)
        if not chosen:
            logger.info("%s: no valid unmeasured configuration left", self.context.task_name)
            return None
        self.pending = [c for c, _ in chosen]
        self.sent += len(chosen)
        return [to_measure_candidate(sch) for _, sch in chosen]

    def notify_runner_results(self, measure_candidates, results) -> None:
        from chameleon.logs.timeline import mean_latency

        for config, result in zip(self.pending, results, strict=True):
            lat = None if result.error_msg else mean_latency(result.run_secs)
            self.measured[config] = lat if lat is not None else math.inf
        self.pending = []

    # ---------------------------------------------------------------- parts
    def _agent_budget(self) -> int:
        """Measurements the agent's round asks for (0: the whole round); a trained model with
        nothing measured yet is a warm start's."""
        if not self.measured and self.config.warm_first_round:
            return self.config.warm_first_round
        return self.config.agent_round

    def _fit_model(self) -> bool:
        if not self.measured:  # only a warm start's base model can predict yet
            return self.model.fit(np.zeros((0, self._feature_width())), np.zeros(0))
        configs = list(self.measured)
        return self.model.fit(self._features(configs), np.array([self.measured[c] for c in configs]))

    def _feature_width(self) -> int:
        return self.space.feature_width + len(self.embedding)

    def _features(self, configs: list[Config]) -> np.ndarray:
        return self._with_embedding(self.space.features(configs))

    def _features_from_arrays(self, sketch_ids: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return self._with_embedding(self.space.features_from_arrays(sketch_ids, idx))

    def _with_embedding(self, X: np.ndarray) -> np.ndarray:
        if not len(self.embedding):
            return X
        return np.concatenate([X, np.broadcast_to(self.embedding, (len(X), len(self.embedding)))], axis=1)

    def _random_configs(self, n: int, replayed: dict | None = None) -> list[Config]:
        """``n`` fresh configurations from MetaSchedule's own sampler (see
        :meth:`KnobSpace.sample_config`); with a blueprint, the prior picks them from a larger
        pool. With ``even_sketches``, each sketch gets its share of them. Distinct; callers skip
        what is taken. ``replayed``: where to keep the picked configurations' sampled schedules,
        for :meth:`_materialize`."""
        oversample = self.config.prior_oversample if self.prior is not None else 1
        wanted = self.space.even_sketches(self.rng, n) if self.config.even_sketches else None
        sketches = None if wanted is None else np.repeat(wanted, oversample)
        samples = self.space.sample_many(self.rng, n * oversample, threads=self.threads, sketches=sketches)
        drawn = dict(d for d in samples if d)
        pool = list(drawn)
        if self.prior is None:
            picked = pool
        elif wanted is None:
            picked = self.prior.choose(pool, n, self.rng)
        else:  # the prior picks within each sketch, so the picks stay as even as the draws
            picked = []
            for s, count in zip(*np.unique(wanted, return_counts=True), strict=True):
                picked += self.prior.choose([c for c in pool if c[0] == s], int(count), self.rng)
        if replayed is not None:
            replayed.update((c, drawn[c]) for c in picked)
        return picked

    def _taken(self, config: Config, chosen: set[Config]) -> bool:
        return config in self.measured or config in chosen

    def _materialize(self, config: Config, cache: dict, replayed: dict | None = None):
        """The schedule of ``config``; None (remembered) when it is not a valid program or the
        blueprint's validity rules reject it, which saves its measurement. ``replayed``: sampled
        schedules by configuration (see :meth:`_random_configs`); one found there is used up."""
        if config in cache:
            return cache[config]
        sch = None
        if config not in self.invalid:
            seed = self._replay_seed()
            drawn = replayed.pop(config, None) if replayed else None
            sch = self.space.materialize(config, seed=seed, replayed=drawn)
        return self._remember(config, sch, cache)

    def _replay_seed(self) -> int:
        """The seed of one configuration's replay: one draw from ``self.rng``, the same in
        :meth:`_materialize` and :meth:`_materialize_all`, so both take the same stream."""
        return int(self.rng.integers(1, 2**30))

    def _remember(self, config: Config, sch, cache: dict):
        """Keep a replayed ``sch`` (None: not a valid program) in ``cache``, after the blueprint's
        validity rules; an invalid configuration is remembered as such."""
        if sch is not None and self.checks_validity and self._rejected_by_blueprint(sch):
            self.rejected += 1
            sch = None
        if sch is None:
            self.invalid.add(config)
        cache[config] = sch
        return sch

    def _materialize_all(self, configs: list[Config], cache: dict) -> list:
        """:meth:`_materialize` of each of ``configs``, the replays on ``self.threads`` threads:
        the same seeds from ``self.rng`` and the same results as one call after another."""
        todo = [c for c in dict.fromkeys(configs) if c not in cache and c not in self.invalid]
        items = [(c, self._replay_seed()) for c in todo]
        for config, sch in zip(todo, self.space.materialize_many(items, threads=self.threads), strict=True):
            self._remember(config, sch, cache)
        return [cache.setdefault(c, None) for c in configs]  # the rest: invalid before

    def _rejected_by_blueprint(self, sch) -> bool:
        from chameleon.hardware.validity import check, is_rejected

        return is_rejected(check(sch.mod, self.blueprint), strict=self.config.strict_validity)

    def _random_valid(self, n: int) -> list[tuple[Config, object]]:
        """Up to ``n`` valid unmeasured sampled configurations: a first batch of ``n`` draws, then
        batches of twice what is still missing (on a CPU nearly every draw is valid, so the first
        batch mostly suffices; each draw costs ``prior_oversample`` replays of ~10-20 ms for a conv, and
        drawing ``2n`` up front spent about half of a first round's replays on draws never used).

        Gives up after ``max_materialize_tries`` draws, when every configuration of the space is
        taken, or after ``_STALE_BATCHES`` batches in a row that bring no configuration not seen
        before: a small space (a reshape has one configuration, a pooling a few dozen) is used up,
        and drawing on would replay its sketches thousands of times for nothing.
        """
        chosen: list[tuple[Config, object]] = []
        replayed: dict = {}  # the draws' schedules: materialising them needs no second replay
        draws = stale = 0
        while len(chosen) < n and draws < self.config.max_materialize_tries and stale < _STALE_BATCHES:
            if self._space_used_up(len(chosen)):
                break
            want = (n - len(chosen)) * (2 if draws else 1)
            batch = self._random_configs(want, replayed)
            draws += want
            taken = {c for c, _ in chosen}
            fresh = [c for c in dict.fromkeys(batch) if c not in taken and c not in self.measured]
            stale = 0 if any(c not in self.invalid for c in fresh) else stale + 1
            chosen += self._first_valid(fresh, n - len(chosen), replayed=replayed)
        return chosen

    def _ranked_random_round(self, budget: int) -> list[tuple[Config, object]]:
        """A first round ranked by the model pre-trained on other workloads (warm start):
        ``rerank_pool`` random valid configurations, that model's top ``plan_size`` as the plan,
        then the usual choice (one representative per cluster), so the first measurements are both
        promising and diverse enough to train the knob model on.

        The pre-trained model ranks this first round only. Later rounds re-rank with the program
        model that learns from this run's measurements alone, as without a warm start: with the
        warm start's records in that model too (retrained every round), chameleon ended slower on
        all 3 ResNet-18 tasks it was tried on (experiments/results/README.md, "Cross-task transfer")."""
        pool = self._random_valid(max(self.config.rerank_pool, budget))
        if len(pool) <= budget:
            return pool
        self._schedules = dict(pool)
        program = np.asarray(
            self.pretrained_model.predict(self.context, [to_measure_candidate(sch) for _, sch in pool]),
            dtype=np.float64,
        )
        order = np.argsort(-program, kind="stable")[: self.config.plan_size]
        plan_ids, plan_idx = self.space.as_arrays([pool[i][0] for i in order])
        return self._choose(plan_ids, plan_idx, program[order], budget)

    def _space_used_up(self, chosen: int) -> bool:
        """Every configuration of the space is measured, invalid or chosen this round."""
        return self.space.size() <= len(self.measured) + len(self.invalid) + chosen

    def _first_valid(
        self, configs, n: int, cache: dict | None = None, replayed: dict | None = None
    ) -> list[tuple[Config, object]]:
        """The first ``n`` of ``configs`` that are unmeasured, distinct and valid programs."""
        chosen: list[tuple[Config, object]] = []
        keys: set[Config] = set()
        cache = {} if cache is None else cache
        for config in configs:
            if len(chosen) >= n:
                break
            if self._taken(config, keys):
                continue
            sch = self._materialize(config, cache, replayed)
            if sch is not None:
                chosen.append((config, sch))
                keys.add(config)
        return chosen

    def _starts(self) -> tuple[np.ndarray, np.ndarray]:
        n = self.config.ppo.num_starts
        valid = sorted((lat, c) for c, lat in self.measured.items() if math.isfinite(lat))
        best = [c for _, c in valid[: self.config.best_starts]]
        configs = best + self._random_configs(n - len(best))
        return self.space.as_arrays(configs)

    def _agent_round(self, budget: int) -> list[tuple[Config, object]]:
        sketch_ids, idx = self._starts()
        n_sketch = len(self.space.sketches)
        self._schedules: dict = {}  # this round's materialised configurations

        def reward_fn(configs: np.ndarray, sids: np.ndarray) -> np.ndarray:
            reward = self.model.predict(self._features_from_arrays(sids, configs)) - 0.5
            if self.prior is not None:
                reward = reward + self.config.prior_weight * self.prior.score(sids, configs)
            return reward

        exploration = self.agent.explore(
            starts=idx,
            sketch_ids=sketch_ids,
            n_options=self.n_options[sketch_ids],
            extra=np.eye(n_sketch, dtype=np.float32)[sketch_ids],
            reward_fn=reward_fn,
        )
        self.agent.update(exploration)
        lagging = self._lagging_sketch()
        floor = [] if lagging is None else self._best_of_sketch(exploration, lagging)
        plan_ids, plan_idx, scores = self._plan(
            exploration.configs, exploration.sketch_ids, exploration.rewards
        )
        plan_ids, plan_idx, scores = self._rerank(plan_ids, plan_idx, scores)
        taken = {c for c, _ in floor}
        return floor + self._choose(plan_ids, plan_idx, scores, budget - len(floor), taken)

    def _lagging_sketch(self) -> int | None:
        """The sketch furthest below its ``sketch_floor`` share of the measurements, or None."""
        n_sketch = len(self.space.sketches)
        if not self.config.sketch_floor or n_sketch < 2:
            return None
        counts = np.bincount([s for s, _ in self.measured], minlength=n_sketch)
        shortfall = self.config.sketch_floor * len(self.measured) / n_sketch - counts
        shortfall[list(self.barren)] = 0.0
        s = int(np.argmax(shortfall))
        return s if shortfall[s] > 0 else None

    def _best_of_sketch(self, exploration, sketch: int) -> list[tuple[Config, object]]:
        """The best-ranked valid unmeasured configuration the agent visited in ``sketch`` (ranked
        like the plan); none found: the sketch is barren from now on."""
        rows = exploration.sketch_ids == sketch
        ids, idx, scores = self._plan(
            exploration.configs[rows], exploration.sketch_ids[rows], exploration.rewards[rows]
        )
        best = self._take_top(*self._rerank(ids, idx, scores)[:2], 1)
        if not best:
            self.barren.add(sketch)
        return best

    def _choose(
        self, plan_ids, plan_idx, scores, budget: int, taken: frozenset | set = frozenset()
    ) -> list[tuple[Config, object]]:
        """The round's measurements from the ranked plan, none of ``taken``: its top share
        (``exploit_share``), then one representative per cluster of the plan."""
        if len(plan_ids) == 0 or budget <= 0:
            return []
        if (
            not self.config.adaptive_sampling
            or len(plan_ids) <= budget
            and len(plan_ids) < self.config.k_step
        ):
            return self._take_top(plan_ids, plan_idx, budget, taken)
        greedy = self._take_top(plan_ids, plan_idx, self._exploit_count(budget), taken)
        taken = set(taken) | {c for c, _ in greedy}
        return greedy + self._sample_adaptively(plan_ids, plan_idx, scores, budget - len(greedy), taken)

    def _exploit_count(self, budget: int) -> int:
        """Measurements of this round that go to the plan's top (see ``exploit_share``)."""
        spent = self.sent / max(self.max_trials, 1)
        return min(budget, int(round(budget * self.config.exploit_share * spent)))

    def _plan(self, configs: np.ndarray, sketch_ids: np.ndarray, rewards: np.ndarray):
        """Unique visited configurations not yet measured, best predicted first: the shortlist."""
        rows = np.concatenate([sketch_ids[:, None], configs], axis=1)
        uniq, first = np.unique(rows, axis=0, return_index=True)
        scores = rewards[first]
        order = np.argsort(-scores, kind="stable")
        keep = []
        for i in order:
            s = int(uniq[i, 0])
            config = (s, tuple(int(v) for v in uniq[i, 1 : 1 + len(self.space.option_counts(s))]))
            if config in self.measured or config in self.invalid:
                continue
            keep.append(i)
            if len(keep) >= max(self.config.plan_size, self.config.rerank_pool):
                break
        keep = np.array(keep, dtype=np.int64)
        if keep.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros((0, configs.shape[1]), dtype=np.int64), np.zeros(0)
        return uniq[keep, 0], uniq[keep, 1:], scores[keep]

    def _rerank(self, plan_ids, plan_idx, scores):
        """The top ``plan_size`` of the shortlist: valid programs only, ranked by the mean of the
        knob model's and the program model's rank percentiles (knob model alone while the
        program model is untrained or absent)."""
        ready = self._program_model_ready()
        if len(plan_ids) <= self.config.plan_size and not ready:
            return plan_ids, plan_idx, scores
        configs = [self._config(sid, row) for sid, row in zip(plan_ids, plan_idx, strict=True)]
        schedules = self._materialize_all(configs, self._schedules)
        valid = [i for i, sch in enumerate(schedules) if sch is not None]
        plan_ids, plan_idx, scores = plan_ids[valid], plan_idx[valid], scores[valid]
        if ready and len(valid) > 1:
            candidates = [to_measure_candidate(schedules[i]) for i in valid]
            program = np.asarray(self.program_model.predict(self.context, candidates), dtype=np.float64)
            w = self.config.program_model_weight
            scores = (1 - w) * _percentile_ranks(scores) + w * _percentile_ranks(program)
        order = np.argsort(-scores, kind="stable")[: self.config.plan_size]
        return plan_ids[order], plan_idx[order], scores[order]

    def _program_model_ready(self) -> bool:
        model = self.program_model
        return (
            model is not None
            and getattr(model, "booster", None) is not None
            and model.data_size >= model.num_warmup_samples
        )

    def _config(self, sid: int, row: np.ndarray) -> Config:
        return int(sid), tuple(int(v) for v in row[: len(self.space.option_counts(int(sid)))])

    def _take_top(self, plan_ids, plan_idx, budget, taken=frozenset()) -> list[tuple[Config, object]]:
        configs = (self._config(sid, row) for sid, row in zip(plan_ids, plan_idx, strict=True))
        return self._first_valid((c for c in configs if c not in taken), budget, cache=self._schedules)

    def _sample_adaptively(
        self, plan_ids, plan_idx, scores, budget, taken: set[Config]
    ) -> list[tuple[Config, object]]:
        if budget <= 0:
            return []
        X = self._features_from_arrays(plan_ids, plan_idx)
        k, kmeans = choose_k(
            X,
            k_step=self.config.k_step,
            k_max=max(1, min(budget, len(plan_ids))),
            threshold=self.config.k_threshold,
            seed=int(self.rng.integers(2**31)),
        )
        chosen, keys, cache = [], set(taken), self._schedules
        for members in members_by_distance(X, kmeans):
            if len(chosen) >= budget:
                break
            if self.config.representative == "best":
                members = members[np.argsort(-scores[members], kind="stable")]
            result = synthesize(
                members=plan_idx[members],
                sketch_ids=plan_ids[members],
                n_options=self.n_options[plan_ids[members]],
                is_taken=lambda c, s: self._taken(self._config(s, c), keys),
                is_invalid=lambda c, s: self._materialize(self._config(s, c), cache) is None,
                seed=int(self.rng.integers(2**31)),
            )
            if result is None:
                continue
            config = self._config(result.sketch_id, result.config)
            chosen.append((config, cache[config]))
            keys.add(config)
        logger.debug("%s: k=%d, %d candidates", self.context.task_name, k, len(chosen))
        return chosen


def _setup(options: StrategyOptions, config: ChameleonConfig, *, blueprint: bool = True) -> SearchSetup:
    # The task scheduler keeps MetaSchedule's program-feature XGBoost up to date after every
    # round (UpdateCostModel); the strategy holds the same object to re-rank its shortlist. Its
    # warm-up is shortened from 100 samples to one round's worth: it only re-ranks, never decides alone.
    # With warm-start logs, a second one is trained on their records, to rank each task's first round.
    from tvm.s_tir.meta_schedule.cost_model import XGBModel

    from chameleon.search.transfer import program_model as make_program_model

    config = apply_overrides(config, options.overrides)
    if 0 < config.agent_round < options.devices and "agent_round" not in dict(options.overrides):
        config = replace(config, agent_round=options.devices)
        logger.info("agent rounds measure %d configurations: one per farm device", options.devices)
    bp = None
    if blueprint and options.blueprint and options.target_json:
        from chameleon.hardware.target_blueprint import blueprint_for_target

        bp = blueprint_for_target(options.target_json)
    stats: dict = {}
    program_model = XGBModel(num_warmup_samples=16, num_tuning_cores=1) if config.rerank_pool > 0 else None
    pretrained = (
        make_program_model(options, num_tuning_cores=1)
        if options.warm_start and config.pretrained_first_round
        else None
    )
    strategy = ChameleonSearch(
        config=config,
        seed=options.seed,
        blueprint=bp,
        warm_start=options.warm_start,
        stats=stats,
        program_model=program_model,
        pretrained_model=pretrained,
    )
    return SearchSetup(strategy=strategy, cost_model=program_model or "random", stats=stats)


@register(
    "chameleon",
    "PPO agent + adaptive sampling + sample synthesis (Chameleon) + hardware blueprint (Glimpse)",
    config_class=ChameleonConfig,
)
def chameleon(options: StrategyOptions) -> SearchSetup:
    return _setup(options, ChameleonConfig())


@register(
    "chameleon-no-as",
    "ablation: chameleon without adaptive sampling (measures the agent's top predictions)",
    config_class=ChameleonConfig,
)
def chameleon_no_as(options: StrategyOptions) -> SearchSetup:
    return _setup(options, ChameleonConfig(adaptive_sampling=False))


@register(
    "chameleon-no-bp",
    "ablation: chameleon without the hardware blueprint (same as --no-blueprint)",
    config_class=ChameleonConfig,
)
def chameleon_no_bp(options: StrategyOptions) -> SearchSetup:
    return _setup(options, ChameleonConfig(), blueprint=False)


def _percentile_ranks(values: np.ndarray) -> np.ndarray:
    """Rank of each value in [0, 1] (1: the largest); ties share the mean rank."""
    from scipy.stats import rankdata

    if len(values) < 2:
        return np.ones(len(values))
    return (rankdata(values) - 1) / (len(values) - 1)
