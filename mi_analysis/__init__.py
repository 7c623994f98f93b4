"""mi_analysis: train networks end-to-end, by greedy local learning and with context supply,
and measure how much information each layer keeps about the input and the label."""

__version__ = "0.1.0"
