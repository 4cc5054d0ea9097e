"""TrainConfig's fields are the one source of the engine's flags: every field a flag, every flag a field."""

import dataclasses

from engine.config import TrainConfig, build_parser
from engine.flags import FLAG

PARSER_ONLY = {"help", "local_rank"}  # argparse's own, and torch.distributed.launch's rank (read from env)


def test_every_field_declares_its_flag():
    missing = [f.name for f in dataclasses.fields(TrainConfig) if FLAG not in f.metadata]
    assert missing == []


def test_every_flag_of_the_parser_writes_a_field_and_every_field_has_one():
    dests = {action.dest for action in build_parser()._actions} - PARSER_ONLY
    assert dests == {f.name for f in dataclasses.fields(TrainConfig)}


def test_the_parsers_defaults_are_the_fields_defaults():
    ns = build_parser().parse_args([])
    for f in dataclasses.fields(TrainConfig):
        assert getattr(ns, f.name) == f.default, f.name


def test_a_switch_and_its_other_spellings_write_one_field():
    parse = build_parser().parse_args
    assert parse(["--pyamp"]).amp is True
    assert parse(["--amp", "--no-amp"]).amp is False
    assert parse(["--no-checkpoints"]).save_checkpoints is False


def test_the_field_type_becomes_the_flags_type():
    ns = build_parser().parse_args(["--seed", "3", "--use-ema", "0.99", "--wd", "5e-5", "-b", "8", "x"])
    assert (ns.seed, ns.use_ema, ns.weight_decay, ns.batch_size, ns.data) == (3, 0.99, 5e-5, 8, "x")
