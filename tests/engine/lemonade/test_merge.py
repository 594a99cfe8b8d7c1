"""Saved entry + recommendation -> entry to save: the user's values win, ours are owned, undo takes back ours."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.lemonade.merge import is_sentinel, plan_entry, undo_entry

REC = {"llamacpp_backend": "vulkan", "ctx_size": 16384, "llamacpp_args": ["-ngl", "999", "-ub", "512"]}


def test_sentinels_are_lemonds():
    assert all(is_sentinel("llamacpp_backend", v) for v in (None, "", "auto", -1))
    assert not is_sentinel("llamacpp_backend", "rocm")
    assert not is_sentinel("ctx_size", -1) and not is_sentinel("ctx_size", 2048)  # -1 is a stored value: auto
    assert is_sentinel("ctx_size", "big") and is_sentinel("ctx_size", None) and is_sentinel("ctx_size", True)


def test_empty_entry_takes_everything_and_owns_it():
    plan = plan_entry({}, REC)
    assert plan.after == {"llamacpp_backend": "vulkan", "ctx_size": 16384, "llamacpp_args": "-ngl 999 -ub 512"}
    assert plan.owned == {"llamacpp_backend": "vulkan", "ctx_size": 16384, "llamacpp_args": ["-ngl", "999", "-ub", "512"]}
    assert plan.changes() == plan.after and plan.user == {}


def test_user_values_win_key_by_key_and_flag_by_flag():
    saved = {"ctx_size": -1, "llamacpp_args": "-ub 256 --threads 3", "evict_idle_timeout": 60}
    plan = plan_entry(saved, REC)
    assert plan.after == {"ctx_size": -1, "llamacpp_backend": "vulkan", "llamacpp_args": "-ub 256 --threads 3 -ngl 999",
                          "evict_idle_timeout": 60}
    assert plan.user == {"ctx_size": -1, "flags": ["-ub"]}
    assert plan.owned == {"llamacpp_backend": "vulkan", "llamacpp_args": ["-ngl", "999"]}
    assert plan.changes() == {"llamacpp_backend": "vulkan", "llamacpp_args": "-ub 256 --threads 3 -ngl 999"}


def test_sentinel_values_are_filled_and_an_auto_ctx_recommendation_writes_nothing():
    plan = plan_entry({"llamacpp_backend": "auto", "llamacpp_args": ""}, {**REC, "ctx_size": -1})
    assert plan.after["llamacpp_backend"] == "vulkan" and "ctx_size" not in plan.after
    undone = undo_entry(plan.after, plan.owned, {"llamacpp_backend": "auto", "llamacpp_args": ""})
    assert undone.after == {"llamacpp_backend": "auto", "llamacpp_args": ""}


def test_reapply_is_idempotent_and_replaces_only_our_own_values():
    first = plan_entry({"llamacpp_args": "-t 2"}, REC)
    again = plan_entry(first.after, REC, first.owned)
    assert not again.changed and again.owned == first.owned
    newer = {"llamacpp_backend": "rocm", "ctx_size": 8192, "llamacpp_args": ["-ngl", "999", "-fa", "on"]}
    updated = plan_entry(first.after, newer, first.owned)
    assert updated.after == {"llamacpp_backend": "rocm", "ctx_size": 8192, "llamacpp_args": "-t 2 -ngl 999 -fa on"}


def test_a_value_the_user_changed_after_apply_is_theirs():
    first = plan_entry({}, REC)
    edited = {**first.after, "ctx_size": 4096, "llamacpp_args": "-ngl 20 -ub 512"}
    again = plan_entry(edited, REC, first.owned)
    assert again.after["ctx_size"] == 4096 and again.after["llamacpp_args"].startswith("-ngl 20")
    assert "ctx_size" not in again.owned
    undone = undo_entry(edited, first.owned)
    assert undone.after == {"ctx_size": 4096, "llamacpp_args": "-ngl 20"}  # ours (-ub 512, the backend) gone
    assert undone.user == {"ctx_size": 4096, "flags": ["-ngl"]}


def test_a_non_string_args_value_is_left_alone():
    plan = plan_entry({"llamacpp_args": 7}, REC)
    assert plan.after["llamacpp_args"] == 7 and "llamacpp_args" not in plan.owned


ENTRY = st.fixed_dictionaries({}, optional={
    "ctx_size": st.sampled_from([-1, 1024, 65536]),
    "llamacpp_backend": st.sampled_from(["", "cpu", "rocm"]),
    "llamacpp_args": st.sampled_from(["", "-t 2", "-ngl 10 --no-warmup", '--alias "x y"', "-fa on -ub 128"]),
    "evict_idle_timeout": st.integers(1, 600)})
RECS = st.fixed_dictionaries({
    "llamacpp_backend": st.sampled_from(["vulkan", "cpu", "system"]),
    "ctx_size": st.sampled_from([-1, 4096, 32768]),
    "llamacpp_args": st.lists(st.sampled_from([("-ngl", "999"), ("-ub", "1024"), ("-fa", "off"), ("-t", "4")]),
                              unique=True).map(lambda opts: [t for o in opts for t in o])})


@given(saved=ENTRY, rec=RECS)
def test_undo_after_apply_gives_the_saved_entry_back_and_user_values_never_change(saved, rec):
    plan = plan_entry(saved, rec)
    for key, value in saved.items():
        if key == "llamacpp_args":
            assert plan.after.get(key, "").startswith(value)
        elif not is_sentinel(key, value):
            assert plan.after[key] == value
    undone = undo_entry(plan.after, plan.owned, saved)
    assert undone.after == saved
