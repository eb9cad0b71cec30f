"""Traffic simulation: replaying held-out traffic through a running service, and starting one."""
