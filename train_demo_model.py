"""Train the bundled PMPP demo model from scratch (tokenizer and weights) on data.jsonl.

python train_demo_model.py --out demo_model --overwrite     # GPU: minutes; see demo_model/README.md
python train_demo_model.py --out /tmp/demo --steps 20 --hidden 64 --layers 1   # quick check
"""

import argparse
import dataclasses
import json
from pathlib import Path

from qaserve.logs import configure_logging
from qaserve.modeltools.demo import TrainConfig, plot_loss, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data.jsonl"))
    parser.add_argument("--heldout", type=Path, default=Path("data_heldout.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("demo_model"))
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    parser.add_argument("--plot", action="store_true", help="only draw OUT/loss.png from its log")
    parser.add_argument("--no-plot", action="store_true", help="skip loss.png (no matplotlib)")
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        parser.add_argument(flag, type=type(field.default), default=field.default)
    args = parser.parse_args()
    configure_logging("INFO")
    if not args.plot:
        config = TrainConfig(
            **{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
        )
        heldout = args.heldout if args.heldout.is_file() else None
        print(json.dumps(train(args.data, heldout, args.out, config, args.overwrite), indent=1))
    if not args.no_plot:
        print(plot_loss(args.out / "train_log.jsonl", args.out / "loss.png"))


if __name__ == "__main__":
    main()
