"""Random single-byte flips across every file of a signed bundle: how many does `verify` refuse?

    python benchmarks/bench_tamper.py [--flips 1000] [--seed 13] [--profile tests/profiles/scan-tiny.toml]

Target: every flip refused. Runs one signed scan (with --export-wfdb and JUnit in the bundle), then flips one
byte (XOR with a random non-zero value) at a random offset of a file chosen at random among the statement's
subjects (the model included) and the envelope, runs the library's `verify_bundle` on the result, restores the
byte, and counts refusals per file. A file is chosen first so that small files (WFDB headers, JUnit) get flips
too, not only the large samples.npz.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flips", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--profile", type=Path, default=ROOT / "tests" / "profiles" / "scan-tiny.toml")
    parser.add_argument("--model", type=Path, default=ROOT / "examples" / "models" / "cnn-ml100.onnx")
    args = parser.parse_args()

    from ecgaudit._cli import main as cli
    from ecgaudit.errors import EcgauditError
    from ecgaudit.report.signing import keygen, load_public_key
    from ecgaudit.report.verification import verify_bundle

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        private, public = keygen(root)
        model = root / args.model.name
        shutil.copy(args.model, model)
        shutil.copy(args.model.with_name(args.model.stem + ".card.json"), root)
        out = root / "out"
        try:
            cli(["scan", str(model), "--profile", str(args.profile), "--out", str(out), "--quiet", "--key",
                 str(private), "--export-wfdb", "--junit-xml", str(out / "junit.xml")])
        except SystemExit as exc:
            if exc.code not in (0, 1):
                sys.exit(f"the scan failed with exit status {exc.code}")
        envelope = out / "report.dsse.json"
        key = load_public_key(public)
        baseline = verify_bundle(envelope, key, model=model)
        if not baseline.ok:
            sys.exit(f"the untouched bundle does not verify: {baseline.failures}")
        files = [model] + sorted(p for p in out.rglob("*") if p.is_file())
        rng = random.Random(args.seed)
        tried: Counter[str] = Counter()
        refused: Counter[str] = Counter()
        started = time.perf_counter()
        for _ in range(args.flips):
            path = rng.choice(files)
            name = "model" if path == model else path.relative_to(out).as_posix()
            original = path.read_bytes()
            data = bytearray(original)
            data[rng.randrange(len(data))] ^= rng.randrange(1, 256)
            path.write_bytes(bytes(data))
            try:
                accepted = verify_bundle(envelope, key, model=model).ok
            except EcgauditError:
                accepted = False
            path.write_bytes(original)
            tried[name] += 1
            refused[name] += not accepted
        seconds = time.perf_counter() - started
    total = sum(refused.values())
    print(f"{total} of {args.flips} single-byte flips refused across {len(files)} files "
          f"({seconds:.1f} s, {1000 * seconds / args.flips:.0f} ms per verify)")
    for name in sorted(tried):
        print(f"  {name:48s} {refused[name]:4d} / {tried[name]:4d}")
    sys.exit(0 if total == args.flips else 1)


if __name__ == "__main__":
    main()
