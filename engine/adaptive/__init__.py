"""Adaptive tuning: expected performance, runtime monitoring, probing a load, learning from local runs.

- `expect`: generation tokens/s, prompt tokens/s and TTFT a Recommendation expects, each with an interval and basis
- `ratios`: the prompt/generation speed ratio table (engine/data/perf_ratios.json) and how it is calibrated
- `measure`: measurements from Lemonade (`/v1/stats`, `/metrics`, bench JSON, a short chat of our own)
- `monitor`: measurements against expectations, with Lemonade's nightly-CI thresholds
- `probe`: a Lemonade job that loads, chats and unloads, falling back along a chain of configurations
- `learn`: local rules from measurements that beat the recommendation beyond the noise (layer `local`)
"""
