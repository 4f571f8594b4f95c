"""`usqa models list|show|promote|rollback`: the registry from the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from usqa.contracts.cli import UsageError
from usqa.service.registry.announce import announcer_from_url
from usqa.service.registry.locate import open_registry
from usqa.service.registry.store import CHAMPION, RegistryError, explain
from usqa.service.registry.warmup import serving_check
from usqa.service.settings import get_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("models", help="list, show, promote and roll back model versions")
    parser.add_argument("--registry", type=Path, help="registry folder (default: USQA_REGISTRY or models/)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="every model, its versions and aliases")
    show = actions.add_parser("show", help="a version's manifest, after verifying its files")
    show.add_argument("name")
    show.add_argument("ref", nargs="?", default=CHAMPION, help="version number, alias or 'latest'")
    promote = actions.add_parser("promote", help="point an alias (default: champion) at a version")
    promote.add_argument("name")
    promote.add_argument("ref", help="version number, alias or 'latest'")
    promote.add_argument("--alias", default=CHAMPION)
    rollback = actions.add_parser("rollback", help="point an alias back at its previous version")
    rollback.add_argument("name")
    rollback.add_argument("--alias", default=CHAMPION)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.registry is not None:
        settings = settings.model_copy(update={"registry": args.registry})
    registry = open_registry(settings, announcer_from_url(settings.redis_url))
    try:
        if args.action == "list":
            names = registry.names()
            if not names:
                places = ", ".join(str(p.absolute()) for p in (registry.root, *registry.read_only))
                print(f"no models in {places}")
            for name in names:
                aliases = registry.aliases(name).current
                by_version: dict[int, list[str]] = {}
                for alias, version in aliases.items():
                    by_version.setdefault(version, []).append(alias)
                read_only = f"  (read-only: {registry.source(name)})" if registry.is_read_only(name) else ""
                print(f"{name}{read_only}")
                for version in registry.versions(name):
                    manifest = registry.manifest(name, version)
                    tags = ", ".join(sorted(by_version.get(version, [])))
                    print(f"  {version:>4}  {manifest.task:8s} {manifest.created}  {tags}")
        elif args.action == "show":
            loaded = registry.load(args.name, args.ref)
            print(json.dumps(loaded.manifest.model_dump(mode="json"), indent=2))
        elif args.action == "promote":
            version = registry.promote(args.name, args.ref, alias=args.alias, verify=serving_check(settings))
            print(f"{args.name}: {args.alias} -> version {version}")
        elif args.action == "rollback":
            version = registry.rollback(args.name, alias=args.alias, verify=serving_check(settings))
            print(f"{args.name}: {args.alias} rolled back to version {version}")
    except RegistryError as exc:
        raise UsageError(explain(exc)) from exc
    return 0
