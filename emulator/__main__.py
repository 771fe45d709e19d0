"""``python -m emulator``: run the local Azure emulator until SIGTERM/SIGINT (see docs/EMULATOR.md)."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from emulator.server import EmulatorOptions, Prepared, prepare, serve
from emulator.state import ACCOUNT_KINDS, InvalidAccount


def parse_args(argv: list[str] | None = None) -> tuple[EmulatorOptions, Path | None]:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="HTTPS port on 127.0.0.1 (0 = a free port)")
    parser.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="RESOURCE_ID",
        help="seed a Microsoft.CognitiveServices account (repeatable); default: a demo account",
    )
    parser.add_argument(
        "--kind", default="AIServices", choices=sorted(ACCOUNT_KINDS), help="kind of the seeded accounts"
    )
    parser.add_argument(
        "--location", default="eastus", help="region of the seeded accounts (their regional endpoint)"
    )
    parser.add_argument(
        "--state-dir", type=Path, help="where the CA and certificates live (default: temp dir)"
    )
    parser.add_argument("--state-file", type=Path, help="persist emulated Azure state in this JSON file")
    parser.add_argument("--env-file", type=Path, help="also write the KEY=VALUE lines to this file")
    parser.add_argument(
        "--event-webhook", metavar="URL", help="POST Key Vault events here (Event Grid style)"
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every operation")
    parser.add_argument(
        "--propagation",
        type=float,
        default=0.0,
        help="seconds before a regenerated key is accepted by the data plane",
    )
    parser.add_argument(
        "--account-hosts",
        action="store_true",
        help="give each account with a custom subdomain its own host name under "
        "*.cognitiveservices.emulator.test (map it to 127.0.0.1 in the client; see docs/EMULATOR.md)",
    )
    parser.add_argument("--vault-name", default="kv-emulator", help="vault name used in Key Vault events")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be 0-65535")
    if args.latency < 0 or args.propagation < 0:
        parser.error("--latency and --propagation must be non-negative")
    return EmulatorOptions(
        port=args.port,
        accounts=args.account,
        kind=args.kind,
        location=args.location,
        state_dir=args.state_dir,
        state_file=args.state_file,
        event_webhook=args.event_webhook,
        latency=args.latency,
        propagation=args.propagation,
        vault_name=args.vault_name,
        account_hosts=args.account_hosts,
    ), args.env_file


def main(argv: list[str] | None = None) -> int:
    options, env_file = parse_args(argv)
    try:
        prepared: Prepared = prepare(options)
    except (InvalidAccount, OSError) as error:
        print(f"emulator: {error}", file=sys.stderr)
        return 2
    lines = [f"{key}={value}" for key, value in prepared.emulator.env_lines().items()]

    def announce() -> None:
        if env_file is not None:
            env_file.parent.mkdir(parents=True, exist_ok=True)
            env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print("\n".join([*lines, "EMULATOR_READY=1"]), flush=True)

    try:
        serve(prepared, announce)
    finally:
        if options.state_dir is None:
            # The CA lived in a temp dir made for this run; nobody can use it once we are gone.
            shutil.rmtree(prepared.certificates.ca_bundle.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
