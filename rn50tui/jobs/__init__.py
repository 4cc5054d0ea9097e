"""The job manager: store, states, scheduler, supervisor and launcher. No torch import anywhere here.

Clients (the TUI and the CLI) use :class:`rn50tui.jobs.manager.JobManager`; see that module for the API.
"""
