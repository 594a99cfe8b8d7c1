"""Lemonade integration: its config dir and files (paths), the recipe_options.json store (store), the HTTP client
for a running lemond (client, discovery), models by canonical id (models), the safe merge of recommendations into
saved options (args, merge, plan), apply / undo / watch (apply, watch, target) and per-model status (status).

The one rule everywhere: while a lemond serves a config dir, only its API is used; its file is written only
while it is stopped, whole and atomically, and never with a value the user saved replaced.
"""
