"""The `kubenet-lab` command's verbs: click only; the work is in app, the printing in output."""
from __future__ import annotations

import contextlib
import os
import sys
import time
from functools import wraps
from typing import Iterator, Sequence

import click

from . import KUBERNETES_VERSION, __version__
from .errors import EnvironmentProblem, InputError, LabError

# Only click at the top: each verb imports what it needs (output, app.query, the kernel and the
# lab's state) inside its function, so `exec` and `get` pay for nothing else
# (tests/unit/test_cli_imports.py; bench/bench_cli.py). cli.py is the entry that runs them.
DEFAULT_LAB = "kubenet"

RESOURCES = {
    "nodes": "nodes", "node": "nodes", "no": "nodes",
    "pods": "pods", "pod": "pods", "po": "pods",
    "services": "services", "service": "services", "svc": "services",
    "endpoints": "endpoints", "ep": "endpoints",
    "endpointslices": "endpointslices", "endpointslice": "endpointslices",
    "deployments": "deployments", "deployment": "deployments", "deploy": "deployments",
    "replicasets": "replicasets", "replicaset": "replicasets", "rs": "replicasets",
    "replicationcontrollers": "replicationcontrollers", "replicationcontroller": "replicationcontrollers",
    "rc": "replicationcontrollers",
    "statefulsets": "statefulsets", "statefulset": "statefulsets", "sts": "statefulsets",
    "daemonsets": "daemonsets", "daemonset": "daemonsets", "ds": "daemonsets",
    "jobs": "jobs", "job": "jobs",
    "events": "events", "event": "events", "ev": "events",
    "configmaps": "configmaps", "configmap": "configmaps", "cm": "configmaps",
    "secrets": "secrets", "secret": "secrets",
    "namespaces": "namespaces", "namespace": "namespaces", "ns": "namespaces",
    "networkpolicies": "networkpolicies", "networkpolicy": "networkpolicies", "netpol": "networkpolicies",
    "all": "all",
}
CLUSTER_SCOPED = ("nodes", "namespaces")
# What `get all` lists, in kubectl's order, and the prefix of each NAME.
ALL = (("pods", "pod"), ("services", "service"), ("daemonsets", "daemonset.apps"),
       ("deployments", "deployment.apps"), ("replicasets", "replicaset.apps"),
       ("replicationcontrollers", "replicationcontroller"), ("statefulsets", "statefulset.apps"),
       ("jobs", "job.batch"))


def handle_errors(fn):
    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as e:
            for p in e.problems:
                click.echo(f"error: {p}", err=True)
            sys.exit(2)
        except (LabError, EnvironmentProblem) as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)
    return wrapper


DRY_RUN_VERBS = ("up", "apply", "delete", "scale")


class KubectlGroup(click.Group):
    """kubectl writes `--dry-run=client`; for the verbs whose --dry-run is a plain flag here,
    `--dry-run=client` and `=server` become `--dry-run`, and `--dry-run=none` goes (never after `--`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        verb, skip = None, False
        for a in args:  # the first word that is not a global option or its value
            if skip:
                skip = False
            elif a in ("--lab", "--lock-timeout"):
                skip = True
            elif not a.startswith("-"):
                verb = a
                break
        if verb in DRY_RUN_VERBS:
            end = args.index("--") if "--" in args else len(args)
            head = []
            for a in args[:end]:
                if a in ("--dry-run=client", "--dry-run=server"):
                    head.append("--dry-run")
                elif a != "--dry-run=none":
                    head.append(a)
            args = head + args[end:]
        return super().parse_args(ctx, args)


@click.group(cls=KubectlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--lab", envvar="KUBENET_LAB", default=DEFAULT_LAB, show_default=True, metavar="NAME",
              help="Name of the lab; part of every namespace it creates, so several labs live side by side. "
                   "Also read from $KUBENET_LAB.")
@click.option("--lock-timeout", type=click.FloatRange(min=0), metavar="SECONDS",
              help="How long a command waits while another holds the lab's lock before it gives up "
                   "(default 60; also read from $KUBENET_LAB_LOCK_TIMEOUT).")
# The Kubernetes release the lab emulates (its nodes' kubelet version) beside the lab's own.
@click.version_option(__version__, prog_name="kubenet-lab",
                      message=f"%(prog)s, version %(version)s (Kubernetes v{KUBERNETES_VERSION})")
@click.pass_context
def main(ctx: click.Context, lab: str, lock_timeout: float | None) -> None:
    """Real Kubernetes pod networks from ordinary manifests, built in network namespaces.

    \b
    Examples:
      sudo kubenet-lab up manifests/          # build the lab the manifests describe
      sudo kubenet-lab get pods -o wide       # pods, their IPs and nodes
      sudo kubenet-lab exec client -- curl -s web
      sudo kubenet-lab exec node/node1 -- iptables-save -t nat
      sudo kubenet-lab down                   # remove everything the lab made
    """
    ctx.obj = {"lab": lab}
    if lock_timeout is not None:
        from .fabric import state

        os.environ[state.LOCK_TIMEOUT_ENV] = f"{lock_timeout:g}"  # read where the lock is taken


def dry_run_option(fn):
    """kubectl's --dry-run: bare, or =client / =server (both only plan here), or =none (see
    KubectlGroup, which spells the last three as the first or nothing)."""
    return click.option("--dry-run", "dry_run", is_flag=True, flag_value="client", default="none",
                        help="Print what would change (objects; namespaces, links, addresses, routes, "
                             "processes; each node's rules as a diff) and change nothing. "
                             "--dry-run=client and =server mean the same here; =none is off.")(fn)


def quiet_option(fn):
    return click.option("-q", "--quiet", is_flag=True,
                        help="No progress line on the terminal (there is none when standard error is not one).")(fn)


@contextlib.contextmanager
def _progress(verb: str, lab: str, quiet: bool) -> Iterator[bool]:
    """A change's status line on the terminal, following the steps it passes (kernel/steps.py),
    cleared when it ends; yields whether it shows."""
    from . import progress
    from .kernel import steps

    started = time.monotonic()
    with progress.Status(progress.on_terminal(quiet)) as status, steps.listening(
            lambda name: status.update(progress.step_line(verb, lab, name, steps.STEPS, time.monotonic() - started))):
        yield status.show


@main.command()
@click.argument("paths", nargs=-1, metavar="[PATH]...")
@click.option("--proxy-mode", type=click.Choice(["iptables", "nftables", "userspace", "ipvs"]),
              help="kube-proxy mode for every node (overrides the Cluster config's kubeProxyMode).")
@dry_run_option
@quiet_option
@click.pass_context
@handle_errors
def up(ctx: click.Context, paths: tuple[str, ...], proxy_mode: str | None, dry_run: str, quiet: bool) -> None:
    """Build (or update) the lab the manifests describe.

    PATH is a file, a directory (every *.yaml/*.yml inside, in sorted order) or - for standard
    input; with no PATH, the bundled example lab. Running it again with the same manifests
    changes nothing; with changed manifests it changes only what differs.

    \b
    Examples:
      sudo kubenet-lab up                       # the example lab
      sudo kubenet-lab up manifests/ extra.yaml
      cat web.yaml | sudo kubenet-lab up -
      sudo kubenet-lab --lab demo up --proxy-mode nftables manifests/
    """
    from .app import build  # the kernel layer: only the verbs that change the lab import it

    with _progress("up", ctx.obj["lab"], quiet):
        result = build.up(ctx.obj["lab"], paths, stdin=sys.stdin, proxy_mode=proxy_mode,
                          dry_run=dry_run != "none")
    if result.dry_run is not None:
        for w in result.warnings:
            click.echo(f"warning: {w}", err=True)
        click.echo(f"lab {result.plan.lab} would be: {counted(result.plan.nodes, 'node')}, "
                   f"{counted(result.plan.pods + result.plan.pending, 'pod')}, "
                   f"{counted(result.plan.services, 'service')} (dry run: nothing changed)")
        click.echo(result.dry_run, nl=False)
        return
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
    plan = result.plan
    waiting = f" ({len(plan.pending)} Pending)" if plan.pending else ""
    click.echo(f"lab {plan.lab} is up: {counted(plan.nodes, 'node')}, {counted(plan.pods + plan.pending, 'pod')}"
               f"{waiting}, {counted(plan.services, 'service')}, kube-proxy mode {plan.cluster.kube_proxy_mode} "
               f"({counted(result.created, 'namespace')} created, {len(result.removed)} removed, "
               f"{result.seconds:.2f}s)")
    click.echo(f"next: kubenet-lab{_lab_flag(plan.lab)} get pods -o wide")


def counted(items, word: str) -> str:
    """`1 namespace`, `2 namespaces`: the count and the word agreeing in number."""
    return f"{len(items)} {word}{'' if len(items) == 1 else 's'}"


def _lab_flag(lab: str) -> str:
    return "" if lab == DEFAULT_LAB else f" --lab {lab}"


@main.command()
@click.option("--all", "all_labs", is_flag=True, help="Remove every kubenet-lab lab on this machine.")
@quiet_option
@click.pass_context
@handle_errors
def down(ctx: click.Context, all_labs: bool, quiet: bool) -> None:
    """Remove everything the lab made: namespaces, links, rules, processes, state.

    It finds what is the lab's own from the ownership marks, so it works even with the state
    lost, and it succeeds on a lab that is already gone.

    \b
    Examples:
      sudo kubenet-lab down
      sudo kubenet-lab --lab demo down
      sudo kubenet-lab down --all
    """
    from . import progress
    from .app import build

    if all_labs:
        with progress.Status(progress.on_terminal(quiet)) as status:
            status.update("down --all: removing every lab...")
            removed = build.down_all()
        for lab, names in removed.items():
            click.echo(f"lab {lab} removed ({counted(names, 'namespace')})")
        if not removed:
            click.echo("no kubenet-lab lab on this machine")
        return
    started = time.monotonic()
    with progress.Status(progress.on_terminal(quiet)) as status:
        status.update(f"down {ctx.obj['lab']}: removing its namespaces, processes and state...")
        names = build.down(ctx.obj["lab"])
    click.echo(f"lab {ctx.obj['lab']} removed ({counted(names, 'namespace')}, {time.monotonic() - started:.2f}s)"
               if names else f"lab {ctx.obj['lab']} is not up; nothing to remove")


def _report(result, summary: bool = False) -> None:
    """kubectl's lines for a change: what happened on stdout, warnings and errors on stderr;
    exit 1 when something named was not found. With `summary` (a person at a terminal), one line
    on stderr after them says what the change did to the lab."""
    if result.up is not None:
        for w in result.up.warnings:
            click.echo(f"warning: {w}", err=True)
    dry = result.up is not None and result.up.dry_run is not None
    for line in result.lines:
        click.echo(f"{line} (dry run)" if dry else line)
    if dry:
        click.echo(result.up.dry_run, nl=False)
    for line in result.errors:
        click.echo(line, err=True)
    if summary and result.up is not None and not dry:
        click.echo(change_summary(result.up), err=True)
    if result.errors:
        sys.exit(1)


def change_summary(up) -> str:
    """`lab fsx changed: 1 namespace created, 1 removed, rules loaded in 2 nodes (0.84s)`."""
    if not (up.created or up.removed or up.rules_changed) and not up.seconds:
        return f"lab {up.plan.lab} unchanged"
    return (f"lab {up.plan.lab} changed: {counted(up.created, 'namespace')} created, {len(up.removed)} removed, "
            f"rules loaded in {counted(up.rules_changed, 'node')} ({up.seconds:.2f}s)")


@main.command()
@click.option("-f", "--filename", "paths", multiple=True, metavar="PATH",
              help="A file, a directory (its *.yaml/*.yml in sorted order) or - for standard input; repeatable.")
@dry_run_option
@quiet_option
@click.pass_context
@handle_errors
def apply(ctx: click.Context, paths: tuple[str, ...], dry_run: str, quiet: bool) -> None:
    """Add the objects the files name to the lab, or change them, like kubectl apply.

    Objects the files do not name stay (`up` makes the lab exactly what its files say). The lab
    is brought up when it is not. A name given twice is applied twice, in order: the later wins.

    \b
    Examples:
      sudo kubenet-lab apply -f web.yaml
      sudo kubenet-lab apply -f manifests/ -f extra.yaml
      cat web.yaml | sudo kubenet-lab apply -f -
    """
    from .app import change

    with _progress("apply", ctx.obj["lab"], quiet) as shown:
        result = change.apply(ctx.obj["lab"], paths, stdin=sys.stdin, dry_run=dry_run != "none")
    _report(result, summary=shown)


@main.command()
@click.argument("args", nargs=-1, metavar="(KIND NAME... | KIND/NAME...)")
@click.option("-f", "--filename", "paths", multiple=True, metavar="PATH", help="Delete the objects these files name.")
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of the objects.")
@dry_run_option
@quiet_option
@click.pass_context
@handle_errors
def delete(ctx: click.Context, args: tuple[str, ...], paths: tuple[str, ...], namespace: str, dry_run: str,
           quiet: bool) -> None:
    """Delete objects from the lab, like kubectl delete.

    KIND: pod(s)/po, service(s)/svc, deployment(s)/deploy, replicaset(s)/rs,
    replicationcontroller(s)/rc, statefulset(s)/sts, daemonset(s)/ds, job(s), namespace(s)/ns,
    configmap(s)/cm, secret(s).
    A pod a controller owns is replaced by a new one (a new name from a ReplicaSet, the same name
    and a new address from a StatefulSet); a bare pod is gone.

    \b
    Examples:
      sudo kubenet-lab delete pod web-6c8ffc4f57-5cxsd
      sudo kubenet-lab delete deployment/web service/web
      sudo kubenet-lab delete -n shop svc cart
      sudo kubenet-lab delete -f web.yaml
    """
    lab = ctx.obj["lab"]
    with _progress("delete", lab, quiet) as shown:
        result = _delete(lab, args, paths, namespace, dry_run != "none")
    _report(result, summary=shown)


def _delete(lab: str, args: tuple[str, ...], paths: tuple[str, ...], namespace: str, dry_run: bool):
    from .app import change

    if paths:
        if args:
            raise InputError("there is no need to specify a resource type as a separate argument when passing "
                             "arguments in resource/name form (e.g. 'kubenet-lab delete -f FILE' alone)")
        return change.delete_files(lab, paths, stdin=sys.stdin, dry_run=dry_run)
    if not args:
        raise InputError("You must provide one or more resources by argument or filename.")
    if all("/" in a for a in args):
        if dry_run and len(args) > 1:
            raise InputError("--dry-run with several KIND/NAME arguments: give one, or KIND NAME...")
        results = [change.delete(lab, a.split("/", 1)[0], [a.split("/", 1)[1]], namespace, dry_run)
                   for a in args]
        merged = change.ChangeResult(lines=[x for r in results for x in r.lines],
                                     errors=[x for r in results for x in r.errors])
        merged.up = next((r.up for r in reversed(results) if r.up is not None), None)
        return merged
    if any("/" in a for a in args):
        raise InputError("there is no need to specify a resource type as a separate argument when passing "
                         "arguments in resource/name form")
    return change.delete(lab, args[0], list(args[1:]), namespace, dry_run)


@main.command()
@click.argument("args", nargs=-1, required=True, metavar="(KIND NAME | KIND/NAME)")
@click.option("--replicas", type=int, required=True, help="The new number of replicas.")
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of the object.")
@dry_run_option
@quiet_option
@click.pass_context
@handle_errors
def scale(ctx: click.Context, args: tuple[str, ...], replicas: int, namespace: str, dry_run: str,
          quiet: bool) -> None:
    """Set the replicas of a Deployment, ReplicaSet, ReplicationController or StatefulSet.

    \b
    Examples:
      sudo kubenet-lab scale deployment web --replicas 5
      sudo kubenet-lab scale rc/frontend --replicas=0
    """
    from .app import change

    if len(args) == 1 and "/" in args[0]:
        kind, name = args[0].split("/", 1)
    elif len(args) == 2:
        kind, name = args
    else:
        raise InputError("scale takes KIND NAME or KIND/NAME")
    with _progress("scale", ctx.obj["lab"], quiet) as shown:
        result = change.scale(ctx.obj["lab"], kind, name, replicas, namespace, dry_run != "none")
    _report(result, summary=shown)


def _kind_name(args: Sequence[str], verb: str) -> tuple[str, list[str], list[str]]:
    """`KIND NAME...` or `KIND/NAME...` (all of one kind), then the rest: (kind, names, rest)
    where rest holds what is neither (label updates, image pairs)."""
    objs = [a for a in args if "=" not in a and not a.endswith("-")]
    rest = [a for a in args if a not in objs]
    if not objs:
        raise InputError(f"you must specify the type of resource to {verb}")
    if all("/" in a for a in objs):
        kinds = {a.split("/", 1)[0] for a in objs}
        if len(kinds) > 1:
            raise InputError(f"{verb}: name objects of one kind at a time (got {', '.join(sorted(kinds))})")
        return kinds.pop(), [a.split("/", 1)[1] for a in objs], rest
    if any("/" in a for a in objs):
        raise InputError("there is no need to specify a resource type as a separate argument when passing "
                         "arguments in resource/name form")
    return objs[0], objs[1:], rest


def _dry_run(value: str | None) -> bool:
    if value in (None, "none"):
        return False
    if value not in ("client", "server"):
        raise InputError(f'Invalid dry-run value ({value}). Must be "none", "server", or "client".')
    return True


def _print_generated(docs: list[dict], fmt: str | None, what: str) -> None:
    """--dry-run: the objects as kubectl prints them (-o yaml|json), else `KIND/NAME created (dry run)`."""
    from . import output
    from .manifests import generate

    if fmt:
        out = output.output_format(fmt)
        objs = [generate.printed(d) for d in docs]
        click.echo(output.render(objs[0] if len(objs) == 1 else output.as_list(objs), out), nl=False)
        return
    for d in docs:
        ref = output_ref(d)
        click.echo(f"{ref} {what} (dry run)")


def output_ref(doc: dict) -> str:
    from .manifests.store import RESOURCE_NAMES

    return f"{RESOURCE_NAMES.get(doc['kind'], doc['kind'].lower())}/{doc['metadata']['name']}"


@main.command(context_settings={"ignore_unknown_options": False})
@click.argument("name")
@click.argument("argv", nargs=-1, type=click.UNPROCESSED, metavar="[-- COMMAND [ARGS...]]")
@click.option("--image", required=True, help="The image of the pod's container.")
@click.option("--port", type=int, help="The port the container exposes (its containerPort).")
@click.option("-l", "--labels", help="Labels for the pod, key=value pairs separated by commas (default run=NAME).")
@click.option("--restart", default="Always", show_default=True, type=click.Choice(["Always", "OnFailure", "Never"]),
              help="The pod's restartPolicy.")
@click.option("--command", "as_command", is_flag=True,
              help="The words after -- are the container's command, not its args.")
@click.option("--env", multiple=True, metavar="NAME=VALUE", help="An environment variable; repeatable.")
@click.option("--annotations", multiple=True, metavar="KEY=VALUE", help="An annotation for the pod; repeatable.")
@click.option("--expose", is_flag=True, help="Create a ClusterIP Service of the same name for --port too.")
@click.option("-i", "--stdin", "stdin_", is_flag=True, help="Keep stdin open on the container (see --rm).")
@click.option("-t", "--tty", is_flag=True, help="Allocate a TTY for the container (see --rm).")
@click.option("--attach", is_flag=True, help="Wait for the pod's container to end, printing its output.")
@click.option("--rm", "remove", is_flag=True, help="Delete the pod once its container ended (with -i or --attach).")
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of the pod.")
@click.option("--dry-run", "dry_run", metavar="client", help="Only print the pod kubectl would create (-o yaml).")
@click.option("-o", "--output", "fmt", type=click.Choice(["yaml", "json"]), help="With --dry-run: print the object.")
@click.pass_context
@handle_errors
def run(ctx: click.Context, name: str, argv: tuple[str, ...], image: str, port: int | None, labels: str | None,
        restart: str, as_command: bool, env: tuple[str, ...], annotations: tuple[str, ...], expose: bool,
        stdin_: bool, tty: bool, attach: bool, remove: bool, namespace: str, dry_run: str | None,
        fmt: str | None) -> None:
    """Create a pod running one container, like kubectl run.

    The pod is labelled run=NAME (or --labels), its container is named NAME, and the words after
    -- are its args (its command with --command). With -i (or --attach) the command waits for
    the container to end and prints its output, and --rm then deletes the pod, exiting with the
    container's exit code: kubenet-lab does not attach this terminal to the process, so an
    interactive shell (-it ... -- sh) gets no input; run it with `exec` instead.

    \b
    Examples:
      sudo kubenet-lab run nginx --image=nginx --port=80
      sudo kubenet-lab run client --image=busybox -- sleep 3600
      sudo kubenet-lab run -it --rm test --image=busybox --restart=Never -- wget -qO- web
      sudo kubenet-lab run nginx --image=nginx --port=80 --dry-run=client -o yaml
    """
    from .app import imperative
    from .manifests import generate

    if remove and not (stdin_ or attach):
        raise InputError("--rm should only be used for attached containers")
    if fmt and not _dry_run(dry_run):
        raise InputError("-o/--output is only supported with --dry-run=client here; then `kubenet-lab get pod NAME "
                         "-o yaml` shows the pod")
    if _dry_run(dry_run):
        try:
            pod = generate.run_pod(name, image, namespace=None if namespace == "default" else namespace, port=port,
                                   labels=generate.parse_pairs(labels), restart=restart, argv=argv,
                                   command=as_command, env=generate.parse_env(env),
                                   annotations=dict(a.partition("=")[::2] for a in annotations),
                                   stdin=stdin_, tty=tty)
        except generate.GenerateError as e:
            raise InputError(str(e)) from None
        docs = [pod] if not expose else [generate.service("Pod", pod, port=str(port)), pod]
        return _print_generated(docs, fmt, "created")
    lab = ctx.obj["lab"]
    result = imperative.run(lab, name, image, namespace, port=port, labels=labels, restart=restart, argv=argv,
                            command=as_command, env=env, annotations=annotations, expose=expose,
                            stdin=stdin_, tty=tty)
    if not (stdin_ or attach) or result.errors:
        return _report(result)
    if result.up is not None:
        for w in result.up.warnings:
            click.echo(f"warning: {w}", err=True)
    if tty and sys.stdin.isatty():
        click.echo(f"kubenet-lab: this terminal is not attached to the container: its output is shown, its input "
                   f"is not passed on (for a shell in the pod: kubenet-lab exec {name} -- sh)", err=True)
    code, reason = 0, None
    try:
        code, reason = imperative.follow(lab, namespace, name, lambda text: click.echo(text, nl=False))
    except KeyboardInterrupt:
        code = 130
    finally:
        if remove:
            from .app import change

            _report(change.delete(lab, "pod", [name], namespace))
    if code:
        click.echo(f"pod {namespace}/{name} terminated ({reason or 'Error'})", err=True)
        sys.exit(code)


@main.group()
def create() -> None:
    """Create an object from flags, like kubectl create (deployment, configmap, secret generic)."""


def _create_config(ctx: click.Context, kind: str, name: str, literals: tuple[str, ...], files: tuple[str, ...],
                   namespace: str, dry_run: str | None, fmt: str | None, type_: str | None = None) -> None:
    from .app import imperative
    from .manifests import generate

    if fmt and not _dry_run(dry_run):
        raise InputError(f"-o/--output is only supported with --dry-run=client here; then `kubenet-lab get "
                         f"{kind.lower()} NAME -o yaml` shows the {kind}")
    ns = None if namespace == "default" else namespace
    if _dry_run(dry_run):
        read = imperative.file_sources(files)
        try:
            doc = generate.config_map(name, literals, read, namespace=ns) if kind == "ConfigMap" else \
                generate.secret(name, literals, read, type_=type_, namespace=ns)
        except generate.GenerateError as e:
            raise InputError(str(e)) from None
        return _print_generated([doc], fmt, "created")
    if kind == "ConfigMap":
        _report(imperative.create_config_map(ctx.obj["lab"], name, literals, files, namespace))
    else:
        _report(imperative.create_secret(ctx.obj["lab"], name, literals, files, type_, namespace))


_FROM_LITERAL = click.option("--from-literal", "literals", multiple=True, metavar="KEY=VALUE",
                             help="A key and its value; repeatable.")
_FROM_FILE = click.option("--from-file", "files", multiple=True, metavar="[KEY=]PATH",
                          help="A file's content under KEY (default: the file's name), or every file of a "
                               "directory under its name; repeatable.")


@create.command(name="configmap")
@click.argument("name")
@_FROM_LITERAL
@_FROM_FILE
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of the ConfigMap.")
@click.option("--dry-run", "dry_run", metavar="client", help="Only print the ConfigMap kubectl would create.")
@click.option("-o", "--output", "fmt", type=click.Choice(["yaml", "json"]), help="With --dry-run: print the object.")
@click.pass_context
@handle_errors
def create_configmap(ctx: click.Context, name: str, literals: tuple[str, ...], files: tuple[str, ...],
                     namespace: str, dry_run: str | None, fmt: str | None) -> None:
    """Create a ConfigMap from literal values and files, like kubectl create configmap.

    Text files are kept as data; a file that is not UTF-8 goes to binaryData (base64).

    \b
    Examples:
      sudo kubenet-lab create configmap web-config --from-literal=MODE=blue --from-literal=LEVEL=debug
      sudo kubenet-lab create configmap nginx-conf --from-file=default.conf=./nginx.conf
      sudo kubenet-lab create configmap web-config --from-literal=MODE=blue --dry-run=client -o yaml
    """
    _create_config(ctx, "ConfigMap", name, literals, files, namespace, dry_run, fmt)


@create.group(name="secret")
def create_secret() -> None:
    """Create a Secret, like kubectl create secret (generic, tls)."""


@create_secret.command(name="tls")
@click.argument("name")
@click.option("--cert", required=True, metavar="PATH", help="The certificate (PEM), as tls.crt.")
@click.option("--key", required=True, metavar="PATH", help="Its private key (PEM), as tls.key.")
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of the Secret.")
@click.option("--dry-run", "dry_run", metavar="client", help="Only print the Secret kubectl would create.")
@click.option("-o", "--output", "fmt", type=click.Choice(["yaml", "json"]), help="With --dry-run: print the object.")
@click.pass_context
@handle_errors
def create_secret_tls(ctx: click.Context, name: str, cert: str, key: str, namespace: str, dry_run: str | None,
                      fmt: str | None) -> None:
    """Create a TLS Secret (type kubernetes.io/tls, tls.crt and tls.key), like kubectl create secret tls.

    \b
    Examples:
      sudo kubenet-lab create secret tls nginxsecret --cert=/tmp/nginx.crt --key=/tmp/nginx.key
    """
    from .app import imperative
    from .manifests import generate

    if fmt and not _dry_run(dry_run):
        raise InputError("-o/--output is only supported with --dry-run=client here; then `kubenet-lab get secret "
                         "NAME -o yaml` shows the Secret")
    if _dry_run(dry_run):
        try:
            doc = generate.tls_secret(name, imperative.file_sources([f"c={cert}"])[0][1],
                                      imperative.file_sources([f"k={key}"])[0][1],
                                      namespace=None if namespace == "default" else namespace)
        except generate.GenerateError as e:
            raise InputError(str(e)) from None
        return _print_generated([doc], fmt, "created")
    _report(imperative.create_tls_secret(ctx.obj["lab"], name, cert, key, namespace))


@create_secret.command(name="generic")
@click.argument("name")
@_FROM_LITERAL
@_FROM_FILE
@click.option("--type", "type_", help="The Secret's type (default Opaque).")
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of the Secret.")
@click.option("--dry-run", "dry_run", metavar="client", help="Only print the Secret kubectl would create.")
@click.option("-o", "--output", "fmt", type=click.Choice(["yaml", "json"]), help="With --dry-run: print the object.")
@click.pass_context
@handle_errors
def create_secret_generic(ctx: click.Context, name: str, literals: tuple[str, ...], files: tuple[str, ...],
                          type_: str | None, namespace: str, dry_run: str | None, fmt: str | None) -> None:
    """Create a Secret from literal values and files, like kubectl create secret generic.

    Its data is base64, as the API server stores it (`get secret NAME -o yaml` shows it so).

    \b
    Examples:
      sudo kubenet-lab create secret generic db --from-literal=username=admin --from-literal=password=s3cr3t
      sudo kubenet-lab create secret generic tls-files --from-file=./certs
    """
    _create_config(ctx, "Secret", name, literals, files, namespace, dry_run, fmt, type_)


@create.command(name="deployment")
@click.argument("name")
@click.option("--image", "images", multiple=True, required=True, help="An image; repeat for several containers.")
@click.option("--replicas", type=int, default=1, show_default=True, help="The number of pods.")
@click.option("--port", type=int, help="The containerPort of the (one) container.")
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of the Deployment.")
@click.option("--dry-run", "dry_run", metavar="client", help="Only print the Deployment kubectl would create.")
@click.option("-o", "--output", "fmt", type=click.Choice(["yaml", "json"]), help="With --dry-run: print the object.")
@click.pass_context
@handle_errors
def create_deployment(ctx: click.Context, name: str, images: tuple[str, ...], replicas: int, port: int | None,
                      namespace: str, dry_run: str | None, fmt: str | None) -> None:
    """Create a Deployment labelled and selecting app=NAME, like kubectl create deployment.

    Each container is named after its image (nginx for docker.io/library/nginx:1.27).

    \b
    Examples:
      sudo kubenet-lab create deployment web --image=nginx --replicas=3 --port=80
      sudo kubenet-lab create deployment web --image=nginx --dry-run=client -o yaml
    """
    from .app import imperative
    from .manifests import generate

    if fmt and not _dry_run(dry_run):
        raise InputError("-o/--output is only supported with --dry-run=client here; then `kubenet-lab get deploy "
                         "NAME -o yaml` shows the Deployment")
    if _dry_run(dry_run):
        try:
            doc = generate.deployment(name, images, namespace=None if namespace == "default" else namespace,
                                      replicas=replicas, port=port)
        except generate.GenerateError as e:
            raise InputError(str(e)) from None
        return _print_generated([doc], fmt, "created")
    _report(imperative.create_deployment(ctx.obj["lab"], name, images, namespace, replicas=replicas, port=port))


@main.command()
@click.argument("args", nargs=-1, required=True, metavar="(KIND NAME | KIND/NAME)")
@click.option("--port", help="The Service's port (comma-separated for several); default: the object's ports.")
@click.option("--target-port", help="The port (number or name) the Service sends to on the pods; default: --port.")
@click.option("--type", "type_", help="ClusterIP (default), NodePort, LoadBalancer or ExternalName.")
@click.option("--name", "service_name", help="The Service's name (default: the object's).")
@click.option("--protocol", help="TCP (default), UDP or SCTP.")
@click.option("-l", "--labels", help="Labels for the Service (default: the object's).")
@click.option("--selector", help="The pods to select, key=value,... (default: what the object selects).")
@click.option("--cluster-ip", help="The ClusterIP to ask for; None makes a headless Service.")
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of the object.")
@click.pass_context
@handle_errors
def expose(ctx: click.Context, args: tuple[str, ...], port: str | None, target_port: str | None, type_: str | None,
           service_name: str | None, protocol: str | None, labels: str | None, selector: str | None,
           cluster_ip: str | None, namespace: str) -> None:
    """Make a Service for a pod, Deployment, ReplicaSet, ReplicationController or Service, like
    kubectl expose: it selects what the object selects, with the object's ports by default.

    \b
    Examples:
      sudo kubenet-lab expose deployment web --port=80 --target-port=8080
      sudo kubenet-lab expose pod nginx --port=80 --name=nginx-svc --type=NodePort
      sudo kubenet-lab expose rc/frontend --port=80
    """
    from .app import imperative

    kind, names, rest = _kind_name(args, "expose")
    if rest or len(names) != 1:
        raise InputError("expose takes one object: KIND NAME or KIND/NAME")
    _report(imperative.expose(ctx.obj["lab"], kind, names[0], namespace, service_name=service_name, port=port,
                              target_port=target_port, type_=type_, protocol=protocol, labels=labels,
                              selector=selector, cluster_ip=cluster_ip))


def _relabel(ctx: click.Context, args: tuple[str, ...], overwrite: bool, selector: str | None, all_: bool,
             namespace: str, what: str) -> None:
    from . import output
    from .app import imperative

    kind, names, updates = _kind_name(args, what)
    matcher = output.parse_selector(selector).matches if selector is not None else None
    _report(imperative.label(ctx.obj["lab"], kind, names, updates, namespace, overwrite=overwrite, matcher=matcher,
                             everything=all_, what=what))


@main.command()
@click.argument("args", nargs=-1, required=True, metavar="(KIND NAME... | KIND/NAME...) KEY=VALUE... KEY-...")
@click.option("--overwrite", is_flag=True, help="Allow a label that has a value to get another.")
@click.option("-l", "--selector", help="Label the objects of KIND this selector matches.")
@click.option("--all", "all_", is_flag=True, help="Label every object of KIND in the namespace.")
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of the objects.")
@click.pass_context
@handle_errors
def label(ctx: click.Context, args: tuple[str, ...], overwrite: bool, selector: str | None, all_: bool,
          namespace: str) -> None:
    """Set (KEY=VALUE) or remove (KEY-) labels of objects, like kubectl label.

    A running pod keeps its namespace, address and processes: only the Services selecting it
    change (endpoints, every node's rules, the cluster DNS). A controller's pod keeps its new
    labels while they match its controller's selector; relabelled out of a ReplicaSet's (or
    ReplicationController's) selector it is orphaned and the controller makes a replacement.
    A node's labels decide where new pods go; running pods stay.

    \b
    Examples:
      sudo kubenet-lab label pod nginx app=other --overwrite
      sudo kubenet-lab label pods -l run=nginx tier=web
      sudo kubenet-lab label node node1 disktype=ssd
      sudo kubenet-lab label svc/web team-
    """
    _relabel(ctx, args, overwrite, selector, all_, namespace, "label")


@main.command()
@click.argument("args", nargs=-1, required=True, metavar="(KIND NAME... | KIND/NAME...) KEY=VALUE... KEY-...")
@click.option("--overwrite", is_flag=True, help="Allow an annotation that has a value to get another.")
@click.option("-l", "--selector", help="Annotate the objects of KIND this selector matches.")
@click.option("--all", "all_", is_flag=True, help="Annotate every object of KIND in the namespace.")
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of the objects.")
@click.pass_context
@handle_errors
def annotate(ctx: click.Context, args: tuple[str, ...], overwrite: bool, selector: str | None, all_: bool,
             namespace: str) -> None:
    """Set (KEY=VALUE) or remove (KEY-) annotations of the lab's objects, like kubectl annotate.

    Nothing running changes.

    \b
    Examples:
      sudo kubenet-lab annotate deployment web owner=team-a
      sudo kubenet-lab annotate svc/web description='the web tier' --overwrite
    """
    _relabel(ctx, args, overwrite, selector, all_, namespace, "annotation")


@main.group(name="set")
def set_() -> None:
    """Change a field of objects, like kubectl set (image)."""


@set_.command(name="image")
@click.argument("args", nargs=-1, required=True, metavar="(KIND NAME | KIND/NAME...) CONTAINER=IMAGE...")
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of the objects.")
@click.pass_context
@handle_errors
def set_image(ctx: click.Context, args: tuple[str, ...], namespace: str) -> None:
    """Set the image of containers of a pod or a controller's template, like kubectl set image.

    CONTAINER `*` means every container. A changed template gets a new pod-template-hash, so a
    Deployment makes a new ReplicaSet and new pods.

    \b
    Examples:
      sudo kubenet-lab set image deployment/web nginx=nginx:1.28
      sudo kubenet-lab set image deploy web '*=nginx:1.28'
    """
    from .app import imperative

    kind, names, pairs = _kind_name(args, "set image")
    _report(imperative.set_image(ctx.obj["lab"], kind, names, imperative.parse_images(pairs), namespace))


@main.command(name="exec", context_settings={"ignore_unknown_options": True})
@click.argument("target")
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of the pod.")
@click.option("-c", "--container", help="Container of the pod (they all share its network namespace).")
@click.option("-i", "--stdin", "stdin_", is_flag=True, help="Pass standard input to the command (as kubectl's -i).")
@click.option("-t", "--tty", is_flag=True, help="Accepted as kubectl's -t: the command runs on this terminal.")
@click.option("--privileged", is_flag=True,
              help="In a pod, run as root with every capability, on this machine's own files (not confined as "
                   "the container is): for the person who asks for it.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
@click.pass_context
@handle_errors
def exec_cmd(ctx: click.Context, target: str, namespace: str, container: str | None, stdin_: bool, tty: bool,
             privileged: bool, command: tuple[str, ...]) -> None:
    """Run a command inside a pod or a node: TARGET is a pod name or node/NAME.

    Output and error pass through and the exit status is the command's; standard input only with
    -i (`exec -it client -- sh` for a shell), as kubectl passes it. Inside
    a pod the hostname is the pod's name and /etc/resolv.conf and /etc/hosts are the pod's, and
    the command is confined as the container's own processes are (its user and capabilities,
    this machine's files read-only, its own /tmp, /run and volumes), as `kubectl exec` runs it;
    --privileged runs it as root with every capability on this machine's files instead. A node
    (node/NAME), `external`, `external2` and `lb` are this machine's own processes: full root.
    TARGET `external` is a client outside the cluster on the nodes' network, `external2` a second
    one at another address, `lb` the external load balancer of LoadBalancer services (a pod named
    so in the namespace wins).

    \b
    Examples:
      sudo kubenet-lab exec client -- ip addr
      sudo kubenet-lab exec -it client -- sh
      sudo kubenet-lab exec client -- curl -s http://10.244.1.2:8080/hostname
      sudo kubenet-lab exec -n shop web-0 -- cat /etc/resolv.conf
      sudo kubenet-lab exec node/node1 -- ip route
      sudo kubenet-lab exec node/node1 -- iptables-save -t nat
      sudo kubenet-lab exec external -- curl -s http://<LB-IP>/hostname
      sudo kubenet-lab exec lb -- nft list table ip kubenet-lb
    """
    from .app import query

    argv = list(command)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    query.exec_(ctx.obj["lab"], target, namespace, container, argv, stdin=stdin_, privileged=privileged)


@main.command()
@click.argument("resource", type=click.Choice(sorted(RESOURCES)), metavar="RESOURCE")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace to list.")
@click.option("-A", "--all-namespaces", is_flag=True, help="List objects of every namespace.")
@click.option("-o", "--output", "fmt", metavar="FORMAT",
              help="Output format: wide, json, yaml, jsonpath=TEMPLATE, jsonpath-as-json=TEMPLATE, "
                   "custom-columns=HEADER:FIELD[,...].")
@click.option("--template", metavar="TEMPLATE", help="The template of -o jsonpath when not given as jsonpath=TEMPLATE.")
@click.option("-l", "--selector", metavar="SELECTOR",
              help="Label selector: app=web, app!=web, 'env in (a,b)', 'env notin (a)', key, !key; "
                   "a comma between requirements means AND.")
@click.option("--show-labels", is_flag=True, help="Add a LABELS column to the table.")
@click.option("--allow-missing-template-keys", type=click.BOOL, default=True, show_default=True, is_flag=False,
              flag_value=True, metavar="[=BOOL]",
              help="Print nothing for a key a jsonpath template names that the object lacks; "
                   "=false makes that an error.")
@click.option("-w", "--watch", is_flag=True,
              help="After listing, print each change as it happens until interrupted (Ctrl-C): a row for each "
                   "object that appears, changes or goes (the table), or each new event.")
@click.pass_context
@handle_errors
def get(ctx: click.Context, resource: str, name: str | None, namespace: str, all_namespaces: bool,
        fmt: str | None, template: str | None, selector: str | None, show_labels: bool,
        allow_missing_template_keys: bool, watch: bool) -> None:
    """Show nodes, pods, services, endpoints or controllers, like kubectl get.

    RESOURCE is one of nodes (no), pods (po), services (svc), endpoints (ep), endpointslices, deployments
    (deploy), replicasets (rs), replicationcontrollers (rc), statefulsets (sts), daemonsets (ds),
    jobs, configmaps (cm), secrets, namespaces (ns), networkpolicies (netpol; -o wide adds the pods each
    selects), events (ev), or all (pods, services and controllers). With NAME,
    -o json/yaml/jsonpath apply to that object; without, to a List of the objects (so a jsonpath
    template starts at `.items`). Labels are metadata.labels (nodes have kubelet's
    kubernetes.io/hostname, /os and /arch too).
    \b
    Examples:
      sudo kubenet-lab get nodes -o wide
      sudo kubenet-lab get pods -o wide -A
      sudo kubenet-lab get svc
      sudo kubenet-lab get all
      sudo kubenet-lab get sts web -o yaml
      sudo kubenet-lab get cm web-config -o yaml
      sudo kubenet-lab get jobs -A
      sudo kubenet-lab get events -A -w
      sudo kubenet-lab get pod client -o json
      sudo kubenet-lab get ep web -o yaml
      sudo kubenet-lab get endpointslices -l kubernetes.io/service-name=web
      sudo kubenet-lab get pods -l app=web --show-labels
      sudo kubenet-lab get pods -l 'app in (web,api),tier!=db'
      sudo kubenet-lab get pods -o jsonpath='{.items[*].status.podIP}'
      sudo kubenet-lab get pods -o jsonpath='{range .items[*]}{.metadata.name}{"\\t"}{.status.podIP}{"\\n"}{end}'
      sudo kubenet-lab get pod client -o jsonpath='{.spec.nodeName}'
      sudo kubenet-lab get svc web -o jsonpath='{.spec.ports[?(@.name=="http")].nodePort}'
      sudo kubenet-lab get nodes -o jsonpath='{.items[0].metadata.labels.kubernetes\\.io/hostname}'
      sudo kubenet-lab get pods -o custom-columns=NAME:.metadata.name,IP:.status.podIP,NODE:.spec.nodeName
    """
    from . import output
    from .app import query

    kind = RESOURCES[resource]
    out = output.output_format(fmt, template)
    if kind == "events":
        return _get_events(ctx.obj["lab"], name, namespace, all_namespaces, out, watch)
    if watch and (kind == "all" or not out.table):
        raise InputError("--watch: watches one kind's table (get pods -w, get deploy -w -o wide); "
                         "not `get all` nor -o " + out.name)
    labels = output.parse_selector(selector) if selector is not None else None
    if labels is not None and name is not None:
        raise InputError("name cannot be provided when a selector is specified")
    if kind == "all" and name is not None:
        raise InputError("a resource cannot be retrieved by name across all types")
    all_ns = all_namespaces and name is None and kind not in CLUSTER_SCOPED
    kinds = [k for k, _ in ALL] if kind == "all" else [kind]
    if kind == "pods" and not watch and (out.table or out.name == "name"):
        # the table and the names from the plan's JSON, not decoded (query.pod_lines): fast on big labs
        plan, (pods, status, created) = None, query.pod_lines(ctx.obj["lab"])
        found = {kind: _pick(pods, kind, name, namespace, all_ns, labels)}
    else:
        plan = query.running_plan(ctx.obj["lab"])
        status = query.pod_status(plan.lab) if kind in ("pods", "all", *output.WORKLOAD_KINDS) else {}
        plan = query.existing(plan, status)  # a pod its controller has not created yet is not listed
        found = {k: _select(plan, k, name, namespace, all_ns, labels) for k in kinds}
    if name is not None and not found[kind]:
        where = "" if kind in CLUSTER_SCOPED else f" in namespace {namespace!r}"
        raise LabError(f'{kind} "{name}" not found{where}')
    if out.name == "name":
        names = [f"{output.name_prefix(k)}/{o.name}" for k in kinds for o in found[k]]
        click.echo("".join(f"{n}\n" for n in names), nl=False)
        return
    if not out.table:
        objs = [_object(plan, k, o, status) for k in kinds for o in found[k]]
        click.echo(output.render(objs[0] if name is not None else output.as_list(objs), out,
                                 allow_missing_keys=allow_missing_template_keys), nl=False)
        return
    tables = []
    for k, prefix in ALL if kind == "all" else [(kind, "")]:
        if not found[k]:
            continue
        if plan is None:
            headers, rows = output.pod_line_rows(found[k], status, out.name == "wide", all_ns, created)
        else:
            headers, rows = _rows(plan, k, found[k], status, out.name == "wide", all_ns)
        if kind == "all":
            at = 1 if all_ns else 0
            rows = [row[:at] + [f"{prefix}/{row[at]}"] + row[at + 1:] for row in rows]
        if show_labels:
            headers = list(headers) + ["LABELS"]
            rows = [list(row) + [output.format_labels(output.labels_of(k, o))] for row, o in zip(rows, found[k])]
        tables.append(output.table(headers, rows))
    try:  # with -w, Ctrl-C ends the watch (exit 0) from the moment its table shows
        if not tables:
            where = "" if kind in CLUSTER_SCOPED or all_ns else f" in {namespace} namespace"
            click.echo(f"No resources found{where}.", err=True)
        else:
            click.echo("\n".join(tables), nl=False)
        if watch:
            _watch(plan.lab, kind, name, namespace, all_ns, labels, out.name == "wide", show_labels)
    except KeyboardInterrupt:
        if not watch:
            raise


def _watched_rows(lab: str, kind: str, name: str | None, namespace: str, all_ns: bool, labels, wide: bool,
                  show_labels: bool) -> tuple[list[str], dict[str, list[str]]]:
    """One look at the lab for `get -w`: the table's headers and its rows by object."""
    from . import output
    from .app import query

    plan = query.running_plan(lab)
    status = query.pod_status(lab) if kind in ("pods", *output.WORKLOAD_KINDS) else {}
    plan = query.existing(plan, status)
    found = _select(plan, kind, name, namespace, all_ns, labels)
    headers, rows = _rows(plan, kind, found, status, wide, all_ns)
    if show_labels:
        headers = list(headers) + ["LABELS"]
        rows = [list(row) + [output.format_labels(output.labels_of(kind, o))] for row, o in zip(rows, found)]
    return list(headers), {getattr(o, "key", o.name): list(row) for o, row in zip(found, rows)}


WATCH_INTERVAL = 0.5  # seconds between looks at the plan and the supervisor's status


def _watch(lab: str, kind: str, name: str | None, namespace: str, all_ns: bool, labels, wide: bool,
           show_labels: bool) -> None:
    """kubectl get -w: after the table, a row for each object that appears, changes or goes,
    looking at the plan and the supervisor's status every WATCH_INTERVAL, until interrupted
    (KeyboardInterrupt, which `get` takes as the end)."""
    from . import output

    headers, before = _watched_rows(lab, kind, name, namespace, all_ns, labels, wide, show_labels)
    widths = [max([len(h), 3] + [len(r[i]) for r in before.values()]) for i, h in enumerate(headers)]
    while True:
        time.sleep(WATCH_INTERVAL)
        try:
            _, after = _watched_rows(lab, kind, name, namespace, all_ns, labels, wide, show_labels)
        except LabError:  # the lab went (down): every object with it, and the watch ends
            for row in output.watch_changes(headers, before, {}):
                click.echo(output.aligned(row, widths))
            raise
        for row in output.watch_changes(headers, before, after):
            click.echo(output.aligned(row, widths))
        before = after


def _get_events(lab: str, name: str | None, namespace: str, all_ns: bool, out, watch: bool) -> None:
    """kubectl get events: every event of the namespace (-A: of all), oldest first; with -w the
    new ones as they happen, until interrupted."""
    from . import output
    from .app import query

    query.running_plan(lab)  # a lab that is not up says so

    def wanted(e) -> bool:
        return (all_ns or output.event_in_namespace(e, namespace)) and name in (None, e.name)

    records, offset = query.events(lab)
    entries = [x for x in output.aggregate_events(records) if wanted(x.event)]
    if out.name == "name":
        click.echo("".join(f"event/{output.event_object(x)['metadata']['name']}\n" for x in entries), nl=False)
    elif not out.table:
        objs = [output.event_object(x) for x in entries]
        click.echo(output.render(output.as_list(objs), out), nl=False)
    elif entries:
        click.echo(output.table(*output.event_rows(entries, all_ns)), nl=False)
    elif not watch:
        where = "" if all_ns else f" in {namespace} namespace"
        click.echo(f"No resources found{where}.", err=True)
    if not watch:
        return
    headers, _ = output.event_rows([], all_ns)
    widths = None
    try:
        while True:
            time.sleep(0.2)
            records, offset = query.events(lab, offset)
            for when, e in records:
                if not wanted(e):
                    continue
                entry = output.EventEntry(e, 1, when, when)
                if not out.table:
                    click.echo(output.render(output.event_object(entry), out), nl=False)
                    continue
                _, rows = output.event_rows([entry], all_ns)
                widths = widths or [max(len(h), 10) for h in headers]
                click.echo("   ".join(str(c).ljust(w) for c, w in zip(rows[0], widths)).rstrip())
    except KeyboardInterrupt:
        return


def _select(plan, kind: str, name: str | None, namespace: str, all_ns: bool, labels) -> list:
    """The objects of `kind` that `get` names, in kubectl's order."""
    from . import output

    if kind in CLUSTER_SCOPED:  # by name, as the API server lists them
        return sorted((n for n in (plan.nodes if kind == "nodes" else plan.namespace_objects) if name in (None, n.name)
                       and (labels is None or labels.matches(output.labels_of(kind, n)))), key=lambda n: n.name)
    if kind == "pods":
        pool = plan.pods + plan.pending
    elif kind == "services":
        pool = plan.services
    elif kind == "endpoints":
        from .plan.endpointslices import endpoints_objects

        pool = tuple(endpoints_objects(plan))
    elif kind == "endpointslices":
        from .plan.endpointslices import all_slices

        pool = tuple(all_slices(plan))
    elif kind in output.CONFIG_KINDS:
        pool = tuple(c for c in plan.config_maps if c.kind == output.CONFIG_KINDS[kind])
    elif kind == "networkpolicies":
        pool = plan.network_policies
    else:
        pool = tuple(w for w in plan.workloads if w.kind == output.WORKLOAD_KINDS[kind])
    return _pick(pool, kind, name, namespace, all_ns, labels)


def _pick(pool, kind: str, name: str | None, namespace: str, all_ns: bool, labels) -> list:
    """The namespaced objects of `pool` that `get` names, in kubectl's order."""
    from . import output

    items = sorted((o for o in pool if (all_ns or o.namespace == namespace) and name in (None, o.name)),
                   key=lambda o: (o.namespace, o.name))
    if labels is not None:
        items = [o for o in items if labels.matches(output.labels_of(kind, o))]
    return items


def _object(plan, kind: str, obj, status: dict) -> dict:
    from . import output

    if kind == "nodes":
        return output.node_object(plan, obj)
    if kind == "pods":
        return output.pod_object(plan, obj, status)
    if kind == "services":
        return output.service_object(plan, obj)
    if kind == "endpoints":
        return output.endpoints_object(plan, obj)
    if kind == "endpointslices":
        return output.endpointslice_object(plan, obj)
    if kind in output.CONFIG_KINDS:
        return output.config_map_object(plan, obj)
    if kind == "namespaces":
        return output.namespace_object(plan, obj)
    if kind == "networkpolicies":
        return output.network_policy_object(plan, obj)
    return output.workload_object(plan, obj, status)


def _rows(plan, kind: str, items: list, status: dict, wide: bool, all_ns: bool):
    from . import output

    if kind == "nodes":
        return output.node_rows(plan, items, wide)
    if kind == "pods":
        return output.pod_rows(plan, items, status, wide, all_ns)
    if kind == "services":
        return output.service_rows(plan, items, wide, all_ns)
    if kind == "endpoints":
        return output.endpoint_rows(plan, items, wide, all_ns)
    if kind == "endpointslices":
        return output.endpointslice_rows(plan, items, wide, all_ns)
    if kind in output.CONFIG_KINDS:
        return output.config_map_rows(plan, items, all_ns)
    if kind == "namespaces":
        return output.namespace_rows(plan, items)
    if kind == "networkpolicies":
        return output.network_policy_rows(plan, items, wide, all_ns)
    return output.workload_rows(plan, output.WORKLOAD_KINDS[kind], items, status, wide, all_ns)


@main.command()
@click.argument("pod")
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of the pod.")
@click.option("-c", "--container", help="Container to show (needed when the pod has several).")
@click.pass_context
@handle_errors
def logs(ctx: click.Context, pod: str, namespace: str, container: str | None) -> None:
    """Print the output of a pod's container.

    \b
    Examples:
      sudo kubenet-lab logs web-7cb4cc975d-fvkkf
      sudo kubenet-lab logs -n shop cart-0 -c sidecar
    """
    from .app import query

    click.echo(query.logs(ctx.obj["lab"], pod.split("/", 1)[1] if pod.startswith("pod/") else pod, namespace,
                        container), nl=False)


@main.command(name="port-forward")
@click.argument("target", metavar="TYPE/NAME")
@click.argument("ports", nargs=-1, metavar="[LOCAL_PORT:]REMOTE_PORT...")
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of the pod or service.")
@click.option("--address", "addresses", multiple=True, default=("localhost",), show_default=True,
              metavar="ADDRESSES",
              help="Addresses to listen on (comma-separated or repeated): localhost, or loopback IPs only "
                   "(127.0.0.1, ::1); a lab is never exposed to a network.")
@click.option("--pod-running-timeout", default="1m0s", show_default=True, metavar="DURATION",
              help="How long to wait for a Service or controller to have a pod (e.g. 5s, 2m, 3h).")
@click.pass_context
@handle_errors
def port_forward(ctx: click.Context, target: str, ports: tuple[str, ...], namespace: str,
                 addresses: tuple[str, ...], pod_running_timeout: str) -> None:
    """Forward local ports on this machine's loopback to a pod, like kubectl port-forward.

    TYPE/NAME: pod/NAME (or a bare NAME), svc/NAME, or a controller (deploy/, rs/, rc/, sts/,
    ds/, job/), which means one of its pods, chosen as kubectl chooses it (Running and Ready
    first; a Service is not balanced). REMOTE_PORT is the pod's port, a containerPort name, or
    for a Service its port (number or name), forwarded to that port's targetPort on the pod.
    LOCAL_PORT left out: the same as the remote; empty or 0 (:80, 0:80): a free port. Each
    connection goes to localhost:PORT inside the pod's network namespace, as kubelet connects.
    Runs until Ctrl-C. Nothing on the host changes but the listening sockets.

    \b
    Examples:
      sudo kubenet-lab port-forward svc/web 8080:80      # then open http://127.0.0.1:8080/
      sudo kubenet-lab port-forward pod/client 5000 6000
      sudo kubenet-lab port-forward deploy/web :http     # a free local port
      sudo kubenet-lab port-forward -n shop sts/db 15432:5432
    """
    from . import output
    from .app import query
    from .app import portforward  # sockets and asyncio: only this verb needs them
    from .fabric import checks

    listen = portforward.parse_addresses(addresses)
    timeout = portforward.parse_duration(pod_running_timeout)
    checks.require_root("port-forward")
    lab = ctx.obj["lab"]

    def snapshot():
        plan = query.running_plan(lab)
        status = query.pod_status(lab)
        plan = query.existing(plan, status)
        return plan, {p.key: output.pod_state(p, status) for p in plan.pods}

    try:
        resolved = portforward.resolve(snapshot, target, namespace, ports, timeout)
    except portforward.NotFound as e:
        click.echo(f"Error from server (NotFound): {e}", err=True)
        sys.exit(1)
    try:
        portforward.run(resolved, listen, out=click.echo, err=lambda line: click.echo(line, err=True))
    except KeyboardInterrupt:
        pass



@main.group()
def rollout() -> None:
    """Manage the rollout of a Deployment, like kubectl rollout: status, restart, undo, history.

    \b
    Examples:
      sudo kubenet-lab rollout status deployment/web
      sudo kubenet-lab rollout restart deployment web
      sudo kubenet-lab rollout undo deployment/web --to-revision=1
      sudo kubenet-lab rollout history deployment/web
    """


def _rollout_target(args: tuple[str, ...]) -> tuple[str, str | None]:
    if len(args) == 1:
        return args[0], None
    if len(args) == 2:
        return args[0], args[1]
    raise InputError("required resource not specified" if not args else "one deployment at a time")


@rollout.command(name="status")
@click.argument("args", nargs=-1, metavar="(deployment NAME | deployment/NAME)")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-w", "--watch", type=click.BOOL, default=True, show_default=True, is_flag=False, flag_value=True,
              metavar="[=BOOL]", help="Wait for the rollout to finish; =false prints the state now.")
@click.option("--timeout", default="0s", show_default=True, help="How long to wait (0s: as long as it takes).")
@click.pass_context
@handle_errors
def rollout_status(ctx: click.Context, args: tuple[str, ...], namespace: str, watch: bool, timeout: str) -> None:
    """Watch a Deployment's rollout until it is done, printing kubectl's progress lines."""
    from .app import rollout as rollouts

    seconds = _duration(timeout)
    for line in rollouts.status(ctx.obj["lab"], *_rollout_target(args), namespace=namespace, watch=watch,
                                timeout=seconds):
        click.echo(line)


def _duration(text: str) -> float:
    """kubectl's durations: 30s, 5m, 1h, 1m30s, or a bare number of seconds."""
    import re
    if re.fullmatch(r"[0-9.]+", text):
        return float(text)
    parts = re.findall(r"([0-9.]+)(h|m|s|ms)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise InputError(f'invalid argument "{text}" for "--timeout" flag: time: invalid duration "{text}"')
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


@rollout.command(name="restart")
@click.argument("args", nargs=-1, metavar="(deployment NAME | deployment/NAME)")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.pass_context
@handle_errors
def rollout_restart(ctx: click.Context, args: tuple[str, ...], namespace: str) -> None:
    """Replace every pod of a Deployment, one rollout step at a time."""
    from .app import rollout as rollouts

    _report(rollouts.restart(ctx.obj["lab"], *_rollout_target(args), namespace=namespace))


@rollout.command(name="undo")
@click.argument("args", nargs=-1, metavar="(deployment NAME | deployment/NAME)")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--to-revision", type=int, default=0, help="The revision to go back to (0: the one before).")
@click.pass_context
@handle_errors
def rollout_undo(ctx: click.Context, args: tuple[str, ...], namespace: str, to_revision: int) -> None:
    """Roll a Deployment back to an earlier revision's template."""
    from .app import rollout as rollouts

    _report(rollouts.undo(ctx.obj["lab"], *_rollout_target(args), namespace=namespace, to_revision=to_revision))


@rollout.command(name="history")
@click.argument("args", nargs=-1, metavar="(deployment NAME | deployment/NAME)")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.pass_context
@handle_errors
def rollout_history(ctx: click.Context, args: tuple[str, ...], namespace: str) -> None:
    """List a Deployment's revisions."""
    from .app import rollout as rollouts

    click.echo(rollouts.history(ctx.obj["lab"], *_rollout_target(args), namespace=namespace), nl=False)


@main.command(name="check")
@click.option("-o", "--output", "fmt", type=click.Choice(["json"]), help="json: the results for machines.")
@click.option("--full", is_flag=True, help="Every pod pair, and every endpoint of a Service confirmed by its answer.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on the terminal.")
@click.pass_context
@handle_errors
def check_cmd(ctx: click.Context, fmt: str | None, full: bool, quiet: bool) -> None:
    """Test the running lab with real traffic: pods reach pods with their own address, Services
    reach their ready endpoints from every node, a pod on each node and (NodePort, LoadBalancer)
    from outside, names resolve, and what must fail fails. Exit 0 when everything held, 1 when
    something failed (what, from where, where it broke).

    \b
    Examples:
      kubenet-lab check
      kubenet-lab check --full -o json
    """
    from .app import check as checking

    report = checking.check(ctx.obj["lab"], full=full, progress=not quiet and sys.stderr.isatty())
    click.echo(checking.render(report, fmt), nl=False)
    sys.exit(0 if report.ok else 1)


@main.command(name="trace")
@click.argument("src", metavar="SRC")
@click.argument("dst", metavar="DST[:PORT]")
@click.option("--proto", type=click.Choice(["tcp", "udp", "icmp"]), help="Default: the Service port's, else tcp.")
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of SRC and DST.")
@click.option("-o", "--output", "fmt", type=click.Choice(["json"]), help="json: the trace for machines.")
@click.option("--probe", is_flag=True, help="Send one real connection and show what the kernel did (conntrack).")
@click.pass_context
@handle_errors
def trace_cmd(ctx: click.Context, src: str, dst: str, proto: str | None, namespace: str, fmt: str | None,
              probe: bool) -> None:
    """Explain one connection's first packet hop by hop, from the live kernel: each namespace's
    routing decision, the veth, bridge and underlay it crosses, the rules that match in every node
    (DNAT, each endpoint's probability, affinity, masquerade and why, REJECT/DROP), where it
    dies when it does, and the answer's way back.

    SRC: a pod, node/NAME, external or external2. DST: a pod, svc/NAME (or the Service's name, NAME.NAMESPACE
    for another namespace), node/NAME or an IP, with :PORT (a number or a port's name).

    \b
    Examples:
      sudo kubenet-lab trace client svc/web
      sudo kubenet-lab trace client kube-dns.kube-system:53 --proto udp
      sudo kubenet-lab trace external 172.18.0.192:80 --probe
      sudo kubenet-lab trace node/node1 node/node2:30080 -o json
    """
    from .app import trace as tracing  # the kernel readers: only this verb needs them
    from .fabric import checks
    from .inspect import traceview

    checks.require_root("trace")
    result, snap, probed = tracing.trace(ctx.obj["lab"], src, dst, proto, namespace, probe)
    if fmt == "json":
        click.echo(traceview.to_json(result, probed, snap.to_json()), nl=False)
    else:
        click.echo(traceview.render_text(result, probed), nl=False)
    if probed is not None and probed.agrees is False:
        sys.exit(1)

@main.command()
@click.argument("args", nargs=-1, metavar="(KIND [NAME...] | KIND/NAME...)")
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of the object.")
@click.pass_context
@handle_errors
def describe(ctx: click.Context, args: tuple[str, ...], namespace: str) -> None:
    """Show an object's details as kubectl describe does, plus its network read from the kernel.

    KIND: pod/po, service/svc, node/no, deployment/deploy, replicaset/rs,
    replicationcontroller/rc, statefulset/sts, daemonset/ds, job, endpoints/ep, networkpolicy/netpol. Without NAME,
    every object of the kind; a NAME that is no object's describes those whose names start with
    it, as kubectl does (`describe pods web`). After kubectl's fields and events: a pod's
    interfaces, addresses, routes, its veth peer and bridge port (hairpin); a Service's rules in
    every node with their packet counters; a node's bridge, ports, routes, neighbours and rule
    counts.

    \b
    Examples:
      sudo kubenet-lab describe pod client
      sudo kubenet-lab describe svc/web
      sudo kubenet-lab describe node node1
      sudo kubenet-lab describe deploy web
      sudo kubenet-lab describe pods web                  # every pod whose name starts with web
      sudo kubenet-lab describe -n kube-system pod coredns-7bdb95d647-bpk2k
    """
    from .app import describe as describer  # the kernel readers: only this verb needs them
    from .fabric import checks

    checks.require_root("describe")
    out = describer.describe(ctx.obj["lab"], args, namespace)
    click.echo(out.text, nl=False)
    if out.none_found:
        click.echo(out.none_found, err=True)
    for e in out.errors:
        click.echo(f"Error from server (NotFound): {e}", err=True)
    if out.errors:
        sys.exit(1)


@main.command()
@click.option("-o", "--output", "fmt", default="dot", show_default=True, metavar="dot|mermaid|svg|html",
              help="dot and mermaid: text to render elsewhere; svg: drawn by Graphviz; html: one page for a browser.")
@click.pass_context
@handle_errors
def graph(ctx: click.Context, fmt: str) -> None:
    """Draw the lab's network: the underlay, nodes, bridges, pods with their addresses and veths,
    Services with their endpoints, the load balancer and the external client.

    \b
    Examples:
      sudo kubenet-lab graph -o html > lab.html      # then open lab.html in a browser
      sudo kubenet-lab graph -o svg > lab.svg
      sudo kubenet-lab graph | dot -Tpng > lab.png
      sudo kubenet-lab graph -o mermaid              # paste into a Markdown file
    """
    from .app import graph as drawing

    click.echo(drawing.render(ctx.obj["lab"], fmt), nl=False)


if __name__ == "__main__":
    main()
