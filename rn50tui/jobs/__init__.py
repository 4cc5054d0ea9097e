"""The job service: store, states, scheduler, executors (local: supervisor and launcher), reconcile. No torch.

Clients (the TUI and the CLI) use :class:`rn50tui.jobs.manager.JobManager`; see that module for the API.
"""
