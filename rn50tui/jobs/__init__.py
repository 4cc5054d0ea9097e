"""The job service, no torch, no textual. Its folders are its layers (docs/architecture.md):

core/ (states, records, the store: all SQL), policy/ (judgments over the records), executors/ (the
interface and registry), local/ and slurm/ (the transports with their executors), and here the service
itself: manager (the API the TUI and the CLI use), submission, kinds, scheduler, reconcile, lifecycle,
report, view, presets, purge.
"""
