"""Payments: a small provider interface, the built-in test provider, and the cashier that
charges orders without ever leaving a half-paid one."""
