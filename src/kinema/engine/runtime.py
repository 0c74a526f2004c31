"""The engine: loaded backends kept in an LRU cache that stays within a memory budget."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from kinema.engine.base import Task
from kinema.engine.device import Placement, select_placement
from kinema.engine.families import EngineBackend, backend_class, miniature_builder
from kinema.engine.footprint import OffloadMode, choose_offload
from kinema.engine.hub import local_path, lora_path, require_local_path
from kinema.engine.registry import ModelRegistry, ModelSpec

log = logging.getLogger(__name__)

_Key = tuple[str, Task]


class Engine:
    """Hands out loaded backends, keeping recently used ones loaded within ``memory_budget_bytes``.

    The budget counts weights (parameters and buffers), not activations: leave headroom for those. Backends
    serving different tasks from the same weights share one copy, which is counted once.

    Thread-safe, with three locks (taken in this order, never the other way round):

    - ``_run_lock``: one engine drives one device, and :meth:`use` holds this lock around its block, so the
      device never runs two models' generations at once. It is taken only once the backend is loaded.
    - ``_load_lock``: serialises loads (disk -> memory) and the evictions that make room for them.
    - ``_lock``: guards the cache and the pins; held only for bookkeeping, never during a load, an unload or
      a generation. So while one thread loads a model, others keep getting and running loaded ones.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        models_dir: Path,
        memory_budget_bytes: int,
        device: str | None = None,
        *,
        offload: OffloadMode | Literal["auto"] = "auto",
        compile_blocks: bool = True,
    ):
        """``offload``: CPU offload for GPUs too small for a model's weights ("auto" picks per model from its
        catalogue figures and the GPU's memory; always "none" on the CPU). ``compile_blocks``: compile the
        transformer's repeated blocks with ``torch.compile`` on CUDA (first run of each shape is slower)."""
        if memory_budget_bytes <= 0:
            raise ValueError("memory_budget_bytes must be positive")
        self.registry = registry
        self.models_dir = Path(models_dir)
        self.memory_budget_bytes = memory_budget_bytes
        self.placement: Placement = select_placement(device)
        if offload not in ("auto", "none") and not self.placement.is_cuda:
            raise ValueError(f"offload={offload!r} needs a GPU; this engine runs on {self.placement.device}")
        self.offload = offload
        self.compile_blocks = compile_blocks and self.placement.is_cuda
        self._run_lock = threading.RLock()  # re-entrant: a thread inside use() may use() again
        self._load_lock = threading.Lock()
        self._lock = threading.Lock()
        self._cache: OrderedDict[_Key, EngineBackend] = OrderedDict()  # least recently used first
        self._pins: dict[_Key, int] = {}

    def backend_for(self, spec: ModelSpec, task: Task) -> EngineBackend:
        """A loaded backend for ``task`` on ``spec``, loading it (and evicting others) if needed.

        Least-recently-used backends are unloaded first when adding one would exceed the budget; the one
        requested is always kept, even alone over budget, and so are backends pinned by :meth:`use` or
        generating right now. Callers on several threads should prefer :meth:`use`: between this call
        returning and ``generate`` starting, another thread's request may evict the backend.
        Raises :class:`~kinema.engine.base.ModelNotAvailable` (with the pull command) when the weights are
        not on this machine, and :class:`~kinema.engine.registry.UnsupportedRequest` when the model cannot
        do ``task``.
        """
        return self._acquire(spec, task, pin=False)

    @contextmanager
    def use(self, spec: ModelSpec, task: Task) -> Iterator[EngineBackend]:
        """:meth:`backend_for`, pinned for the ``with`` block so no other thread evicts it, and with the device
        to itself: the block runs under the engine's run lock, so two generations never overlap on one device.

        The backend is loaded before the run lock is taken: a thread loading a model does not hold up
        another thread's generation on a model already loaded.
        """
        key: _Key = (spec.name, task)
        backend = self._acquire(spec, task, pin=True)
        try:
            with self._run_lock:
                yield backend
        finally:
            with self._lock:
                self._pins[key] -= 1
                if not self._pins[key]:
                    del self._pins[key]

    def ensure_miniatures(self) -> list[str]:
        """Build the miniature models the registry lists but this machine lacks; returns the names built."""
        built: list[str] = []
        for spec in self.registry.specs():
            if not spec.miniature:
                continue
            build = miniature_builder(spec.name)
            present = all(local_path(spec, task, self.models_dir) is not None for task in spec.tasks)
            if present and (spec.turbo is None or lora_path(spec.turbo.lora, self.models_dir) is not None):
                continue
            with self._load_lock:
                build(self.models_dir)
            built.append(spec.name)
        return built

    def offload_for(self, spec: ModelSpec) -> OffloadMode:
        """The CPU offload ``spec`` loads with: the setting, or with "auto" what its weights need on this GPU."""
        if not self.placement.is_cuda:
            return "none"
        if self.offload != "auto":
            return self.offload
        import torch

        total_gb = torch.cuda.get_device_properties(self.placement.device).total_memory / (1 << 30)
        return choose_offload(spec.weights_gb, spec.largest_component_gb, total_gb)

    def loaded(self) -> list[tuple[str, Task]]:
        """(model name, task) of the loaded backends, least recently used first."""
        with self._lock:
            return list(self._cache)

    def loaded_models(self) -> list[str]:
        """Names of the models with a loaded backend, most recently used first, each once (for claim affinity)."""
        with self._lock:
            return list(dict.fromkeys(name for name, _ in reversed(self._cache)))

    def resident_bytes(self) -> int:
        """Bytes held by loaded backends, shared weights counted once."""
        with self._lock:
            return self._resident(self._cache.values())

    def unload_all(self) -> None:
        """Unload every backend that is not pinned (after any load in progress)."""
        with self._load_lock:
            with self._lock:
                dropped = [self._cache.pop(k) for k in list(self._cache) if k not in self._pins]
            for backend in dropped:
                backend.unload()

    # -- internals ------------------------------------------------------------------------------------------

    def _acquire(self, spec: ModelSpec, task: Task, *, pin: bool) -> EngineBackend:
        """The loaded backend for ``(spec, task)``, pinned if ``pin`` (in the same step that finds or adds it,
        so no eviction can slip in between)."""
        self.registry.source(spec, task)  # raises UnsupportedRequest naming models that can
        key: _Key = (spec.name, task)
        with self._lock:
            hit = self._hit(key, pin)
        if hit is not None:
            return hit
        with self._load_lock:
            cls = backend_class(spec.family)  # ValueError naming the known families
            path = require_local_path(spec, task, self.models_dir)
            with self._lock:
                hit = self._hit(key, pin)  # another thread loaded it while this one waited
                if hit is not None:
                    return hit
                partner = self._loaded_with(cls.weights_key_for(path, self.placement))
            backend = cls(
                spec,
                task,
                path,
                self.placement,
                share_with=partner,
                offload=self.offload_for(spec),
                compile_blocks=self.compile_blocks,
                turbo_lora=lora_path(spec.turbo.lora, self.models_dir) if spec.turbo is not None else None,
            )
            protect = {key}
            if partner is not None:
                # Its modules are about to be reused: evicting it would only mean loading them again.
                protect.add((partner.spec.name, partner.task))
            need = 0 if partner is not None else backend.estimate_bytes()
            self._unload(self._evict(need=need, protect=protect))

            # The slow part, outside ``_lock``. Only this thread evicts now (it holds the load lock), so the
            # partner stays loaded; unload_all waits for the load lock too.
            backend.load()
            with self._lock:
                self._cache[key] = backend
                if pin:
                    self._pins[key] = self._pins.get(key, 0) + 1
            # The estimate came from file headers; check again against what was actually loaded.
            self._unload(self._evict(need=0, protect=protect))
            return backend

    def _hit(self, key: _Key, pin: bool) -> EngineBackend | None:
        """The cached backend for ``key`` marked most recently used (and pinned if asked), or None. Hold ``_lock``."""
        backend = self._cache.get(key)
        if backend is not None:
            self._cache.move_to_end(key)
            if pin:
                self._pins[key] = self._pins.get(key, 0) + 1
        return backend

    def _loaded_with(self, weights_key: str) -> EngineBackend | None:
        for backend in self._cache.values():
            if backend.weights_key == weights_key and backend.loaded:
                return backend
        return None

    @staticmethod
    def _resident(backends: Iterable[EngineBackend]) -> int:
        by_weights: dict[str, int] = {}
        for backend in backends:
            key = backend.weights_key
            by_weights[key] = max(by_weights.get(key, 0), backend.memory_bytes())
        return sum(by_weights.values())

    def _evict(self, need: int, protect: set[_Key]) -> list[EngineBackend]:
        """Drop least-recently-used backends from the cache until ``need`` more bytes fit; keep protected, pinned
        and busy ones. Returns those dropped, for :meth:`_unload` once ``_lock`` is released."""
        dropped: list[EngineBackend] = []
        with self._lock:
            for key in list(self._cache):
                if self._resident(self._cache.values()) + need <= self.memory_budget_bytes:
                    return dropped
                if key in protect or key in self._pins or self._cache[key].busy:
                    continue  # a running generation would keep the memory alive anyway
                log.info("unloading %s %s to stay within the memory budget", *key)
                dropped.append(self._cache.pop(key))
            if self._resident(self._cache.values()) + need > self.memory_budget_bytes:
                log.warning(
                    "memory budget of %d bytes exceeded: what remains loaded is pinned or was just requested",
                    self.memory_budget_bytes,
                )
        return dropped

    @staticmethod
    def _unload(backends: list[EngineBackend]) -> None:
        for backend in backends:
            backend.unload()
