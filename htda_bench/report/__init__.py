"""Reporters: the paper's tables and figures regenerated from the results store and leaderboards."""
