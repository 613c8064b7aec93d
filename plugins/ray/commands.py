"""``ncrt ray``: point Ray at ncrt's neuron-ls, print a node's resources, check Ray's count.

- ``ncrt ray link-neuron-ls [--bin-dir DIR] [--force]``: the one step, a link
  ``/opt/aws/neuron/bin/neuron-ls`` -> ncrt's ``neuron-ls`` (needs write access there).
- ``ncrt ray resources [--instance-type T]``: the JSON for ``ray start --resources``
  where the link cannot be made.
- ``ncrt ray check [--instance-type T]``: the ``neuron_cores`` Ray's own detection finds
  with this environment, against what ncrt emulates (exit 1 when they differ).
"""

from __future__ import annotations

import argparse
import json
import os

from ncrt.hookspecs import hookimpl

from .resources import NEURON_BIN_DIR, RESOURCE_NAME, detected_neuron_cores, link_neuron_ls, node_resources

__all__ = ["ncrt_add_commands"]


def _link(args: argparse.Namespace) -> int:
    link = link_neuron_ls(args.bin_dir, force=args.force)
    print(f"{link} -> {os.readlink(link)}: Ray now counts the NeuronCores of NCRT_INSTANCE_TYPE")
    return 0


def _resources(args: argparse.Namespace) -> int:
    print(json.dumps(node_resources(args.instance_type, args.neuron_cores)))
    return 0


def _check(args: argparse.Namespace) -> int:
    if args.instance_type:
        os.environ["NCRT_INSTANCE_TYPE"] = args.instance_type  # neuron-ls, run by Ray, inherits it
    emulated = int(node_resources(args.instance_type)[RESOURCE_NAME])
    detected = detected_neuron_cores()
    print(f"Ray detects {detected} {RESOURCE_NAME}; ncrt emulates {emulated}")
    if detected == emulated:
        return 0
    print(f"Ray runs {NEURON_BIN_DIR / 'neuron-ls'} --json-output: run 'ncrt ray link-neuron-ls' "
          "(as a user who may write there), or start nodes with --resources=\"$(ncrt ray resources)\"")
    return 1


@hookimpl
def ncrt_add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ray", help="Ray integration: neuron-ls for Ray, node resources, checks")
    commands = parser.add_subparsers(dest="ray_command", metavar="RAY_COMMAND", required=True)
    link = commands.add_parser("link-neuron-ls", help=f"link {NEURON_BIN_DIR}/neuron-ls to ncrt's neuron-ls")
    link.add_argument("--bin-dir", default=str(NEURON_BIN_DIR), help=f"where Ray looks (default {NEURON_BIN_DIR})")
    link.add_argument("--force", action="store_true", help="replace a neuron-ls that is not ncrt's")
    link.set_defaults(func=_link)
    resources = commands.add_parser("resources", help="the node's Ray resources as JSON (for ray start --resources)")
    resources.add_argument("--instance-type", help="instance to emulate (default: NCRT_INSTANCE_TYPE or the host)")
    resources.add_argument("--neuron-cores", type=int, help="advertise fewer cores than the instance has")
    resources.set_defaults(func=_resources)
    check = commands.add_parser("check", help="compare the neuron_cores Ray detects with what ncrt emulates")
    check.add_argument("--instance-type", help="instance to emulate (default: NCRT_INSTANCE_TYPE or the host)")
    check.set_defaults(func=_check)
