#!/usr/bin/env python3
"""Writes the hand-made seeds of tests/fuzz/corpus/event/ (the files named seed_*): message
values at the edges of the decoder's contract, for every writer schema fuzz_event registers
(Confluent ids 1 reader, 2 v2, 3 v3_noweight, 4 loose; see fuzz_event.c). The other seeds
(raw_*, confluent_*) come from test_event_codec (CCD_WRITE_CORPUS), the rest from fuzzing runs.

    python3 tests/fuzz/make_event_seeds.py tests/fuzz/corpus/event
"""
import struct
import sys
from pathlib import Path

T = 1700000000123  # an event time inside the worker's default range


def long(v):
    z = (v << 1) ^ (v >> 63)  # zigzag
    z &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def string(s):
    b = s.encode() if isinstance(s, str) else s
    return long(len(b)) + b


def union(i, payload=b""):
    return long(i) + payload


def flt(x):
    return struct.pack("<f", x)


def dbl(x):
    return struct.pack("<d", x)


def raw(user="u", item="i", t=T, etype=None, weight=None):
    return (string(user) + string(item) + long(t)
            + (union(0) if etype is None else union(1, string(etype)))
            + (union(0) if weight is None else union(1, flt(weight))))


def confluent(schema_id, body):
    return b"\x00" + struct.pack(">I", schema_id & 0xFFFFFFFF) + body


def device(name="phone", trusted=True):
    return string(name) + bytes([1 if trusted else 0])


def v2(user="u", item="i", t=T, session=None, dev=None, etype=None, weight=None,
       tags=b"\x00", counters=b"\x00", kind=0, digest=b"abcd", score=0.0, prev=None):
    return (string(user)
            + (union(0) if session is None else union(1, string(session)))
            + string(item) + long(t)
            + (union(0) if dev is None else union(1, dev))
            + (union(0) if etype is None else union(1, string(etype)))
            + (union(0) if weight is None else union(1, flt(weight)))
            + tags + counters + long(kind) + digest + dbl(score)
            + (union(0) if prev is None else union(1, prev)))


def v3(user="u", item="i", t=T, etype="view", origin=""):
    return string(user) + string(item) + long(t) + string(etype) + string(origin)


def loose(user_branch=1, user="u", item="i", t=T, type_branch=0, type_payload=b"", weight=None):
    return (union(user_branch, string(user) if user_branch == 1 else b"")
            + string(item) + long(t) + union(type_branch, type_payload)
            + (union(0) if weight is None else union(1, flt(weight))))


def wide(seq=7, user="u", payload=b"\x00\xff", item="i", ratio=0.5, t=T, hops=b"\x00", attrs=b"\x00",
         etype=None, flag=True, weight=None, code=b"ok"):
    return (long(seq) + string(user) + string(payload) + string(item) + dbl(ratio) + long(t) + hops + attrs
            + (union(0) if etype is None else union(1, string(etype))) + bytes([1 if flag else 0])
            + (union(0) if weight is None else union(1, flt(weight))) + code)


def hop(at=1, via=None):
    # via: None (null), bytes (bytes branch) or a list of ints (array branch)
    if via is None:
        v = union(0)
    elif isinstance(via, bytes):
        v = union(1, string(via))
    else:
        v = union(2, long(len(via)) + b"".join(long(x) for x in via) + b"\x00")
    return long(at) + v


SEEDS = {
    # raw: valid at the limits, then just past them
    "seed_raw_max_lengths": raw("U" * 256, "I" * 256, etype="t" * 64, weight=3.5),
    "seed_raw_id_too_long": raw("U" * 257),
    "seed_raw_type_too_long": raw(etype="t" * 65),
    "seed_raw_time_min": raw(t=0),
    "seed_raw_time_max": raw(t=4102444800000),
    "seed_raw_time_past_max": raw(t=4102444800001),
    "seed_raw_time_negative": raw(t=-1),
    "seed_raw_time_int64_min": raw(t=-(1 << 63)),
    "seed_raw_weight_zero": raw(weight=0.0),
    "seed_raw_weight_negative_zero": raw(weight=-0.0),
    "seed_raw_weight_negative": raw(weight=-1.0),
    "seed_raw_weight_nan": raw(weight=float("nan")),
    "seed_raw_weight_inf": raw(weight=float("inf")),
    "seed_raw_control_char": raw("u\x01x"),
    "seed_raw_del_char": raw(item="i\x7f"),
    "seed_raw_nul_in_id": raw("u\x00x"),
    "seed_raw_utf8_ids": raw("usuário-ü", "商品-7", etype="vue"),
    "seed_raw_empty_type": raw(etype=""),
    "seed_raw_empty_item": raw(item=""),
    "seed_raw_negative_length": long(-3) + b"abc",
    "seed_raw_overlong_varint": b"\x82\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00" + b"u",
    "seed_raw_union_index_negative": string("u") + string("i") + long(T) + long(-1),
    "seed_raw_truncated_float": raw(weight=1.0)[:-2],
    # Confluent framing
    "seed_confluent_short_frame": b"\x00\x00\x00\x01",
    "seed_confluent_unknown_id": confluent(99, raw()),
    "seed_confluent_negative_id": confluent(-1, raw()),
    "seed_confluent_id1_full": confluent(1, raw("user-9", "item-9", etype="buy", weight=2.0)),
    "seed_confluent_id1_empty_body": confluent(1, b""),
    # v2 (id 2): every extra field kind populated, blocks with and without byte sizes
    "seed_v2_all_fields": confluent(2, v2(
        session="s-1", dev=device("tablet", False), etype="cart", weight=0.5,
        tags=long(2) + string("a") + string("bb") + long(-1) + long(2) + string("c") + b"\x00",
        counters=long(1) + string("k") + long(7) + b"\x00",
        kind=2, digest=b"\x00\xff\x10\x20", score=-1.25, prev=device())),
    "seed_v2_enum_out_of_range": confluent(2, v2(kind=3)),
    "seed_v2_bad_boolean": confluent(2, v2(dev=string("x") + b"\x02")),
    "seed_v2_huge_block_count": confluent(2, v2(tags=long(1 << 40) + string("a") + b"\x00")),
    "seed_v2_block_count_int64_min": confluent(2, v2(tags=long(-(1 << 63)) + long(1) + string("a"))),
    "seed_v2_map_negative_size": confluent(2, v2(counters=long(-1) + long(-5) + string("k") + long(1) + b"\x00")),
    # v3 (id 3): no weight field, event_type not a union
    "seed_v3_origin": confluent(3, v3(etype="purchase", origin="web")),
    "seed_v3_type_too_long": confluent(3, v3(etype="x" * 65)),
    # loose (id 4): branches the reader cannot hold
    "seed_loose_null_user": confluent(4, loose(user_branch=0)),
    "seed_loose_int_type": confluent(4, loose(type_branch=2, type_payload=long(42))),
    "seed_loose_string_type": confluent(4, loose(type_branch=1, type_payload=string("like"), weight=1.0)),
    "seed_loose_union_out_of_range": confluent(4, loose(type_branch=3)),
    # wide (id 5, tests/fuzz/schemas/interaction_wide.avsc): every Avro type around the reader's fields
    "seed_wide_minimal": confluent(5, wide()),
    "seed_wide_full": confluent(5, wide(
        seq=-5, payload=bytes(range(16)), ratio=-0.0, etype="view", weight=1.5,
        hops=long(2) + hop(1) + hop(2, b"xy") + long(-1) + long(3) + hop(3, [1, -2, 3]) + b"\x00",
        attrs=long(3) + string("a") + union(0) + string("b") + union(1, long(9))
        + string("c") + union(3, hop(4, b"z")) + b"\x00")),
    "seed_wide_int_overflow": confluent(5, wide(seq=1 << 31)),
    "seed_wide_bytes_too_long": confluent(5, wide(payload=b"x" * 10)[:20]),
    "seed_wide_map_bad_branch": confluent(5, wide(attrs=long(1) + string("k") + union(4) + b"\x00")),
}


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fuzz/corpus/event")
    out.mkdir(parents=True, exist_ok=True)
    for name, data in SEEDS.items():
        (out / name).write_bytes(data)
    print(f"{len(SEEDS)} seeds written to {out}")


if __name__ == "__main__":
    main()
