"""firelink's benchmark suite: the real daemon beside APScheduler 3 and the machine's limits."""
