"""Fault mode: which faults the runner injects, how often (seeded), and how many it has injected.

OFFLINE_FAULTS="sqs_dup=0.1,api_kill=0.05" names each fault with its probability; OFFLINE_FAULTS_SEED
makes a run repeatable. The product never sees this module: it only sees what AWS would do to it.
"""
from __future__ import annotations

import math
import random
import threading
from typing import Mapping, Sequence, TypeVar

# What each fault does is described in the runner's README section; the code lives where the fault happens
# (event_source for sqs_*, http_faults for the others).
KNOWN = ("sqs_dup", "sqs_kill", "api_kill", "receipt_drop", "receipt_dup", "receipt_late", "vendor_error")
RECEIPT_FAULTS = ("receipt_drop", "receipt_dup", "receipt_late")
SPEC_ENV = "OFFLINE_FAULTS"
SEED_ENV = "OFFLINE_FAULTS_SEED"

T = TypeVar("T")


class FaultSpecError(ValueError):
    """OFFLINE_FAULTS or OFFLINE_FAULTS_SEED cannot be used; the message names the bad entry."""


class Faults:
    """The probability of each fault, one seeded random source for every decision, and the counts injected."""

    def __init__(self, probabilities: Mapping[str, float] | None = None, seed: int | None = None):
        for name, probability in (probabilities or {}).items():
            if name not in KNOWN:
                raise FaultSpecError(f"unknown fault {name!r}; known faults: {', '.join(KNOWN)}")
            if not 0 <= probability <= 1:  # NaN fails this too
                raise FaultSpecError(f"{name}: the probability must be from 0 to 1, not {probability!r}")
        self.probabilities = {name: float(p) for name, p in (probabilities or {}).items() if p > 0}
        self.seed = random.SystemRandom().randrange(2**31) if seed is None else seed
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(KNOWN, 0)

    @classmethod
    def parse(cls, spec: str | None, seed: str | int | None = None) -> Faults:
        """'name=probability,...' (blank: no faults); raises FaultSpecError naming the first bad entry."""
        probabilities: dict[str, float] = {}
        for entry in (spec or "").split(","):
            entry = entry.strip()
            if not entry:
                continue
            name, sep, value = (part.strip() for part in entry.partition("="))
            if name not in KNOWN:
                raise FaultSpecError(f"{SPEC_ENV}: unknown fault {name!r} in {entry!r}; known faults: "
                                     f"{', '.join(KNOWN)}")
            try:
                probability = float(value) if sep else math.nan
            except ValueError:
                probability = math.nan
            if not 0 <= probability <= 1:  # NaN fails this too
                raise FaultSpecError(f"{SPEC_ENV}: {entry!r} needs a probability from 0 to 1, as {name}=0.1; "
                                     f"known faults: {', '.join(KNOWN)}")
            probabilities[name] = probability
        if isinstance(seed, str):
            seed = seed.strip() or None
            try:
                seed = int(seed) if seed is not None else None
            except ValueError:
                raise FaultSpecError(f"{SEED_ENV}: {seed!r} is not an integer") from None
        return cls(probabilities, seed)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Faults:
        return cls.parse(environ.get(SPEC_ENV), environ.get(SEED_ENV))

    @property
    def active(self) -> bool:
        return bool(self.probabilities)

    def enabled(self, name: str) -> bool:
        return name in self.probabilities

    def should(self, name: str) -> bool:
        """Draws whether to inject this fault now; counting is the injector's job, once it has injected it."""
        probability = self.probabilities.get(name, 0.0)
        if probability <= 0:
            return False
        with self._lock:
            return self._random.random() < probability

    def uniform(self, low: float, high: float) -> float:
        with self._lock:
            return self._random.uniform(low, high)

    def choice(self, options: Sequence[T]) -> T:
        with self._lock:
            return self._random.choice(options)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def injected(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def describe(self) -> str:
        if not self.active:
            return "no faults"
        return ", ".join(f"{name}={p:g}" for name, p in self.probabilities.items()) + f" (seed {self.seed})"

    def summary(self) -> str:
        return "faults injected: " + ", ".join(f"{name}={n}" for name, n in self.injected().items())
