"""The job service's policies: judgments made over the core's records, each one place for its rule.

verdict (how an attempt ended), stall (no progress, or a hung follower), eta (when a run ends), busy
(cards in use outside rn50tui), notify (the user's hook), smoothing (the loss a person reads).
"""
