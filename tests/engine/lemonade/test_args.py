"""llamacpp_args as lemond reads it: split/join round trip, the allowlist check, the user-wins merge, removal."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import InternalError
from engine.lemonade import args
from engine.recipes.llamacpp.flags import EXTRA_ARGS, RESERVED_FLAGS

TOKEN = st.text(st.characters(codec="utf-8", exclude_characters="\"'\0"), min_size=1, max_size=8).filter(
    lambda t: t.strip(" ") == t and t)


def test_split_follows_lemond_quotes_and_spaces():
    assert args.split('-t 4  --x "a b" \'c d\' -e') == ["-t", "4", "--x", "a b", "c d", "-e"]
    assert args.split("") == [] and args.split("   ") == []
    assert args.split('""') == []  # lemond drops an empty quoted token


@given(st.lists(TOKEN | st.text(alphabet="ab '", min_size=1, max_size=5).filter(
    lambda t: "'" not in t and t.strip(" ")), max_size=6))
def test_join_then_split_gives_the_tokens_back(tokens):
    tokens = [t for t in tokens if t]
    assert args.split(args.join(tokens)) == tokens


def test_join_refuses_what_cannot_be_quoted():
    with pytest.raises(InternalError):
        args.join(["a\"b'c"])
    with pytest.raises(InternalError):
        args.join([""])


def test_check_ours_accepts_the_vocabulary_and_the_allowlist_only():
    ok = args.check_ours(["-ngl", "999", "-fa", "on", "--no-mmap", "-kvu", "--cache-reuse", "256", "--swa-full"])
    assert [o.flag for o in ok] == ["-ngl", "-fa", "--no-mmap", "-kvu", "--cache-reuse", "--swa-full"]
    for flag in sorted(RESERVED_FLAGS):
        with pytest.raises(InternalError, match="reserves"):
            args.check_ours([flag, "1"])
    for bad in (["--port=9"], ["--not-a-flag"], ["-ngl"], ["-ngl", "1 2"], ["-ngl", "-c"], ["-t", "$(rm)"]):
        with pytest.raises(InternalError):
            args.check_ours(bad)
    assert set(args.arity()) >= set(EXTRA_ARGS) and not set(args.arity()) & RESERVED_FLAGS


def test_merge_keeps_user_text_and_leaves_out_flags_the_user_set_in_any_spelling():
    m = args.merge("--threads 4 --flash-attn=off", ["-t", "2", "-fa", "on", "-ngl", "999", "-ub", "512"])
    assert m.text == "--threads 4 --flash-attn=off -ngl 999 -ub 512"
    assert m.added == ("-ngl", "999", "-ub", "512") and m.blocked == ("-t", "-fa")
    assert args.merge("", ["-ngl", "0"]).text == "-ngl 0"
    assert args.merge("--no-kv-unified", ["-kvu"]).blocked == ("-kvu",)  # a negation is the same setting
    assert args.merge("--cpu-moe", ["--n-cpu-moe", "3"]).blocked == ("--n-cpu-moe",)


def test_merge_with_the_users_fit_adds_no_placement_flags():
    m = args.merge("--fit on", ["-ngl", "999", "--n-cpu-moe", "4", "-ub", "1024"])
    assert m.added == ("-ub", "1024") and set(m.blocked) == {"-ngl", "--n-cpu-moe"}
    assert args.merge("--fit off", ["-ngl", "999"]).added == ("-ngl", "999")


def test_remove_takes_back_exactly_our_tail_or_our_unchanged_options():
    assert args.remove("  -t 1   -ngl 0", ["-ngl", "0"]) == ("  -t 1  ", ("-ngl", "0"))  # user text verbatim
    assert args.remove("-ngl 0", ["-ngl", "0"]) == ("", ("-ngl", "0"))
    # the user moved things around: option by option
    assert args.remove("-ngl 0 -t 1 -ub 512", ["-ngl", "0", "-ub", "512"]) == ("-t 1", ("-ngl", "0", "-ub", "512"))
    # the user changed our value: it is theirs now
    assert args.remove("-t 1 -ngl 5", ["-ngl", "0"]) == ("-t 1 -ngl 5", ())
    assert args.remove("-t 1", []) == ("-t 1", ())


@given(user=st.lists(st.sampled_from(["-t 4", "--threads 2", "-b 256", "--no-warmup", "-fa off", "--mlock",
                                      '--alias "my model"', "-ngl 12"]), max_size=4, unique=True),
       ours=st.lists(st.sampled_from([("-ngl", "999"), ("-ub", "512"), ("-t", "3"), ("-fa", "on"),
                                      ("--no-warmup",), ("-np", "2")]), max_size=4, unique=True))
def test_merge_then_remove_is_the_identity_and_never_drops_a_user_token(user, ours):
    text = " ".join(user)
    tokens = [t for opt in ours for t in opt]
    merged = args.merge(text, tokens)
    assert args.split(merged.text)[: len(args.split(text))] == args.split(text)
    assert args.remove(merged.text, merged.added)[0] == text
    user_settings = {args.setting(o.flag) for o in args.options(args.split(text))}
    assert not user_settings & {args.setting(f) for f in merged.added if args.is_flag(f)}
