"""How decisions are made and explained: rulebooks, evaluators, resolution, recommend()."""
