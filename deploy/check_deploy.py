#!/usr/bin/env python3
"""Static consistency check of the deployment files against the code.

    python3 deploy/check_deploy.py [--rudder target/debug/rudder]

Neither Docker nor Kubernetes is needed: the deploy files (deploy/docker/Dockerfile, compose.yaml,
deploy/k8s/*.yaml) are read as data and compared with what the code accepts, read from the code
itself: the configuration keys and their built-in defaults (services/server/config/default.toml), the
schema's types and enum values (services/core/src/config.rs), the command line (services/server/src/
cli.rs, layered_config.rs) and the gRPC service names health reports (services/server/src/grpc.rs).
With --rudder BIN the real binary is asked too (`config show` on each container's configuration,
`serve --help`, `status --help`).

One line per check: `ok`, `warn` (suspicious, does not fail) or `FAIL` naming the file and the problem.
Exit status 1 when any check fails, 2 on a usage error. Python 3.11+ (tomllib) and PyYAML.
"""

from __future__ import annotations

import argparse
import glob
import ipaddress
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

try:
    import yaml
except ModuleNotFoundError:  # pragma: no cover - depends on the machine
    sys.exit("check_deploy.py: PyYAML is missing; install it (python3 -m pip install pyyaml)")

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
K8S_DIR = DEPLOY / "k8s"
COMPOSE = DEPLOY / "docker" / "compose.yaml"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
DEFAULT_TOML = REPO / "services/server/config/default.toml"
CONFIG_RS = REPO / "services/core/src/config.rs"
CLI_RS = REPO / "services/server/src/cli.rs"
GRPC_RS = REPO / "services/server/src/grpc.rs"
SERVER_CARGO = REPO / "services/server/Cargo.toml"
WORKSPACE_CARGO = REPO / "Cargo.toml"
SERVER_SRC = REPO / "services/server/src"  # ConfigFlags (layered_config.rs) and the other clap structs

ENV_PREFIX = "RUDDER__"  # layered_config.rs ENV_PREFIX; "__" separates section and key
MODELS_DIR_ENV = "RUDDER_MODELS_DIR"  # layered_config.rs MODELS_DIR_ENV, shorthand for models.dir
QDRANT_GRPC_PORT = 6334  # Qdrant's default gRPC port (rudder talks gRPC to Qdrant)


def rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------------
# What the code says: configuration keys, schema types, the command line, the gRPC service names
# --------------------------------------------------------------------------------------------------


def flatten(table: dict, prefix: str = "") -> dict[str, Any]:
    """A TOML table as {"section.key": value}; sub-tables recurse (store.qdrant.url)."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{path}."))
        else:
            out[path] = value
    return out


def tables_of(table: dict, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in table.items():
        if isinstance(value, dict):
            out.add(f"{prefix}{key}")
            out |= tables_of(value, f"{prefix}{key}.")
    return out


def strip_rust_comments(text: str) -> str:
    """Drops `//` comments (doc comments included) outside string literals, keeps line breaks."""
    out, i, in_str = [], 0, False
    while i < len(text):
        c = text[i]
        if in_str:
            out.append(c)
            if c == "\\":
                out.append(text[i + 1 : i + 2])
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
            out.append(c)
        elif text.startswith("//", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def rust_block(text: str, start: str) -> str | None:
    """The body between the braces that follow the first match of regex `start` (comments stripped)."""
    text = strip_rust_comments(text)
    match = re.search(start, text)
    if not match:
        return None
    open_at = text.index("{", match.start())
    depth, in_str, i = 0, False, open_at
    while i < len(text):
        c = text[i]
        if in_str:
            if c == "\\":
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i]
        i += 1
    return None


@dataclass
class RustField:
    name: str
    ty: str
    attrs: list[str]


def rust_fields(body: str) -> list[RustField]:
    """Fields of a struct or struct-like enum variant body: `#[attr]`s, then `[pub] name: Type,`."""
    fields, attrs, pending = [], [], ""
    for line in body.splitlines():
        line = line.strip()
        if pending or line.startswith("#["):
            pending += line
            if pending.count("[") == pending.count("]"):
                attrs.append(pending)
                pending = ""
            continue
        match = re.match(r"(?:pub(?:\([^)]*\))?\s+)?(\w+)\s*:\s*(.+?),?$", line)
        if match:
            fields.append(RustField(match[1], match[2].strip(), attrs))
            attrs = []
    return fields


def rust_variants(body: str) -> list[str]:
    """Unit variants of an enum body, attributes and comments skipped."""
    body = re.sub(r"#\[[^\]]*\]", "", body)
    return re.findall(r"^\s*([A-Z]\w*)\s*,?\s*$", body, re.M)


def serde_rename(name: str, rule: str | None) -> str:
    if rule == "lowercase":
        return name.lower()
    if rule == "snake_case":
        return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()
    if rule == "kebab-case":
        return re.sub(r"(?<!^)([A-Z])", r"-\1", name).lower()
    return name


@dataclass
class Schema:
    """services/core/src/config.rs: each struct's fields and each serde enum's accepted strings."""

    structs: dict[str, dict[str, str]]
    enums: dict[str, list[str]]

    @classmethod
    def load(cls) -> "Schema":
        text = strip_rust_comments(CONFIG_RS.read_text())
        structs = {}
        for match in re.finditer(r"pub struct (\w+)\s*\{", text):
            body = rust_block(text[match.start() :], r"pub struct")
            structs[match[1]] = {f.name: f.ty for f in rust_fields(body or "")}
        enums = {}
        for match in re.finditer(r"((?:#\[[^\]]*\]\s*)*)pub enum (\w+)\s*\{", text):
            rename = re.search(r'rename_all\s*=\s*"([^"]+)"', match[1])
            body = rust_block(text[match.start() :], r"pub enum") or ""
            enums[match[2]] = [serde_rename(v, rename and rename[1]) for v in rust_variants(body)]
        return cls(structs, enums)

    def type_of(self, dotted: str) -> str | None:
        """The Rust type of a configuration key (store.qdrant.url -> String), None when unknown."""
        ty = "Config"
        for part in dotted.split("."):
            fields = self.structs.get(ty)
            if fields is None or part not in fields:
                return None
            ty = fields[part]
        return ty


def valid_socket_addr(value: str) -> bool:
    """What Rust's SocketAddr parses: an IP literal (no host name) and a port."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        return False
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def value_problem(schema: Schema, key: str, value: Any) -> str | None:
    """Why `value` cannot be key's value (by the schema's Rust type), or None when it can."""
    ty = schema.type_of(key)
    if ty is None:
        return None

    def check(ty: str, value: Any) -> str | None:
        if ty.startswith("Vec<"):
            if not isinstance(value, list):
                return f"expects a list, got {value!r}"
            return next((p for v in value if (p := check(ty[4:-1], v))), None)
        if ty in ("String", "PathBuf", "Secret"):
            return None if isinstance(value, str) else f"expects a string, got {value!r}"
        if ty == "SocketAddr":
            if isinstance(value, str) and valid_socket_addr(value):
                return None
            return f"expects an IP:port address (no host names), got {value!r}"
        if re.fullmatch(r"[ui](8|16|32|64|size)", ty):
            if isinstance(value, int) and not isinstance(value, bool) and (ty[0] == "i" or value >= 0):
                return None
            return f"expects a{'' if ty[0] == 'i' else ' non-negative'} integer, got {value!r}"
        if ty == "bool":
            return None if isinstance(value, bool) else f"expects true/false, got {value!r}"
        if ty in schema.enums:
            if value in schema.enums[ty]:
                return None
            return f"expects one of {', '.join(schema.enums[ty])}, got {value!r}"
        return None

    problem = check(ty, value)
    if problem is None and key == "server.metrics_listen" and value:
        # A String in the schema, parsed as a SocketAddr by services/server/src/metrics.rs.
        if not valid_socket_addr(value):
            problem = f"expects an IP:port address or \"\" (metrics.rs parses a SocketAddr), got {value!r}"
    if problem is None and key in ("generation.retrieval_url", "store.qdrant.url") and value:
        if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).hostname:
            problem = f"expects an http:// or https:// URL, got {value!r}"
    return problem


def env_value(raw: str, ty: str | None = None) -> Any:
    """An environment value the way figment's Env provider reads it: numbers, booleans and [arrays]
    typed, except for a key whose Rust type is a string (a collection named "123" stays a string)."""
    if ty in ("String", "PathBuf", "Secret"):
        return raw
    text = raw.strip()
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if text in ("true", "false"):
        return text == "true"
    if text.startswith("["):
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            return raw
    return raw


def env_key(name: str) -> str | None:
    """The configuration key an environment variable sets (RUDDER__STORE__QDRANT__URL ->
    store.qdrant.url), None when rudder does not read it."""
    if name == MODELS_DIR_ENV:
        return "models.dir"
    if name.startswith(ENV_PREFIX):
        return name[len(ENV_PREFIX) :].lower().replace("__", ".")
    return None


@dataclass
class Cli:
    """services/server/src/cli.rs: subcommands, `serve` roles and flags (flag -> takes a value)."""

    subcommands: list[str]
    roles: list[str]
    serve_flags: dict[str, bool]
    status_flags: dict[str, bool]

    @classmethod
    def load(cls) -> "Cli":
        cli = CLI_RS.read_text()
        command = rust_block(cli, r"pub enum Command\s*\{") or ""
        subcommands = [
            serde_rename(m, "kebab-case") for m in re.findall(r"^\s*([A-Z]\w*)\s*[{(,]", command, re.M)
        ]
        role_enum = rust_block(cli, r"pub enum Role\s*\{") or ""
        roles = [serde_rename(v, "kebab-case") for v in rust_variants(role_enum)]
        return cls(
            subcommands,
            roles,
            cls._flags(rust_block(cli, r"(?<![:\w])Serve\s*\{") or ""),
            cls._flags(rust_block(cli, r"(?<![:\w])Status\s*\{") or ""),
        )

    @classmethod
    def _flags(cls, body: str) -> dict[str, bool]:
        flags: dict[str, bool] = {}
        for f in rust_fields(body):
            attrs = " ".join(f.attrs)
            if "flatten" in attrs:  # e.g. ConfigFlags, defined in another file of the server crate
                for path in SERVER_SRC.glob("*.rs"):
                    struct = rust_block(path.read_text(), rf"pub struct {re.escape(f.ty)}\s*\{{")
                    if struct is not None:
                        flags.update(cls._flags(struct))
                        break
                continue
            long = re.search(r'\blong\b(?:\s*=\s*"([^"]+)")?', attrs)
            if long:
                flags["--" + (long[1] or f.name.replace("_", "-"))] = f.ty != "bool"
        return flags


def health_services() -> dict[str, list[str]]:
    """services/server/src/grpc.rs: the names grpc.health.v1 reports, by the role that serves them
    (the `served.push(...)` after each `serves(ServiceRole::X)`)."""
    text = strip_rust_comments(GRPC_RS.read_text())
    marks = [(m.start(), m[1].lower()) for m in re.finditer(r"serves\(ServiceRole::(\w+)\)", text)]
    by_role: dict[str, list[str]] = {}
    for m in re.finditer(r'"(rudder\.v1\.\w+)"', text):
        role = next((r for at, r in reversed(marks) if at < m.start()), None)
        if role:
            by_role.setdefault(role, []).append(m[1])
    return by_role


# --------------------------------------------------------------------------------------------------
# What the deploy files say
# --------------------------------------------------------------------------------------------------


@dataclass
class Instruction:
    line: int
    keyword: str
    args: str


@dataclass
class Stage:
    name: str | None
    image: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(path: Path) -> list[Stage]:
    """Stages with their instructions; continuation lines joined, comments dropped."""
    stages: list[Stage] = []
    logical, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        stripped = raw.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if logical and stripped.startswith("#"):
            continue
        if not logical:
            start = number
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        keyword, _, args = logical.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        logical = ""
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(name, words[0]))
        elif stages:
            stages[-1].instructions.append(Instruction(start, keyword, args))
    return stages


def exec_form(args: str) -> list[str]:
    """ENTRYPOINT/CMD/RUN arguments as a list (JSON exec form, or shell form split like sh would)."""
    try:
        value = json.loads(args)
        if isinstance(value, list):
            return [str(v) for v in value]
    except json.JSONDecodeError:
        pass
    return shlex.split(args)


def dockerfile_env(stage: Stage) -> dict[str, str]:
    """ENV of a stage (`ENV K=V K2=V2` and the legacy `ENV K V`)."""
    env: dict[str, str] = {}
    for instr in stage.all("ENV"):
        words = shlex.split(instr.args)
        if words and "=" not in words[0]:
            env[words[0]] = " ".join(words[1:])
        else:
            env.update(w.split("=", 1) for w in words)
    return env


def copy_parts(instr: Instruction) -> tuple[dict[str, str], list[str], str]:
    """COPY/ADD: (--options, sources, destination)."""
    words = exec_form(instr.args) if instr.args.startswith("[") else shlex.split(instr.args)
    options = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        options[key] = value
    return options, words[:-1], words[-1] if words else ""


@dataclass
class Deploy:
    """Every deploy file, parsed once: (file, document) for the k8s manifests, the compose file, the
    Dockerfile's stages, plus the YAML files that did not parse."""

    k8s: list[tuple[Path, dict]]
    compose: dict
    stages: list[Stage]
    yaml_errors: list[str]

    @classmethod
    def load(cls) -> "Deploy":
        errors, k8s, compose = [], [], {}
        for path in sorted(DEPLOY.rglob("*.y*ml")):
            try:
                docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
            except yaml.YAMLError as err:
                errors.append(f"{rel(path)}: not valid YAML: {' '.join(str(err).split())}")
                continue
            if path == COMPOSE:
                compose = docs[0] if docs else {}
            elif path.parent == K8S_DIR:
                k8s.extend((path, d) for d in docs)
        stages = parse_dockerfile(DOCKERFILE) if DOCKERFILE.exists() else []
        return cls(k8s, compose, stages, errors)

    def k8s_objects(self, kind: str) -> list[tuple[Path, dict]]:
        return [(p, d) for p, d in self.k8s if isinstance(d, dict) and d.get("kind") == kind]

    def image_env(self) -> dict[str, str]:
        return dockerfile_env(self.stages[-1]) if self.stages else {}

    def compose_services(self) -> dict[str, dict]:
        services = self.compose.get("services") or {}
        return {name: svc or {} for name, svc in services.items()}


def is_rudder_image(image: str | None) -> bool:
    """rudder:latest, registry.example/team/rudder:1.2, rudder@sha256:...: the image the Dockerfile builds."""
    return bool(image) and re.split(r"[:@]", str(image).rsplit("/", 1)[-1])[0] == "rudder"


def compose_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def compose_command(service: dict) -> list[str]:
    command = service.get("command")
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


@dataclass
class Proc:
    """One rudder process as deployed: a k8s container of a Deployment, or a compose service."""

    where: str  # "deploy/k8s/split.yaml Deployment/rudder-retrieval"
    file: Path
    argv: list[str]  # after the `rudder` entrypoint
    env: dict[str, str]  # the image's ENV, then the container's own
    own_env: dict[str, str]
    replicas: int
    container: dict
    pod: dict | None = None  # k8s pod spec
    template: dict | None = None  # k8s pod template
    service_name: str | None = None  # compose


def rudder_procs(deploy: Deploy) -> list[Proc]:
    """Every rudder process of every deployment (k8s Deployments, compose services on the rudder image)."""
    procs, image_env = [], deploy.image_env()
    for path, dep in deploy.k8s_objects("Deployment"):
        template = (dep.get("spec") or {}).get("template") or {}
        pod = template.get("spec") or {}
        for container in pod.get("containers") or []:
            if not is_rudder_image(container.get("image")):
                continue
            # k8s: `command` replaces the ENTRYPOINT (and drops CMD); `args` replaces CMD.
            command = [str(c) for c in container.get("command") or []]
            args = [str(a) for a in container.get("args") or []]
            argv = command[1:] + args if command else args or exec_form(cmd_of(deploy))
            own = {e["name"]: str(e.get("value", "")) for e in container.get("env") or [] if "name" in e}
            procs.append(Proc(
                f"{rel(path)} Deployment/{dep['metadata']['name']}", path, argv, {**image_env, **own}, own,
                int((dep.get("spec") or {}).get("replicas", 1)), container, pod, template,
            ))
    for name, svc in deploy.compose_services().items():
        build = svc.get("build") or {}
        dockerfile = build.get("dockerfile", "") if isinstance(build, dict) else ""
        if not (is_rudder_image(svc.get("image")) or str(dockerfile).endswith("deploy/docker/Dockerfile")):
            continue
        argv = compose_command(svc) or exec_form(cmd_of(deploy))
        own = compose_env(svc)
        replicas = int(((svc.get("deploy") or {}).get("replicas")) or 1)
        procs.append(Proc(f"{rel(COMPOSE)} service {name}", COMPOSE, argv, {**image_env, **own}, own,
                          replicas, svc, service_name=name))
    return procs


def cmd_of(deploy: Deploy) -> str:
    cmds = deploy.stages[-1].all("CMD") if deploy.stages else []
    return cmds[-1].args if cmds else "[]"


@dataclass
class Invocation:
    subcommand: str
    roles: list[str]
    flags: dict[str, str]
    problems: list[str]


def parse_invocation(argv: list[str], cli: Cli) -> Invocation:
    """Checks argv against the parsed command line: `serve [ROLE...] [--flag VALUE...]`,
    `status --server URL`; other subcommands only have to exist."""
    if not argv:
        return Invocation("", [], {}, ["no arguments: rudder would print its usage and exit"])
    sub, rest = argv[0], argv[1:]
    inv = Invocation(sub, [], {}, [])
    if sub not in cli.subcommands:
        inv.problems.append(f"{sub!r} is not a rudder subcommand ({', '.join(cli.subcommands)})")
        return inv
    known = {"serve": cli.serve_flags, "status": cli.status_flags}.get(sub)
    if known is None:
        return inv
    i = 0
    while i < len(rest):
        word = rest[i]
        if word.startswith("-"):
            flag, eq, value = word.partition("=")
            if flag not in known:
                inv.problems.append(f"`rudder {sub}` has no flag {flag} (it has {', '.join(sorted(known))})")
            elif known[flag] and not eq:
                if i + 1 >= len(rest):
                    inv.problems.append(f"{flag} needs a value")
                else:
                    value = rest[i + 1]
                    i += 1
            inv.flags[flag] = value
        elif sub == "serve" and word in cli.roles:
            inv.roles.append(word)
        else:
            allowed = f"a role ({', '.join(cli.roles)})" if sub == "serve" else "no positional argument"
            inv.problems.append(f"`rudder {sub}` takes {allowed}, not {word!r}")
        i += 1
    return inv


# --------------------------------------------------------------------------------------------------
# Effective configuration of a process, layered like layered_config.rs
# --------------------------------------------------------------------------------------------------


@dataclass
class Effective:
    values: dict[str, Any]
    origin: dict[str, str]
    file_keys: dict[str, Any]  # keys the --config file sets
    config_file: tuple[str, str] | None  # (where, TOML text)
    problems: list[str]

    def roles(self) -> list[str]:
        return list(self.values.get("server.services") or [])

    def port(self, key: str) -> int | None:
        value = str(self.values.get(key) or "")
        return int(value.rpartition(":")[2]) if valid_socket_addr(value) else None


def resolve_config_file(proc: Proc, path: str, deploy: Deploy) -> tuple[tuple[str, str] | None, str | None]:
    """The TOML that `--config PATH` reads in this container: a key of a ConfigMap mounted over PATH
    (k8s) or a bind-mounted host file (compose). Returns ((where, text), None) or (None, problem)."""
    if proc.pod is not None:
        volumes = {v.get("name"): v for v in proc.pod.get("volumes") or []}
        for mount in proc.container.get("volumeMounts") or []:
            mount_path = str(mount.get("mountPath", "")).rstrip("/")
            if not path.startswith(mount_path + "/"):
                continue
            volume = volumes.get(mount.get("name")) or {}
            key = mount.get("subPath") or path[len(mount_path) + 1 :]
            cm_ref = volume.get("configMap")
            if not cm_ref:
                return None, f"--config {path} is on volume {mount.get('name')!r}, which is not a ConfigMap"
            items = {i.get("path"): i.get("key") for i in cm_ref.get("items") or []}
            key = items.get(key, key) if items else key
            for cm_path, cm in deploy.k8s_objects("ConfigMap"):
                if cm["metadata"]["name"] == cm_ref.get("name"):
                    data = cm.get("data") or {}
                    if key not in data:
                        return None, (f"--config {path}: ConfigMap {cm_ref.get('name')} "
                                      f"({rel(cm_path)}) has no key {key!r}")
                    return (f"{rel(cm_path)} ConfigMap/{cm_ref.get('name')} key {key}", data[key]), None
            return None, f"--config {path}: ConfigMap {cm_ref.get('name')!r} is not defined in deploy/k8s"
        return None, f"--config {path} is not under any volumeMount of the container"
    for volume in proc.container.get("volumes") or []:
        source, _, target = str(volume).partition(":")
        target = target.split(":")[0]
        if source.startswith((".", "/")) and target == path:
            host = (COMPOSE.parent / source).resolve()
            if host.is_file():
                return (rel(host), host.read_text()), None
    return None, f"--config {path} is not a bind-mounted file of the compose service"


def effective_config(
    proc: Proc, deploy: Deploy, cli: Cli, defaults: dict[str, Any], schema: Schema
) -> Effective:
    """defaults < --config file < RUDDER_MODELS_DIR < RUDDER__* env < flags, as ConfigFlags::load."""
    values, origin = dict(defaults), {k: "default.toml" for k in defaults}
    inv = parse_invocation(proc.argv, cli)
    eff = Effective(values, origin, {}, None, [])
    if "--config" in inv.flags:
        eff.config_file, problem = resolve_config_file(proc, inv.flags["--config"], deploy)
        if problem:
            eff.problems.append(problem)
        if eff.config_file:
            try:
                eff.file_keys = flatten(tomllib.loads(eff.config_file[1]))
            except tomllib.TOMLDecodeError as err:
                eff.problems.append(f"{eff.config_file[0]} is not valid TOML: {err}")
            for key, value in eff.file_keys.items():
                values[key], origin[key] = value, eff.config_file[0]
    for name in sorted(proc.env, key=lambda n: n != MODELS_DIR_ENV):  # RUDDER_MODELS_DIR first
        key = env_key(name)
        if key:
            values[key] = env_value(proc.env[name], schema.type_of(key))
            origin[key] = f"env {name}" + ("" if name in proc.own_env else " (Dockerfile ENV)")
    for flag, key in (("--listen", "server.listen"), ("--data-dir", "server.data_dir"),
                      ("--models-dir", "models.dir"), ("--retrieval-url", "generation.retrieval_url")):
        if flag in inv.flags:
            values[key], origin[key] = inv.flags[flag], f"flag {flag}"
    if inv.roles:
        values["server.services"], origin["server.services"] = list(dict.fromkeys(inv.roles)), "serve roles"
    return eff


# --------------------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------------------


@dataclass
class Ctx:
    deploy: Deploy
    defaults: dict[str, Any]
    default_tables: set[str]
    schema: Schema
    cli: Cli
    health: dict[str, list[str]]
    rudder: Path | None
    procs: list[Proc]
    _effective: dict[int, Effective] = field(default_factory=dict)

    def effective(self, proc: Proc) -> Effective:
        """proc's layered configuration (computed once)."""
        if id(proc) not in self._effective:
            self._effective[id(proc)] = effective_config(
                proc, self.deploy, self.cli, self.defaults, self.schema
            )
        return self._effective[id(proc)]


@dataclass
class Result:
    summary: str = ""
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_yaml(ctx: Ctx) -> Result:
    """Every YAML file under deploy/ parses, and every k8s document has apiVersion, kind and
    metadata.name (kubectl refuses a document without them) with no (kind, name) twice in one file."""
    r = Result(problems=list(ctx.deploy.yaml_errors))
    seen: dict[tuple[Path, str, str], int] = {}
    for path, doc in ctx.deploy.k8s:
        if not isinstance(doc, dict):
            r.problems.append(f"{rel(path)}: a document is not a mapping")
            continue
        name = (doc.get("metadata") or {}).get("name")
        missing = [k for k, v in (("apiVersion", doc.get("apiVersion")), ("kind", doc.get("kind")),
                                  ("metadata.name", name)) if not v]
        if missing:
            r.problems.append(f"{rel(path)}: {doc.get('kind', 'a document')} lacks {', '.join(missing)}")
            continue
        key = (path, doc["kind"], name)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] == 2:
            r.problems.append(f"{rel(path)}: {doc['kind']}/{name} is defined twice")
    if not ctx.deploy.compose.get("services"):
        r.problems.append(f"{rel(COMPOSE)}: no services")
    files = len(list(DEPLOY.rglob("*.y*ml")))
    r.summary = (f"{files} YAML files parse; {len(ctx.deploy.k8s)} k8s documents with apiVersion, kind, "
                 "metadata.name")
    return r


def toml_key_problems(ctx: Ctx, where: str, table: dict) -> list[str]:
    """Keys of a rudder TOML that default.toml does not have (rudder refuses unknown keys), tables
    given as values or values given as tables, and values the schema's types refuse."""
    problems = []
    for key in sorted(tables_of(table)):
        if key not in ctx.default_tables:
            hint = " (a key, not a table, in default.toml)" if key in ctx.defaults else ""
            problems.append(f"{where}: [{key}] is not a section of {rel(DEFAULT_TOML)}{hint}")
    for key, value in flatten(table).items():
        if key in ctx.default_tables:
            problems.append(f"{where}: {key} is a table in {rel(DEFAULT_TOML)}, not a value")
        elif key not in ctx.defaults:
            if key.rpartition(".")[0] in ctx.default_tables or "." not in key:
                problems.append(f"{where}: {key} is not a key of {rel(DEFAULT_TOML)} "
                                "(rudder refuses unknown keys)")
        elif problem := value_problem(ctx.schema, key, value):
            problems.append(f"{where}: {key} {problem}")
    return problems


def run_config_show(rudder: Path, env: dict[str, str], args: list[str]) -> tuple[dict | None, str]:
    """`rudder config show ARGS` under env: (the printed configuration, flattened) or (None, stderr)."""
    done = subprocess.run([str(rudder), "config", "show", *args], env=env, capture_output=True, text=True,
                          timeout=60)
    if done.returncode != 0:
        return None, " ".join((done.stderr or done.stdout).split()) or f"exit {done.returncode}"
    try:
        return flatten(tomllib.loads(done.stdout)), ""
    except tomllib.TOMLDecodeError as err:
        return None, f"output is not TOML: {err}"


def same(a: Any, b: Any) -> bool:
    """Equal once both sides are strings (an env "3" and a TOML 3; a PathBuf and its string)."""

    def norm(v: Any) -> str:
        if isinstance(v, list):
            return json.dumps(v)
        return str(v).lower() if isinstance(v, bool) else str(v)

    return norm(a) == norm(b)


def base_env() -> dict[str, str]:
    """The caller's environment without RUDDER__* overrides (they would be a layer of their own);
    RUDDER_MODELS_DIR and HOME are kept."""
    return {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}


def check_configmap_toml(ctx: Ctx) -> Result:
    """The rudder TOML in each ConfigMap only uses sections and keys of default.toml, with values of
    the schema's types: rudder refuses unknown keys and bad values at startup, which on k8s is a
    crash loop. With --rudder, `rudder config show --config FILE` (the real loader) must accept it
    and show each value the file sets."""
    r = Result()
    found = []
    for path, cm in ctx.deploy.k8s_objects("ConfigMap"):
        for key, text in (cm.get("data") or {}).items():
            if not key.endswith(".toml"):
                continue
            where = f"{rel(path)} ConfigMap/{cm['metadata']['name']} {key}"
            try:
                table = tomllib.loads(text)
            except tomllib.TOMLDecodeError as err:
                r.problems.append(f"{where}: not valid TOML: {err}")
                continue
            found.append(where)
            r.problems += toml_key_problems(ctx, where, table)
            if ctx.rudder:
                with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as tmp:
                    tmp.write(text)
                try:
                    shown, err = run_config_show(ctx.rudder, base_env(), ["--config", tmp.name])
                finally:
                    os.unlink(tmp.name)
                if shown is None:
                    r.problems.append(f"{where}: `{ctx.rudder} config show --config` refuses it: {err}")
                else:
                    for k, v in flatten(table).items():
                        if k in shown and not same(shown[k], v):
                            r.problems.append(f"{where}: {k} = {v!r} but `config show` prints {shown[k]!r}")
    if not found:
        r.problems.append(f"{rel(K8S_DIR)}: no ConfigMap with a rudder .toml key")
    real = "; `rudder config show --config` accepts it" if ctx.rudder else " (no --rudder: loader not run)"
    r.summary = f"{', '.join(found)}: sections/keys/values match {rel(DEFAULT_TOML)}{real}"
    return r


def all_env(ctx: Ctx) -> list[tuple[str, str, str]]:
    """(where, name, value) of every environment variable the deploy files set."""
    out = [(rel(DOCKERFILE), k, v) for k, v in ctx.deploy.image_env().items()]
    for name, svc in ctx.deploy.compose_services().items():
        out += [(f"{rel(COMPOSE)} service {name}", k, v) for k, v in compose_env(svc).items()]
    for path, doc in ctx.deploy.k8s:
        spec = (doc.get("spec") or {}) if isinstance(doc, dict) else {}
        pod = (spec.get("template") or {}).get("spec") or {}
        for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
            for e in c.get("env") or []:
                where = f"{rel(path)} {doc.get('kind')}/{doc['metadata']['name']} container {c.get('name')}"
                out.append((where, str(e.get("name")), e.get("value", "")))
    return out


def check_env(ctx: Ctx) -> Result:
    """Every RUDDER__SECTION__KEY variable (Dockerfile ENV, compose, k8s) names a key of default.toml
    and carries a value of its type: an unknown one stops rudder at startup ("unknown field"). A
    RUDDER_ variable with one underscore is not read at all (except RUDDER_MODELS_DIR)."""
    r = Result()
    count = 0
    for where, name, value in all_env(ctx):
        if not isinstance(value, str) and "k8s" in where:
            r.problems.append(f"{where}: env {name} value {value!r} must be a string (quote it)")
            continue
        key = env_key(name)
        if key is None:
            if name.startswith("RUDDER"):
                r.problems.append(f"{where}: {name} is not read by rudder "
                                  f"(RUDDER__SECTION__KEY, or {MODELS_DIR_ENV})")
            continue
        count += 1
        if key in ctx.default_tables:
            r.problems.append(f"{where}: {name} names the table [{key}], not a key")
        elif key not in ctx.defaults:
            r.problems.append(f"{where}: {name} -> {key} is not a key of {rel(DEFAULT_TOML)}")
        elif problem := value_problem(ctx.schema, key, env_value(str(value), ctx.schema.type_of(key))):
            r.problems.append(f"{where}: {name}: {key} {problem}")
    r.summary = f"{count} RUDDER variables (Dockerfile, compose, k8s) name keys of {rel(DEFAULT_TOML)}"
    return r


def check_invocations(ctx: Ctx) -> Result:
    """Every rudder container runs a valid command line: `serve` with roles and flags cli.rs defines
    (a typo is a crash loop); compose healthchecks run `rudder status --server URL`. With --rudder,
    each flag used must appear in `serve --help` / `status --help` of the real binary."""
    r = Result()
    used: dict[str, set[str]] = {"serve": set(), "status": set()}
    roles_used: set[str] = set()
    for proc in ctx.procs:
        if proc.pod is not None and proc.container.get("command"):
            if Path(str(proc.container["command"][0])).name != "rudder":
                r.problems.append(f"{proc.where}: command {proc.container['command'][0]!r} "
                                  "is not the rudder binary")
        inv = parse_invocation(proc.argv, ctx.cli)
        r.problems += [f"{proc.where}: args {proc.argv}: {p}" for p in inv.problems]
        if proc.argv and inv.subcommand != "serve":
            r.problems.append(f"{proc.where}: runs `rudder {' '.join(proc.argv)}`, not `rudder serve ...`")
        used["serve"] |= set(inv.flags)
        roles_used |= set(inv.roles)
        test = (proc.container.get("healthcheck") or {}).get("test") or []
        test = shlex.split(test) if isinstance(test, str) else [str(t) for t in test]
        if test[:1] in (["CMD"], ["CMD-SHELL"]):
            words = test[1:] if test[0] == "CMD" else shlex.split(" ".join(test[1:]))
            if words and Path(words[0]).name == "rudder":
                hc = parse_invocation(words[1:], ctx.cli)
                r.problems += [f"{proc.where}: healthcheck {words}: {p}" for p in hc.problems]
                used.setdefault(hc.subcommand, set()).update(hc.flags)
    if ctx.rudder:
        for sub, flags in used.items():
            if not flags and sub != "serve":
                continue
            done = subprocess.run([str(ctx.rudder), sub, "--help"], capture_output=True, text=True,
                                  timeout=60)
            if done.returncode != 0:
                r.problems.append(f"`{ctx.rudder} {sub} --help` failed: {' '.join(done.stderr.split())}")
                continue
            for flag in sorted(flags):
                if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", done.stdout):
                    r.problems.append(f"{flag} is used by the deploy files but "
                                      f"`{ctx.rudder} {sub} --help` lacks it")
            if sub == "serve":
                for role in sorted(roles_used):
                    if not re.search(rf"\b{role}\b", done.stdout):
                        r.problems.append(f"role {role} is used but `{ctx.rudder} serve --help` "
                                          "does not list it")
    real = "; all in the binary's --help" if ctx.rudder else ""
    r.summary = (f"{len(ctx.procs)} rudder containers run `serve` with roles "
                 f"{sorted(roles_used) or ['(all)']} and flags {sorted(used['serve'])} of cli.rs{real}")
    return r


def dig(obj: Any, *path: str, default: Any = None) -> Any:
    """obj[path[0]][path[1]]..., or default where a level is missing or null."""
    for key in path:
        if not isinstance(obj, dict) or obj.get(key) is None:
            return default
        obj = obj[key]
    return obj


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def deployments_selected(ctx: Ctx, service: dict) -> list[Proc]:
    """The rudder Deployments whose pods a Service's selector picks."""
    selector = dig(service, "spec", "selector", default={})
    return [p for p in ctx.procs if p.template is not None
            and selects(selector, dig(p.template, "metadata", "labels", default={}))]


def container_ports(container: dict) -> dict[str | int, int]:
    """{name: port} and {port: port} of a container's declared ports."""
    out: dict[str | int, int] = {}
    for port in container.get("ports") or []:
        if "containerPort" in port:
            out[int(port["containerPort"])] = int(port["containerPort"])
            if port.get("name"):
                out[port["name"]] = int(port["containerPort"])
    return out


def grpc_probes(container: dict) -> list[tuple[str, dict]]:
    return [(name, container[name]["grpc"]) for name in ("readinessProbe", "livenessProbe", "startupProbe")
            if dig(container, name, "grpc") is not None]


def check_k8s(ctx: Ctx) -> Result:
    """The objects reference each other correctly: a Service with no matching pods or a wrong
    targetPort routes nowhere; a probe on an undeclared port or a service name rudder's health does
    not report keeps pods unready forever; a volume naming a missing ConfigMap/PVC keeps the pod
    Pending; generation finds the retrieval pods through a headless Service."""
    r = Result()
    health_names = sorted({n for names in ctx.health.values() for n in names})
    if not health_names:
        r.problems.append(f"{rel(GRPC_RS)}: found no rudder.v1 service names (has health reporting moved?)")
    for path, dep in ctx.deploy.k8s_objects("Deployment"):
        r.problems += deployment_problems(ctx, f"{rel(path)} Deployment/{dep['metadata']['name']}", dep,
                                          health_names)
    for path, svc in ctx.deploy.k8s_objects("Service"):
        where = f"{rel(path)} Service/{svc['metadata']['name']}"
        targets = deployments_selected(ctx, svc)
        if not targets:
            r.problems.append(f"{where}: selector {dig(svc, 'spec', 'selector')} "
                              "matches no Deployment's pods")
        for port in dig(svc, "spec", "ports", default=[]):
            target = port.get("targetPort", port.get("port"))
            for proc in targets:
                if target not in container_ports(proc.container):
                    r.problems.append(f"{where}: targetPort {target!r} is not a port of {proc.where}")
    k8s_procs = [p for p in ctx.procs if p.pod is not None]
    for proc in k8s_procs:
        # Readiness must wait for a service the container's roles serve (or the whole server, "").
        roles = ctx.effective(proc).roles()
        served = {n for role in roles for n in ctx.health.get(role, [])}
        service = dig(proc.container, "readinessProbe", "grpc", "service")
        if service and service in health_names and service not in served:
            r.problems.append(f"{proc.where}: readinessProbe waits for {service}, "
                              f"which roles {roles} do not serve")
    # Retrieval pods without generation: generation elsewhere reaches them over the network.
    split_retrieval = [p for p in k8s_procs
                       if {"retrieval", "generation"} & set(ctx.effective(p).roles()) == {"retrieval"}]
    headless = [s for _, s in ctx.deploy.k8s_objects("Service")
                if dig(s, "spec", "clusterIP") == "None"
                and any(p in split_retrieval for p in deployments_selected(ctx, s))]
    if split_retrieval and not headless:
        r.problems.append(f"{rel(K8S_DIR)}: no headless Service (clusterIP: None) selects the retrieval pods "
                          f"({', '.join(p.where for p in split_retrieval)})")
    r.summary = (f"{len(ctx.deploy.k8s_objects('Deployment'))} Deployments, "
                 f"{len(ctx.deploy.k8s_objects('Service'))} Services: selectors, targetPorts, grpc probes "
                 f"({', '.join(health_names)}), volumes resolve; headless "
                 f"{', '.join(s['metadata']['name'] for s in headless) or '(none needed)'}")
    return r


def deployment_problems(ctx: Ctx, where: str, dep: dict, health_names: list[str]) -> list[str]:
    """One Deployment: selector vs labels, volumes vs defined objects, mounts vs volumes, probes."""
    problems = []
    defined = {(d.get("kind"), dig(d, "metadata", "name")) for _, d in ctx.deploy.k8s if isinstance(d, dict)}
    rwo_claims = {d["metadata"]["name"] for _, d in ctx.deploy.k8s_objects("PersistentVolumeClaim")
                  if "ReadWriteOnce" in dig(d, "spec", "accessModes", default=[])}
    spec = dep.get("spec") or {}
    if not selects(dig(spec, "selector", "matchLabels", default={}),
                   dig(spec, "template", "metadata", "labels", default={})):
        problems.append(f"{where}: spec.selector.matchLabels does not match the pod template labels")
    pod = dig(spec, "template", "spec", default={})
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    for name, volume in volumes.items():
        for kind, ref in (("ConfigMap", dig(volume, "configMap", "name")),
                          ("PersistentVolumeClaim", dig(volume, "persistentVolumeClaim", "claimName")),
                          ("Secret", dig(volume, "secret", "secretName"))):
            if ref and (kind, ref) not in defined:
                problems.append(f"{where}: volume {name} names {kind} {ref!r}, not defined in {rel(K8S_DIR)}")
        claim = dig(volume, "persistentVolumeClaim", "claimName")
        recreate = dig(spec, "strategy", "type") == "Recreate"
        if claim in rwo_claims and (int(spec.get("replicas", 1)) != 1 or not recreate):
            # A second pod (a replica, or the new pod of a rolling update) waits for the volume forever.
            problems.append(f"{where}: mounts ReadWriteOnce PVC {claim}: "
                            "needs replicas 1 and strategy Recreate")
    for container in pod.get("containers") or []:
        ports = container_ports(container)
        for mount in container.get("volumeMounts") or []:
            if mount.get("name") not in volumes:
                problems.append(f"{where}: volumeMount {mount.get('name')!r} names no volume of the pod")
        for probe_name, grpc in grpc_probes(container):
            port = grpc.get("port")
            if not isinstance(port, int) or port not in ports:
                problems.append(f"{where}: {probe_name} grpc port {port!r} "
                                "is not a declared containerPort number")
            service = grpc.get("service")
            if service and service not in health_names:
                problems.append(f"{where}: {probe_name} grpc service {service!r} is not one rudder reports "
                                f"({', '.join(health_names)}; see {rel(GRPC_RS)})")
    return problems


def qdrant_nodes(ctx: Ctx) -> dict[str, dict]:
    """Compose services running the Qdrant image."""
    services = ctx.deploy.compose_services()
    return {n: s for n, s in services.items() if "qdrant/qdrant" in str(s.get("image", ""))}


def flag_values(words: list[str]) -> dict[str, str]:
    return {w: words[i + 1] for i, w in enumerate(words[:-1]) if w.startswith("--")}


def check_compose(ctx: Ctx) -> Result:
    """The compose file wires together: depends_on names exist (and a service_healthy condition has a
    healthcheck to wait on); the Qdrant nodes form ONE Raft cluster (exactly one starts it, the others
    --bootstrap to its --uri); rudder's store.qdrant.url names a Qdrant node's gRPC port; the
    generation service's retrieval_url names a service that serves retrieval on its listen port."""
    r = Result()
    where = rel(COMPOSE)
    services = ctx.deploy.compose_services()
    for name, svc in services.items():
        deps = svc.get("depends_on") or []
        for dep, cond in deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps):
            if dep not in services:
                r.problems.append(f"{where}: service {name} depends_on {dep!r}, which is not a service")
            elif (cond or {}).get("condition") == "service_healthy" and not services[dep].get("healthcheck"):
                r.problems.append(f"{where}: service {name} waits for {dep} to be healthy, "
                                  f"but {dep} has no healthcheck")
        for port in svc.get("ports") or []:
            if not isinstance(port, (str, dict)):
                r.problems.append(f"{where}: service {name} port {port!r} must be a quoted string "
                                  "(YAML 1.1 reads 22:22 as a number)")
        replicas = int(dig(svc, "deploy", "replicas", default=1))
        if replicas > 1 and any(":" in str(p) for p in svc.get("ports") or []):
            r.problems.append(f"{where}: service {name} has {replicas} replicas "
                              "but publishes a fixed host port")

    nodes = qdrant_nodes(ctx)
    uris = {name: flag_values(compose_command(svc)).get("--uri") for name, svc in nodes.items()}
    roots = [name for name, svc in nodes.items() if "--bootstrap" not in compose_command(svc)]
    for name, uri in uris.items():
        if not uri or urlsplit(uri).hostname != name:
            r.problems.append(f"{where}: qdrant service {name} must announce itself with "
                              f"--uri http://{name}:6335 (has {uri!r})")
        if str(dig(nodes[name], "environment", "QDRANT__CLUSTER__ENABLED", default="")).lower() != "true":
            r.problems.append(f"{where}: qdrant service {name} lacks QDRANT__CLUSTER__ENABLED=true")
    if nodes and len(roots) != 1:
        r.problems.append(f"{where}: {len(roots)} qdrant services start a cluster ({roots}); "
                          "exactly one must, the others --bootstrap to it")
    for name, svc in nodes.items():
        bootstrap = flag_values(compose_command(svc)).get("--bootstrap")
        if len(roots) == 1 and name != roots[0] and bootstrap != uris[roots[0]]:
            r.problems.append(f"{where}: qdrant service {name} bootstraps to {bootstrap!r}, "
                              f"not the first peer's --uri {uris[roots[0]]!r}")

    for proc in (p for p in ctx.procs if p.service_name):
        r.problems += [f"{where}: service {proc.service_name}: {p}"
                       for p in compose_rudder_problems(ctx, proc, nodes)]
    root = roots[0] if len(roots) == 1 else "?"
    r.summary = (f"{len(services)} services; qdrant cluster {root} <- "
                 f"{', '.join(n for n in nodes if n not in roots)}; rudder on it; generation -> retrieval")
    return r


def compose_rudder_problems(ctx: Ctx, proc: Proc, nodes: dict[str, dict]) -> list[str]:
    """A compose rudder service: its Qdrant URL and (generation) its retrieval URL resolve."""
    problems = []
    eff = ctx.effective(proc)
    roles, v = eff.roles(), eff.values
    remote = bool(str(v.get("generation.retrieval_url") or "").strip())
    uses_store = "ingest" in roles or "retrieval" in roles or ("generation" in roles and not remote)
    if uses_store and v.get("store.backend") == "qdrant":
        url = urlsplit(str(v.get("store.qdrant.url")))
        if url.hostname not in nodes:
            problems.append(f"store.qdrant.url {url.geturl()!r} names no qdrant service "
                            f"({', '.join(nodes) or 'none'})")
        elif url.port != QDRANT_GRPC_PORT:
            problems.append(f"store.qdrant.url port {url.port} is not Qdrant's gRPC port {QDRANT_GRPC_PORT}")
        factor = v.get("store.qdrant.replication_factor")
        if isinstance(factor, int) and factor > len(nodes):
            problems.append(f"store.qdrant.replication_factor {factor} > {len(nodes)} qdrant nodes")
    if "generation" in roles and "retrieval" not in roles and remote:
        url = str(v["generation.retrieval_url"])
        host, port = urlsplit(url).hostname, urlsplit(url).port
        target = next((p for p in ctx.procs if p.service_name == host), None)
        if target is None:
            return problems + [f"generation.retrieval_url {url!r} names no rudder service"]
        t_eff = ctx.effective(target)
        if "retrieval" not in t_eff.roles():
            problems.append(f"generation.retrieval_url {url!r} names {host}, which serves {t_eff.roles()}")
        if port != t_eff.port("server.listen"):
            problems.append(f"generation.retrieval_url port {port} but {host} listens on "
                            f"{t_eff.values.get('server.listen')}")
    return problems


def build_context(ctx: Ctx, r: Result) -> Path:
    """The Docker build context compose uses for the Dockerfile (context relative to the compose file)."""
    for name, svc in ctx.deploy.compose_services().items():
        build = svc.get("build")
        if isinstance(build, dict) and build.get("dockerfile"):
            context = (COMPOSE.parent / str(build.get("context", "."))).resolve()
            if (context / build["dockerfile"]).resolve() != DOCKERFILE.resolve():
                r.problems.append(f"{rel(COMPOSE)}: service {name} builds {build['dockerfile']} in "
                                  f"{rel(context)}, which is not {rel(DOCKERFILE)}")
            return context
    return REPO


def check_dockerfile(ctx: Ctx) -> Result:
    """The image builds from this repository: every COPY source exists in the build context compose
    names; the build stage runs `cargo build --release --locked` of the package that owns the rudder
    binary, on a Rust at least the workspace's rust-version; the runtime stage copies that binary from
    where cargo writes it onto PATH and runs it; the default configuration's relative paths
    (prompts.bundles_dir, eval_data_dir) are copied under WORKDIR; models and data directories line up."""
    r = Result()
    where = rel(DOCKERFILE)
    if not ctx.deploy.stages:
        return Result(problems=[f"{where}: no FROM"])
    context = build_context(ctx, r)
    cargo = tomllib.loads(SERVER_CARGO.read_text())
    package = cargo["package"]["name"]
    binary = next((b["name"] for b in cargo.get("bin") or [] if b.get("name")), package)
    build_at = dockerfile_build_stage(ctx, r, package)
    dockerfile_copy_sources(ctx, r, context)
    run = dockerfile_runtime_stage(ctx, r, binary, build_at)
    place = "the repo root" if context == REPO else rel(context)
    r.summary = f"COPY sources exist in {place}; `cargo build --release --locked -p {package}`; runs {run}"
    return r


def dockerfile_build_stage(ctx: Ctx, r: Result, package: str) -> tuple[str | None, str] | None:
    """The stage running `cargo build`: its flags and Rust version. Returns (stage, WORKDIR)."""
    where = rel(DOCKERFILE)
    workspace = tomllib.loads(WORKSPACE_CARGO.read_text())
    rust_version = dig(workspace, "workspace", "package", "rust-version")
    for stage in ctx.deploy.stages:
        workdir = "/"
        for instr in stage.instructions:
            if instr.keyword == "WORKDIR":
                workdir = instr.args if instr.args.startswith("/") else f"{workdir.rstrip('/')}/{instr.args}"
            if instr.keyword != "RUN" or not re.search(r"\bcargo\s+build\b", instr.args):
                continue
            words = shlex.split(instr.args)
            pairs = list(zip(words, words[1:]))
            wants = {
                "--locked": "--locked" in words,
                "--release": "--release" in words,
                f"-p {package}": any(a in ("-p", "--package") and b == package for a, b in pairs),
            }
            if missing := [w for w, ok in wants.items() if not ok]:
                r.problems.append(f"{where}:{instr.line}: `{instr.args}` lacks {' '.join(missing)}")
            m = re.match(r"(?:docker\.io/)?(?:library/)?rust:(\d+)\.(\d+)", stage.image)
            if m and rust_version:
                need = tuple(int(x) for x in rust_version.split(".")[:2])
                if (int(m[1]), int(m[2])) < need:
                    r.problems.append(f"{where}: build image {stage.image} is older than "
                                      f"rust-version {rust_version}")
            return stage.name, workdir
    r.problems.append(f"{where}: no stage runs `cargo build`")
    return None


def dockerfile_copy_sources(ctx: Ctx, r: Result, context: Path) -> None:
    """COPY/ADD sources exist in the build context; --from names an earlier stage."""
    where = rel(DOCKERFILE)
    names = [s.name for s in ctx.deploy.stages]
    for index, stage in enumerate(ctx.deploy.stages):
        for instr in stage.all("COPY") + stage.all("ADD"):
            options, sources, _ = copy_parts(instr)
            if "from" in options:
                if options["from"] not in names[:index]:
                    r.warnings.append(f"{where}:{instr.line}: COPY --from={options['from']} "
                                      "is not an earlier stage")
                continue
            for src in sources:
                if not glob.glob(str(context / src)):
                    place = "the repo root" if context == REPO else rel(context)
                    r.problems.append(f"{where}:{instr.line}: COPY source {src!r} does not exist "
                                      f"in the build context ({place})")
                if src in (".", "./") and not ignores_target(context):
                    r.warnings.append(f"{where}:{instr.line}: `COPY . .` with no .dockerignore excluding "
                                      "target/: the build context carries target/, .git and local data")


def ignores_target(context: Path) -> bool:
    """Whether a .dockerignore (the context's, or BuildKit's Dockerfile.dockerignore) excludes target/."""
    for ignore in (context / ".dockerignore", DOCKERFILE.with_name(DOCKERFILE.name + ".dockerignore")):
        if ignore.exists() and re.search(r"^/?target/?\s*$", ignore.read_text(), re.M):
            return True
    return False


def dockerfile_runtime_stage(
    ctx: Ctx, r: Result, binary: str, build_at: tuple[str | None, str] | None
) -> list[str]:
    """The last stage: the binary copied from the build stage's target/release onto PATH and run by
    ENTRYPOINT/CMD; the default config's relative paths copied under WORKDIR; models, data, port."""
    where = rel(DOCKERFILE)
    final = ctx.deploy.stages[-1]
    workdir = next((i.args for i in reversed(final.all("WORKDIR"))), "/")
    dests: dict[str, tuple[str | None, str]] = {}  # absolute destination -> (from stage, source)
    for instr in final.all("COPY") + final.all("ADD"):
        options, sources, dest = copy_parts(instr)
        full = dest if dest.startswith("/") else f"{workdir.rstrip('/')}/{dest}"
        dests.update((full.rstrip("/"), (options.get("from"), src)) for src in sources)
    binary_at = next((d for d, (_, src) in dests.items() if binary in (Path(d).name, Path(src).name)), None)
    if binary_at is None:
        r.problems.append(f"{where}: the final stage copies no {binary} binary")
    elif build_at:
        frm, src = dests[binary_at]
        expected = f"{build_at[1].rstrip('/')}/target/release/{binary}"
        if (frm, src) != (build_at[0], expected):
            r.problems.append(f"{where}: the binary comes from {frm}:{src}, "
                              f"but cargo writes it to {build_at[0]}:{expected}")
    entry = exec_form(final.all("ENTRYPOINT")[-1].args) if final.all("ENTRYPOINT") else []
    cmd = exec_form(final.all("CMD")[-1].args) if final.all("CMD") else []
    run = entry + cmd
    on_path = bool(binary_at) and str(Path(binary_at).parent) in ("/usr/local/bin", "/usr/bin", "/bin")
    if not run or not (run[0] == binary_at or (run[0] == binary and on_path)):
        r.problems.append(f"{where}: ENTRYPOINT/CMD {run} does not run the rudder binary ({binary_at})")
    else:
        r.problems += [f"{where}: CMD {run[1:]}: {p}" for p in parse_invocation(run[1:], ctx.cli).problems]
    for key in ("prompts.bundles_dir", "prompts.eval_data_dir"):
        value = str(ctx.defaults.get(key, ""))
        if value and not value.startswith("/") and f"{workdir.rstrip('/')}/{value}" not in dests:
            r.problems.append(f"{where}: {key} = {value!r} (relative to WORKDIR {workdir}) "
                              "is not copied into the image")
    env = ctx.deploy.image_env()
    models = env.get(MODELS_DIR_ENV)
    if models and models.rstrip("/") not in dests:
        r.problems.append(f"{where}: {MODELS_DIR_ENV}={models} but nothing is copied there")
    data_dir = env.get(f"{ENV_PREFIX}SERVER__DATA_DIR")
    volumes = [v for i in final.all("VOLUME") for v in exec_form(i.args)]
    if data_dir and data_dir not in volumes:
        r.warnings.append(f"{where}: RUDDER__SERVER__DATA_DIR={data_dir} is not a VOLUME")
    listen = env.get(f"{ENV_PREFIX}SERVER__LISTEN", str(ctx.defaults.get("server.listen")))
    exposed = {p.split("/")[0] for i in final.all("EXPOSE") for p in i.args.split()}
    if listen.rpartition(":")[2] not in exposed:
        r.warnings.append(f"{where}: listens on {listen} but EXPOSEs {sorted(exposed)}")
    return run


def check_effective(ctx: Ctx) -> Result:
    """Each rudder process's configuration, layered like rudder does (defaults < --config < env <
    flags), against its surroundings: it listens on a non-loopback address on the port its probes,
    Services and published ports use; the metrics endpoint is on where prometheus.io annotations say;
    no env variable silently overrides the ConfigMap with another value; a generation-only process
    reaches a retrieval Service on the right port; the embedded store (edge) has one process; bundle
    state (and an edge store) sit on a persistent volume. With --rudder, `rudder config show` with the
    container's env and flags agrees with this model."""
    r = Result()
    store_users: dict[Path, int] = {}  # processes (replicas counted) opening the store, per deployment set
    edge_sets: set[Path] = set()
    for proc in ctx.procs:
        eff = ctx.effective(proc)
        problems = list(eff.problems) + listen_problems(proc, eff)
        roles, v = eff.roles(), eff.values
        remote = bool(str(v.get("generation.retrieval_url") or "").strip())
        if "generation" in roles and "retrieval" not in roles and remote and proc.pod is not None:
            problems += k8s_retrieval_url_problems(ctx, proc, str(v["generation.retrieval_url"]))
        uses_store = "ingest" in roles or "retrieval" in roles or ("generation" in roles and not remote)
        edge = uses_store and v.get("store.backend") == "edge"
        if uses_store:
            store_users[proc.file] = store_users.get(proc.file, 0) + proc.replicas
        if edge:
            edge_sets.add(proc.file)
        if ("generation" in roles or edge) and not persistent(proc, str(v.get("server.data_dir"))):
            held = "bundle state and the store" if edge else "bundle state"
            problems.append(f"server.data_dir {v.get('server.data_dir')} holds {held} "
                            "but is not on a persistent volume")
        if ctx.rudder:
            problems += config_show_agrees(ctx, proc, eff)
        r.problems += [f"{proc.where}: {p}" for p in problems]
    for file in sorted(edge_sets):
        if store_users[file] > 1:
            r.problems.append(f"{rel(file)}: {store_users[file]} processes open the embedded store "
                              '(store.backend = "edge"), which belongs to one process: use "qdrant"')
    real = "; `rudder config show` agrees" if ctx.rudder else ""
    r.summary = (f"{len(ctx.procs)} rudder processes: listen/probe/metrics ports, config layers, "
                 f"retrieval_url, store sharing, persistent data_dir{real}")
    return r


def listen_problems(proc: Proc, eff: Effective) -> list[str]:
    """The gRPC and metrics addresses against probes, declared/published ports, annotations, and
    env variables overriding the config file."""
    problems, v, origin = [], eff.values, eff.origin
    listen, listen_port = str(v.get("server.listen")), eff.port("server.listen")
    if listen_port is None:
        return [f"server.listen {listen!r} ({origin['server.listen']}) is not IP:port"]
    if ipaddress.ip_address(listen.rpartition(":")[0].strip("[]")).is_loopback:
        problems.append(f"server.listen {listen} ({origin['server.listen']}) is loopback: "
                        "unreachable from outside the container")
    for key, value in eff.file_keys.items():
        if not same(v.get(key), value) and origin.get(key, "").startswith("env"):
            problems.append(f"{eff.config_file[0]} sets {key} = {value!r}, but {origin[key]} "
                            f"overrides it with {v.get(key)!r}")
    metrics_port = eff.port("server.metrics_listen")
    if proc.pod is not None:
        ports = container_ports(proc.container)
        if listen_port not in ports:
            problems.append(f"rudder listens on port {listen_port}, not a declared containerPort")
        for probe_name, grpc in grpc_probes(proc.container):
            if grpc.get("port") != listen_port:
                problems.append(f"{probe_name} probes port {grpc.get('port')}, "
                                f"rudder listens on {listen_port}")
        annotations = dig(proc.template, "metadata", "annotations", default={})
        if str(annotations.get("prometheus.io/scrape", "")).lower() == "true":
            want = int(annotations.get("prometheus.io/port") or 0)
            if metrics_port != want:
                problems.append(f"prometheus.io/port is {want} but server.metrics_listen is "
                                f"{v.get('server.metrics_listen')!r} ({origin['server.metrics_listen']})")
        if metrics_port and metrics_port not in ports:
            problems.append(f"metrics on port {metrics_port} is not a declared containerPort")
        return problems
    for port in proc.container.get("ports") or []:
        spec = str(port.get("target") if isinstance(port, dict) else port)
        target = int(spec.rsplit(":", 1)[-1].split("/")[0])
        if target not in (listen_port, metrics_port):
            problems.append(f"publishes container port {target}, but rudder listens on {listen_port} "
                            f"(metrics {metrics_port})")
    test = dig(proc.container, "healthcheck", "test", default=[])
    server = next((b for a, b in zip(test, test[1:]) if a == "--server"), None)
    if server and urlsplit(server).port != listen_port:
        problems.append(f"healthcheck asks {server}, rudder listens on {listen_port}")
    return problems


def under(path: str, mount: str) -> bool:
    path, mount = path.rstrip("/"), mount.rstrip("/")
    return path == mount or path.startswith(mount + "/")


def persistent(proc: Proc, data_dir: str) -> bool:
    """Whether data_dir lies on a PVC (k8s) or a named volume/bind mount (compose)."""
    if proc.pod is not None:
        claims = {v.get("name") for v in proc.pod.get("volumes") or [] if "persistentVolumeClaim" in v}
        return any(m.get("name") in claims and under(data_dir, str(m.get("mountPath")))
                   for m in proc.container.get("volumeMounts") or [])
    for volume in proc.container.get("volumes") or []:
        target = volume.get("target") if isinstance(volume, dict) else str(volume).split(":")[1:2]
        target = target[0] if isinstance(target, list) and target else target
        if target and under(data_dir, str(target)):
            return True
    return False


def k8s_retrieval_url_problems(ctx: Ctx, proc: Proc, url: str) -> list[str]:
    """generation.retrieval_url must name a Service (first DNS label) whose port leads to pods that
    serve retrieval on their listen port."""
    parts = urlsplit(url)
    name, port = (parts.hostname or "").split(".")[0], parts.port
    candidates = sorted((ps for ps in ctx.deploy.k8s_objects("Service") if ps[1]["metadata"]["name"] == name),
                        key=lambda ps: ps[0] != proc.file)  # the same file first
    if not candidates:
        return [f"generation.retrieval_url {url!r} names no Service in {rel(K8S_DIR)}"]
    service = candidates[0][1]
    svc_port = next((sp for sp in dig(service, "spec", "ports", default=[]) if sp.get("port") == port), None)
    if svc_port is None:
        return [f"generation.retrieval_url {url!r}: Service {name} has no port {port}"]
    problems = []
    for target in deployments_selected(ctx, service):
        t_eff = ctx.effective(target)
        if "retrieval" not in t_eff.roles():
            problems.append(f"generation.retrieval_url {url!r}: Service {name} selects {target.where}, "
                            f"which serves {t_eff.roles()}")
        target_port = container_ports(target.container).get(svc_port.get("targetPort", port))
        if target_port != t_eff.port("server.listen"):
            problems.append(f"generation.retrieval_url {url!r}: Service {name} port {port} -> container "
                            f"port {target_port}, but {target.where} listens on "
                            f"{t_eff.values.get('server.listen')}")
    return problems


def config_show_agrees(ctx: Ctx, proc: Proc, eff: Effective) -> list[str]:
    """Runs `rudder config show` with the container's RUDDER env, its --config file and config flags;
    it must succeed and print the values this script derived."""
    env = base_env()
    env.update({k: v for k, v in proc.env.items() if env_key(k) and k != MODELS_DIR_ENV})
    inv = parse_invocation(proc.argv, ctx.cli)
    args, tmp_name = [], None
    for flag in ("--listen", "--data-dir", "--models-dir"):
        if flag in inv.flags:
            args += [flag, inv.flags[flag]]
    if eff.config_file:
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as tmp:
            tmp.write(eff.config_file[1])
            tmp_name = tmp.name
        args += ["--config", tmp_name]
    try:
        shown, err = run_config_show(ctx.rudder, env, args)
    finally:
        if tmp_name:
            os.unlink(tmp_name)
    if shown is None:
        return [f"`rudder config show` with its env and flags fails: {err}"]
    # Not compared: what `serve` alone applies (roles, --retrieval-url) and paths rudder rewrites (~/).
    skip = {"server.services", "generation.retrieval_url", "models.dir", "server.data_dir"}
    return [f"{key} is {eff.values[key]!r} here ({eff.origin[key]}) but `rudder config show` prints "
            f"{shown[key]!r}"
            for key in sorted(eff.values)
            if key in shown and key not in skip and eff.origin[key] != "default.toml"
            # Secrets print redacted by design.
            and shown[key] != "[redacted]"
            and not same(shown[key], eff.values[key])]


CHECKS: list[tuple[str, Callable[[Ctx], Result]]] = [
    ("yaml", check_yaml),
    ("configmap toml", check_configmap_toml),
    ("env keys", check_env),
    ("invocations", check_invocations),
    ("k8s wiring", check_k8s),
    ("compose wiring", check_compose),
    ("dockerfile", check_dockerfile),
    ("effective config", check_effective),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rudder", type=Path, metavar="BIN", help="also ask this rudder binary")
    args = parser.parse_args()
    if args.rudder and not (args.rudder.is_file() and os.access(args.rudder, os.X_OK)):
        print(f"check_deploy.py: --rudder {args.rudder} is not an executable file "
              "(build it: cargo build --locked -p rudder-server)", file=sys.stderr)
        return 2
    try:
        defaults_table = tomllib.loads(DEFAULT_TOML.read_text())
        deploy = Deploy.load()
        cli = Cli.load()
        ctx = Ctx(deploy, flatten(defaults_table), tables_of(defaults_table), Schema.load(), cli,
                  health_services(), args.rudder.resolve() if args.rudder else None, rudder_procs(deploy))
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as err:
        print(f"FAIL setup: cannot read the code or the deploy files: {type(err).__name__}: {err}")
        return 1
    if not cli.roles or not cli.serve_flags:
        print(f"FAIL setup: {rel(CLI_RS)}: could not find the `serve` roles/flags (has the CLI moved?)")
        return 1

    failed = 0
    for number, (name, check) in enumerate(CHECKS, 1):
        try:
            result = check(ctx)
        except Exception as err:  # a deploy file shaped unlike this script expects: report it, go on
            result = Result(problems=[f"check crashed on an unexpected shape: {type(err).__name__}: {err}"])
        for warning in result.warnings:
            print(f"warn {number} {name}: {warning}")
        for problem in result.problems:
            print(f"FAIL {number} {name}: {problem}")
        if result.problems:
            failed += 1
        else:
            print(f"ok   {number} {name}: {result.summary}")
    print(f"deploy check: {len(CHECKS) - failed} of {len(CHECKS)} checks passed"
          + ("" if ctx.rudder else " (static only; --rudder BIN also runs the binary)"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
