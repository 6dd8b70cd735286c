"""Reference model of lzq's dispatch order: nice-weighted fair queueing over flows (issue 5).

Pure Python, no database. ``benchmarks/fairness_sim.py`` drives these policies through a slot
simulator to choose the SQL design; ``tests/unit/test_fairness_model.py`` checks their properties;
later SQL tests can replay the same push/claim traces against ``lzq_claim`` and compare the ids.

Vocabulary
----------
* **nice** -20..20 is a weight, as in Linux: ``weight(nice) = 1024 / 1.25**nice``.
* A job costs ``1 / weight`` of virtual time. The model (and the SQL) use the integer
  ``COST[nice] = round(2**20 * 1.25**nice)`` (= 2**30 / weight) so that tags are exact bigints:
  the set-based claim and the one-at-a-time loop then agree bit for bit, no float ties.
* A **flow** is ``(queue, fairness_key, nice)``; jobs are FIFO inside a flow, in the order they
  became ready (SQL: a ``ready_seq`` stamped by every transition to ready). A flow is *active*
  while it holds ready jobs; ``act_seq`` numbers activations (the older active flow is first).
* A **tag** is a job's virtual finish time. Claims dispatch ready jobs in increasing
  ``(tag, cost, act_seq)``: smallest tag first; on a tie the higher weight, then the flow active
  longest. (Within a flow tags grow, so this is a total order; SQL can index it.)

Policies (each has ``ready(job)``, ``claim(n) -> [job]``, ``finished(job)``, ``len()``)
-----------------------------------------------------------------------------------
* :class:`FifoPolicy` (P0): job id order.
* :class:`PriorityPolicy` (P1): strict nice, then id (what ``lzq_claim`` does today).
* :class:`FlowsPolicy` (A and C): a flows table. Each flow keeps ``vt``, the tag of its last
  dispatched job; its k-th ready job has tag ``vt + k * cost``. A flow that becomes active
  starts at ``vt = max(vt, V)`` (no banked credit). ``vclock`` picks V:
  ``"min_vt"`` (A, as DESIGN.md §4 sketches: the smallest vt of the active flows) or
  ``"last_tag"`` (C: the largest tag dispatched so far -- self-clocked fair queueing, Golestani
  1994). The claim is set-based as SQL would run it (``claim="set"``) or one job at a time
  (``claim="loop"``, the specification the set-based claim must equal).
* :class:`TagPolicy` (B): each job is stamped when it becomes ready with
  ``tag = max(V, flow_last_tag) + cost`` (V = largest dispatched tag); claims take the smallest
  tags. Same order as C (a property test shows it), different cost in SQL: B writes the flow's
  row at every push, C only when a flow turns active. lzq's SQL is B without that write: the
  flow's last tag is read from its ready jobs (``_lzq_stamp_ready``), ties broken by job id
  (``TagPolicy(tie_break="id")``; ``tests/sql/test_fair_dispatch.py`` replays traces against it).
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, deque
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction

NICE_MIN, NICE_MAX = -20, 20
NICES = range(NICE_MIN, NICE_MAX + 1)


def weight(nice: int) -> float:
    """Linux-like weight: 1024 at nice 0, 1.25x per step (the kernel's sched_prio_to_weight)."""
    return 1024 / 1.25**nice


#: Virtual-time cost of one job at each nice, exact integers: round(2**30 / weight(nice)).
#: nice -20 -> 12089, 0 -> 1048576, 5 -> 3200000, 20 -> 90949470 (ratio -20:+20 = 7523.3).
COST: dict[int, int] = {n: round(Fraction(2**20) * Fraction(5, 4) ** n) for n in NICES}

FlowKey = tuple[str, Hashable, int]  # (queue, fairness_key, nice)


@dataclass(eq=False)
class Job:
    """A job as the dispatcher sees it. ``id`` numbers pushes (FIFO for P0, a tie-break for P1);
    inside a flow, FIFO is the order in which ``ready()`` saw the jobs."""

    id: int
    nice: int = 0
    key: Hashable = "job"  # fairness_key (default in lzq: the job name)
    queue: str = "default"
    arrive: float = 0.0  # simulation bookkeeping, ignored by the policies
    duration: float = 1.0  # idem (used only by charge="time")
    charged: float = 0.0  # what FlowsPolicy(charge="time") charged at dispatch

    @property
    def flow(self) -> FlowKey:
        return (self.queue, self.key, self.nice)

    def __repr__(self) -> str:
        return f"Job({self.id}, nice={self.nice}, key={self.key!r})"


@dataclass
class Stats:
    """Work counters, as SQL would pay them (row = an index entry or a table row touched)."""

    claims: int = 0
    rounds: int = 0  # claim rounds (SQL: statements re-run inside one lzq_claim call)
    rows_read: int = 0  # flow rows + job heads read by claims
    ready_flow_writes: int = 0  # flow-row writes on the ready path (push, retry, ...)
    claim_flow_writes: int = 0  # flow-row writes by claims (advance vt, deactivate)


class FifoPolicy:
    """P0: plain FIFO by job id (what a broker queue would do)."""

    name = "P0 fifo"

    def __init__(self) -> None:
        self._heap: list[tuple[int, Job]] = []
        self.stats = Stats()

    def __len__(self) -> int:
        return len(self._heap)

    def _key(self, job: Job) -> tuple:
        return (job.id,)

    def ready(self, job: Job) -> None:
        heapq.heappush(self._heap, (*self._key(job), job))

    def claim(self, n: int) -> list[Job]:
        out = [heapq.heappop(self._heap)[-1] for _ in range(min(n, len(self._heap)))]
        self.stats.claims += 1
        self.stats.rounds += 1
        self.stats.rows_read += len(out)
        return out

    def finished(self, job: Job) -> None:
        pass


class PriorityPolicy(FifoPolicy):
    """P1: strict priority (lowest nice first), then FIFO -- lzq_claim today."""

    name = "P1 strict"

    def _key(self, job: Job) -> tuple:
        return (job.nice, job.id)


class TagPolicy(FifoPolicy):
    """B: stamp a tag when the job becomes ready; claim in tag order from one index.

    SQL cost: every ready transition reads V and *updates* its flow's ``last_tag`` (a row lock
    held to commit): concurrent pushes into one flow serialize on that row.
    """

    name = "B tag@ready"

    def __init__(self, tie_break: str = "act_seq") -> None:
        """``tie_break``: after (tag, cost), the flow active longest (``"act_seq"``, as C) or the
        job id (``"id"``: what lzq's SQL does, ``ORDER BY vtag, priority, id``)."""
        super().__init__()
        self.tie_break = tie_break
        self.vclock = 0  # V: the largest tag dispatched
        self.last_tag: dict[FlowKey, int] = {}
        self.pending: Counter[FlowKey] = Counter()  # only to number activations like C
        self.act_seq: dict[FlowKey, int] = {}
        self._acts = itertools.count(1)

    def ready(self, job: Job) -> None:
        tag = max(self.vclock, self.last_tag.get(job.flow, 0)) + COST[job.nice]
        self.last_tag[job.flow] = tag
        self.stats.ready_flow_writes += 1
        if not self.pending[job.flow]:
            self.act_seq[job.flow] = next(self._acts)
        self.pending[job.flow] += 1
        tie = self.act_seq[job.flow] if self.tie_break == "act_seq" else job.id
        heapq.heappush(self._heap, (tag, COST[job.nice], tie, job))

    def claim(self, n: int) -> list[Job]:
        taken = [heapq.heappop(self._heap) for _ in range(min(n, len(self._heap)))]
        self.stats.claims += 1
        self.stats.rounds += 1
        self.stats.rows_read += len(taken)
        for *_, job in taken:
            self.pending[job.flow] -= 1
        if taken:
            self.vclock = max(self.vclock, taken[-1][0])
            self.stats.claim_flow_writes += 1  # the queue's clock row
        return [t[-1] for t in taken]


@dataclass(eq=False)
class Flow:
    key: FlowKey
    cost: int
    vt: float = 0  # tag of the last dispatched job (int unless charge="time")
    jobs: deque[Job] = field(default_factory=deque)
    active: bool = False
    act_seq: int = 0  # activation number: the tie-break after weight
    version: int = 0  # bumped whenever (vt, head) changes: invalidates stale heap entries
    est: float | None = None  # charge="time" only: running estimate of the flow's job duration

    @property
    def step(self) -> float:
        """Virtual time one more job of this flow costs."""
        return self.cost if self.est is None else self.cost * self.est

    def head_key(self) -> tuple:
        """Sort key of the flow's next job: (tag, cost, act_seq)."""
        return (self.vt + self.step, self.cost, self.act_seq)


class FlowsPolicy:
    """A / C: per-flow virtual time in a flows table; claim = smallest next tags.

    Parameters
    ----------
    vclock: ``"min_vt"`` (A) or ``"last_tag"`` (C); see the module docstring.
    claim: ``"set"`` (as SQL: candidate flows, then their heads, then the n smallest tags) or
        ``"loop"`` (one job at a time; the reference).
    head_limit: heads each candidate flow reads per round: ``None`` = the credit n (the plain
        set-based claim), an int h, or ``"auto"``: the number of the flow's *virtual* tags
        ``vt + k*step`` not above the n-th smallest virtual tag of all candidates (at least 1) --
        about n heads in all, as if every flow were backlogged.
    exact: keep every round a prefix of the one-at-a-time order whatever the limits (see
        ``_claim_round``); a round may then come up short and the next round continues. With
        ``exact=False`` a head limit silently reorders (the naive version, for measurement).
    max_rounds: rounds per claim call (lzq_claim today: 8).
    charge: ``"count"`` (every job costs ``COST[nice]``) or ``"time"`` (variant: a job costs
        ``COST[nice] * estimated duration`` at dispatch, corrected to the real duration at
        finish, so flows share slot-time rather than dispatch counts).
    """

    def __init__(
        self,
        vclock: str = "last_tag",
        claim: str = "set",
        head_limit: int | str | None = None,
        max_rounds: int = 8,
        charge: str = "count",
        exact: bool = True,
        name: str | None = None,
    ) -> None:
        assert vclock in ("min_vt", "last_tag") and claim in ("set", "loop")
        assert charge in ("count", "time")
        self.vclock, self.claim_mode, self.head_limit = vclock, claim, head_limit
        self.max_rounds, self.charge, self.exact = max_rounds, charge, exact
        self.name = name or {"min_vt": "A flows/minvt", "last_tag": "C flows/self"}[vclock]
        self.flows: dict[FlowKey, Flow] = {}
        self.last_tag: float = 0  # largest tag dispatched (V for "last_tag"; the idle floor for "min_vt")
        self._sched: list[tuple] = []  # lazy heap of active flows by head_key()
        self._by_vt: list[tuple] = []  # lazy heap of active flows by vt ("min_vt" only)
        self._n_ready = 0
        self._acts = itertools.count(1)
        self.stats = Stats()

    def __len__(self) -> int:
        return self._n_ready

    # -- the ready path: push, promote, retry, ... all come through here -------------------
    def system_vtime(self) -> float:
        """V, where a flow that turns active starts."""
        if self.vclock == "min_vt":
            while self._by_vt:
                vt, version, _, flow = self._by_vt[0]
                if flow.active and flow.version == version:
                    return vt
                heapq.heappop(self._by_vt)
        return self.last_tag

    def ready(self, job: Job) -> None:
        flow = self.flows.get(job.flow)
        if flow is None:
            flow = self.flows[job.flow] = Flow(job.flow, COST[job.nice])
            if self.charge == "time":
                flow.est = 1.0
        flow.jobs.append(job)
        self._n_ready += 1
        if not flow.active:  # inactive -> active: the only flow-row write on the ready path
            flow.vt = max(flow.vt, self.system_vtime())
            flow.active = True
            flow.act_seq = next(self._acts)
            self.stats.ready_flow_writes += 1
            self._reschedule(flow)

    def _reschedule(self, flow: Flow) -> None:
        flow.version += 1
        if flow.active:
            heapq.heappush(self._sched, (*flow.head_key(), flow.version, flow))
            if self.vclock == "min_vt":
                heapq.heappush(self._by_vt, (flow.vt, flow.version, id(flow), flow))

    def _top_flows(self, n: int) -> list[Flow]:
        """The n active flows with the smallest next key (SQL: the flows index, LIMIT n)."""
        out: list[Flow] = []
        while self._sched and len(out) < n:
            *_, version, flow = heapq.heappop(self._sched)
            if flow.active and flow.version == version:
                out.append(flow)
        for flow in out:  # a claim only reads; the caller re-pushes flows it changes
            heapq.heappush(self._sched, (*flow.head_key(), flow.version, flow))
        return out

    # -- the claim ---------------------------------------------------------------------------
    def claim(self, n: int) -> list[Job]:
        self.stats.claims += 1
        if self.claim_mode == "loop":
            return [job for _ in range(min(n, self._n_ready)) for job in self._claim_round(1)]
        out: list[Job] = []
        for _ in range(self.max_rounds):
            if len(out) >= n or not self._n_ready:
                break
            got = self._claim_round(n - len(out))
            if not got:
                break
            out += got
        return out

    def _limits(self, cands: list[Flow], n: int) -> list[int]:
        """Heads to read per candidate flow (see ``head_limit``).

        The candidate of rank r (0-based) holds at most n - r of the n smallest keys: the r flows
        before it each have a smaller first key.
        """
        if self.head_limit is None:
            return [n] * len(cands)
        caps = [n - r for r in range(len(cands))]
        if self.head_limit != "auto":
            return [min(cap, self.head_limit) for cap in caps]
        # U = the n-th smallest virtual tag vt + k*step; every flow reads its tags <= U, and at
        # least its head (so flows of lone jobs are not crowded out by others' virtual tags).
        virtual = heapq.merge(*(_virtual_tags(f, cap) for f, cap in zip(cands, caps, strict=True)))
        cut = next(itertools.islice(virtual, n - 1, None))
        return [max(1, self._tags_upto(f, cut, cap)) for f, cap in zip(cands, caps, strict=True)]

    @staticmethod
    def _tags_upto(flow: Flow, cut: float, most: int) -> int:
        """How many of vt + k*step (k = 1..most) are <= cut (exact for ints, careful for floats)."""
        k = max(0, min(most, int((cut - flow.vt) // flow.step)))
        while k < most and flow.vt + (k + 1) * flow.step <= cut:
            k += 1
        while k > 0 and flow.vt + k * flow.step > cut:
            k -= 1
        return k

    def _claim_round(self, n: int) -> list[Job]:
        """One set-based statement: <= n candidate flows x their heads -> the n smallest keys."""
        self.stats.rounds += 1
        cands = self._top_flows(n)
        # To stay a prefix of the one-at-a-time order, the round keeps only keys below the first
        # unread job of every flow its limit cut short. SQL reads LIMIT k + 1 heads to learn
        # whether that job exists (a lone job must not cut the round short).
        # Flows left out need no bound: every candidate's head is read and is below theirs, so
        # either n heads survive the filter or it already cut below the first flow left out.
        bounds: list[tuple] = []
        heads = []
        read = 0
        for r, (flow, limit) in enumerate(zip(cands, self._limits(cands, n), strict=True)):
            cut_short = self.exact and limit < n - r
            got = list(itertools.islice(flow.jobs, limit + cut_short))
            read += len(got)
            keys = [
                (flow.vt + k * flow.step, flow.cost, flow.act_seq, flow, job) for k, job in enumerate(got, 1)
            ]
            if len(keys) > limit:
                bounds.append(keys.pop()[:3])
            heads += keys
        self.stats.rows_read += len(cands) + read
        if self.exact and bounds:
            bound = min(bounds)
            heads = [h for h in heads if h[:3] < bound]
        taken = heapq.nsmallest(n, heads, key=lambda h: h[:3])
        # Per flow the taken tags are a prefix of its heads (tags grow along a flow), so
        # popping from the left and setting vt to the last taken tag is the UPDATE SQL runs.
        served: dict[int, Flow] = {}
        for tag, _, _, flow, job in taken:
            popped = flow.jobs.popleft()
            assert popped is job
            if self.charge == "time":
                job.charged = flow.step
            flow.vt = tag
            served[id(flow)] = flow
            self.last_tag = max(self.last_tag, tag)
        self._n_ready -= len(taken)
        for flow in served.values():
            flow.active = bool(flow.jobs)  # drained flows turn inactive (SQL: delete, re-checked)
            self._reschedule(flow)
        self.stats.claim_flow_writes += len(served)
        return [t[-1] for t in taken]

    def finished(self, job: Job) -> None:
        """charge="time": correct the flow's clock by what the job really took."""
        if self.charge != "time":
            return
        flow = self.flows[job.flow]
        flow.vt += flow.cost * job.duration - job.charged  # may be negative: the job was shorter
        flow.est += 0.2 * (job.duration - flow.est)
        self.stats.claim_flow_writes += 1  # SQL: one flow-row update per finish batch and flow
        self._reschedule(flow)


def _virtual_tags(flow: Flow, most: int) -> Iterator[float]:
    """The tags the flow's next ``most`` jobs would get, whether or not they exist."""
    return (flow.vt + k * flow.step for k in range(1, most + 1))


def replay(policy, trace: Iterable[tuple[str, object]]) -> list[list[int]]:
    """Apply ("push", Job) / ("claim", n) steps; return the ids each claim took."""
    out = []
    for op, arg in trace:
        if op == "push":
            policy.ready(arg)
        else:
            out.append([job.id for job in policy.claim(arg)])
    return out
