#!/usr/bin/env python3
"""Checks every envkit command line in compose files with the command's own --check-config.

Usage: compose_check.py --bin DIR [--env-file FILE] COMPOSE-FILE...

Each file is resolved by `docker-compose config` (variables, anchors, defaults). For every
service, its `command` and a CMD healthcheck `test` whose program is an envkit command run
as `PROGRAM ARGS... --check-config` from DIR with the service's environment; paths under
/run/secrets/ point at scratch files for the secrets the service declares (so a secret used
but not declared fails, as it would in the container), and paths under a volume's target
point into a scratch directory for that volume, shared by the services that mount it (so a
path outside every volume that the command must write or read fails, as it would). A program that is not an envkit
command in a service built from envkit's image fails; an envkit command not built yet is
reported as skipped. Prints one line per command line; exits 1 if any failed.
"""
import argparse
import os
import shlex
import subprocess
import sys
import tempfile

import yaml

# options.hpp's kCommandNames: every envkit command, built or not.
ENVKIT_COMMANDS = ["sensor-push", "db-backup", "proxy-check", "shard-route", "race-probe", "queue-relay"]


def command_lines(service):
    """(where, argv) pairs: the command and a CMD/CMD-SHELL healthcheck."""
    out = []
    cmd = service.get("command")
    if isinstance(cmd, str):
        cmd = shlex.split(cmd)
    if cmd:
        out.append(("command", [str(a) for a in cmd]))
    test = (service.get("healthcheck") or {}).get("test")
    if isinstance(test, list) and test and test[0] == "CMD":
        out.append(("healthcheck", [str(a) for a in test[1:]]))
    elif isinstance(test, list) and test and test[0] == "CMD-SHELL":
        out.append(("healthcheck", shlex.split(test[1])))
    elif isinstance(test, str):
        out.append(("healthcheck", shlex.split(test)))
    return out


def volume_mounts(service, scratch):
    """(container target, scratch directory) for each named volume the service mounts, the
    longest target first; a volume's directory is the same for every service mounting it."""
    mounts = []
    for v in service.get("volumes") or []:
        if isinstance(v, str):
            parts = v.split(":")
            source, target = (parts[0], parts[1]) if len(parts) > 1 else (None, parts[0])
        else:
            source, target = v.get("source"), v.get("target")
        if not target or not source or source.startswith((".", "/")):
            continue  # a bind mount: the host path is the file's own, not the check's to make
        directory = os.path.join(scratch, source)
        os.makedirs(directory, exist_ok=True)
        mounts.append((target.rstrip("/"), directory))
    return sorted(mounts, key=lambda m: -len(m[0]))


def map_paths(arg, mounts):
    """arg with a leading volume target (the path alone or as a file: URL) replaced."""
    for target, directory in mounts:
        for prefix in ("", "file:", "file://"):
            if arg == prefix + target or arg.startswith(prefix + target + "/"):
                return prefix + directory + arg[len(prefix + target):]
    return arg


def is_envkit_image(service):
    return "envkit" in str(service.get("image", "")) or "build" in service


def check_file(path, args, scratch):
    cmd = ["docker-compose"]
    if args.env_file:
        cmd += ["--env-file", args.env_file]
    cmd += ["-f", path, "config"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        print(f"FAIL {path}: docker-compose config: {done.stderr.strip()}")
        return 1, 0
    doc = yaml.safe_load(done.stdout)
    failures = checked = 0
    for name, service in sorted((doc.get("services") or {}).items()):
        secrets_dir = os.path.join(scratch, os.path.basename(os.path.dirname(path)), name)
        os.makedirs(secrets_dir, exist_ok=True)
        for s in service.get("secrets") or []:
            target = s if isinstance(s, str) else s.get("target") or s["source"]
            with open(os.path.join(secrets_dir, os.path.basename(target)), "w") as f:
                f.write("not-a-real-secret\n")
        mounts = volume_mounts(service, os.path.join(scratch, "volumes", os.path.basename(os.path.dirname(path))))
        env = {"PATH": args.bin + ":/usr/bin:/bin", "HOME": scratch, "LC_ALL": "C.UTF-8"}
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(e.split("=", 1) for e in environment)
        env.update({k: map_paths(str(v).replace("/run/secrets/", secrets_dir + "/"), mounts)
                    for k, v in environment.items() if v is not None})
        for where, argv in command_lines(service):
            program = os.path.basename(argv[0])
            label = f"{path} {name} {where}: {shlex.join(argv)}"
            if program not in ENVKIT_COMMANDS:
                if is_envkit_image(service) and where == "command":
                    print(f"FAIL {label}: '{program}' is not an envkit command")
                    failures += 1
                continue
            binary = os.path.join(args.bin, program)
            if not os.access(binary, os.X_OK):
                print(f"skip {label}: {program} is not built yet")
                continue
            mapped = [map_paths(a.replace("/run/secrets/", secrets_dir + "/"), mounts) for a in argv[1:]]
            run = subprocess.run([binary] + mapped + ["--check-config"], env=env,
                                 capture_output=True, text=True, timeout=30)
            checked += 1
            if run.returncode != 0 or run.stdout:
                print(f"FAIL {label}: exit {run.returncode}: {(run.stderr or run.stdout).strip()}")
                failures += 1
            else:
                print(f"ok   {label}")
    return failures, checked


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", required=True)
    p.add_argument("--env-file")
    p.add_argument("files", nargs="+")
    args = p.parse_args()
    args.bin = os.path.abspath(args.bin)
    failures = checked = 0
    with tempfile.TemporaryDirectory() as scratch:
        for path in args.files:
            f, c = check_file(path, args, scratch)
            failures += f
            checked += c
    print(f"{checked} command lines checked, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
