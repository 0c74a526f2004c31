"""The model engine: a catalogue of models, their weights on disk, and loaded backends that make clips.

Modules, one job each:

- :mod:`.base` -- the contract between the job queue and a backend.
- :mod:`.registry` -- which models exist and what each accepts (sizes, lengths, tasks).
- :mod:`.hub` -- pulling weights from the Hugging Face hub and finding them on disk.
- :mod:`.device` -- where and in which precision models run.
- :mod:`.wan` -- the Wan backend built on diffusers pipelines.
- :mod:`.runtime` -- the engine that keeps backends loaded within a memory budget.
- :mod:`.tiny` -- randomly initialised miniatures of Wan for tests and offline development.

Heavy libraries (torch, diffusers) are imported by the modules that need them, not here.
"""
