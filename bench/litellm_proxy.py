"""LiteLLM proxy with ``mock_response``, for the side-by-side benchmark (bench/all.py).

    python -m bench.litellm_proxy        # install (once) and print the proxy's argv

LiteLLM is never a parley dependency: it goes into its own virtualenv,
``${PARLEY_CACHE:-~/.cache/parley}/litellm-venv``, made on first use and reused afterwards
(``pip install 'litellm[proxy]'``). The proxy gets one model whose ``litellm_params`` carry a
``mock_response``, so no request leaves the machine; telemetry and the remote model-cost map
are off, there is no database and no master key, and it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.vs_daprd import TEXT

MODEL = "mock-gpt"
CHAT_BODY = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": TEXT}]})
ENV = {
    "LITELLM_TELEMETRY": "False",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOG": "ERROR",
    "DISABLE_SCHEMA_UPDATE": "True",  # and no DATABASE_URL: no database at all
    "NO_DOCS": "True",
    # No master key, like parley without DAPR_API_TOKEN: loopback only, nothing to protect.
    "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
}


def venv_dir() -> Path:
    return Path(os.environ.get("PARLEY_CACHE") or Path.home() / ".cache" / "parley") / "litellm-venv"


def install(*, quiet: bool = True) -> Path:
    """The ``litellm`` executable, installing it into its own venv when missing."""
    venv = venv_dir()
    exe = venv / "bin" / "litellm"
    if exe.exists():
        return exe
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    if quiet:
        pip.append("-q")
    subprocess.run([*pip, "litellm[proxy]"], check=True, timeout=900)
    return exe


def version() -> str:
    out = subprocess.run([str(venv_dir() / "bin" / "python"), "-m", "pip", "show", "litellm"],
                         capture_output=True, text=True, check=False).stdout
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Version:")), "?")


def config(directory: Path) -> Path:
    """A config whose one model answers every chat with the echo reply, same size as parley's."""
    path = directory / "litellm.yaml"
    path.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        "      model: openai/gpt-4o-mini\n"
        "      api_key: sk-bench\n"
        f"      mock_response: {json.dumps(TEXT)}\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "  drop_params: true\n"
        "  set_verbose: false\n"
        "general_settings:\n"
        "  disable_spend_logs: true\n"
    )
    return path


def argv(exe: Path, cfg: Path, port: int) -> list[str]:
    return [str(exe), "--config", str(cfg), "--port", str(port), "--host", "127.0.0.1", "--num_workers", "1"]


def main() -> None:
    exe = install(quiet=False)
    print(" ".join(argv(exe, Path("litellm.yaml"), 4000)))


if __name__ == "__main__":
    main()
