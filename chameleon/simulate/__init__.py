"""Offline replay: recorded datasets and a simulated device that answers from them."""
