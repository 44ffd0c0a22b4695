"""Run `ecgaudit scan` in forked children and SIGKILL each one at a chosen moment (driven by tests/test_crash.py).

`python tests/kill_driver.py OUT -- SCAN-ARGS...` imports what a scan imports once, then reads one trial per line
on stdin: `SEED FROM DELAY_S`. For each it forks a child that runs the real CLI entry point,
`ecgaudit scan SCAN-ARGS --out OUT --seed SEED`, and SIGKILLs it DELAY_S seconds after FROM unless it finished:
FROM is `start` (the fork), `build` (the moment the new bundle's folder appears beside OUT) or `never`. It prints
one JSON line per trial: how the child ended, when, and whether the bundle was being built at the kill.
Forking after the imports saves each trial the ~5 s of importing torch, so 20 kills fit in a test.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import sys
import time


def main() -> None:
    out = sys.argv[1]
    args = sys.argv[sys.argv.index("--") + 1:]
    # everything a scan imports, before the forks
    import onnx2torch  # noqa: F401
    import wfdb  # noqa: F401

    import ecgaudit.evidence  # noqa: F401
    import ecgaudit.export  # noqa: F401
    import ecgaudit.models.onnx  # noqa: F401
    import ecgaudit.models.torchscript  # noqa: F401
    import ecgaudit.render.pdf  # noqa: F401
    import ecgaudit.scan  # noqa: F401
    from ecgaudit._cli import main as cli

    staging = os.path.join(os.path.dirname(out), ".ecgaudit", f"{glob.escape(os.path.basename(out))}.new-*")
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        seed, origin, delay = line.split()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the child: a scan, its output thrown away
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            try:
                cli(["scan", *args, "--out", out, "--seed", seed])
            except SystemExit as exc:
                os._exit(int(exc.code or 0))
            os._exit(99)
        deadline = started + float(delay) if origin == "start" else None
        staging_seen_s = None
        building_at_kill = False
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            building = bool(glob.glob(staging))
            if building and staging_seen_s is None:
                staging_seen_s = time.monotonic() - started
                if origin == "build":
                    deadline = time.monotonic() + float(delay)
            if deadline is not None and time.monotonic() >= deadline:
                building_at_kill = building
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                break
            time.sleep(0.002)
        print(json.dumps({
            "seed": int(seed), "killed": os.WIFSIGNALED(status),
            "rc": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "elapsed_s": time.monotonic() - started, "staging_seen_s": staging_seen_s,
            "building_at_kill": building_at_kill,
        }), flush=True)


if __name__ == "__main__":
    main()
