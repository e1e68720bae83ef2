"""What the lab knows of well-known images without pulling them: where they listen by themselves
and what their entrypoint is. A small table, by design: an image not listed here is emulated on
the ports its pod makes known (declared containerPorts, numeric Service targetPorts, probe
ports), which is what most manifests need.

Every entry is something the image really does, from its Dockerfile or documentation:
- `listens`: (port, protocol) the program serves without being told (nginx's 80);
- `entrypoint`: the image's ENTRYPOINT, which `args` without `command` are given to; `()` for
  images that have none (then `args` replace CMD and the first one is the program);
- `serves`: what the emulated server answers: "http" (the built-in HTTP server: the pod's name),
  "hostname" (serve_hostname: the hostname and nothing else), "echo" (http-echo: its -text),
  "redis" (servers.redis on the image's own port: PING, GET/SET, INFO replication, ...);
- `text`: what every path of an "http" image answers instead of the pod's name, when its
  program answers the same everywhere (hello-go-gke's `{"message":"Hello"}`, as the "Connect a
  Frontend to a Backend" page shows it);
- `docroot`: where a web server image serves files from: a volume mounted there is what it
  serves (the "shared volume" tutorial's nginx);
- `proxy_to`: the upstream an nginx image's own configuration passes every request to
  (hello-frontend's `proxy_pass http://hello`), resolved as the pod resolves names;
- `replica_of`: (host, port) a redis image replicates from by itself (the guestbooks' follower
  images run `redis-server --replicaof redis-leader 6379`); a plain redis image is a replica when
  its args say `--replicaof HOST PORT` (or `--slaveof`).
"""
from __future__ import annotations

from dataclasses import dataclass

TCP = "TCP"


@dataclass(frozen=True)
class KnownImage:
    repos: tuple[str, ...]
    listens: tuple[tuple[int, str], ...] = ()
    entrypoint: tuple[str, ...] | None = None  # None: unknown; (): none, args are the command
    serves: str = "http"
    replica_of: tuple[str, int] | None = None
    text: str | None = None
    proxy_to: str | None = None
    docroot: str | None = None  # where a web server image serves its files from


NGINX_HTML = "/usr/share/nginx/html"

KNOWN_IMAGES = (
    # web servers: docker-library images and their unprivileged variants
    KnownImage(("nginx",), ((80, TCP),), ("/docker-entrypoint.sh",), docroot=NGINX_HTML),
    KnownImage(("nginxinc/nginx-unprivileged",), ((8080, TCP),), ("/docker-entrypoint.sh",), docroot=NGINX_HTML),
    KnownImage(("bitnami/nginx",), ((8080, TCP),), docroot="/app"),
    KnownImage(("registry.k8s.io/nginx-slim", "k8s.gcr.io/nginx-slim", "gcr.io/google_containers/nginx-slim"),
               ((80, TCP),), docroot=NGINX_HTML),
    KnownImage(("httpd",), ((80, TCP),), (), docroot="/usr/local/apache2/htdocs"),
    KnownImage(("caddy",), ((80, TCP),), (), docroot="/usr/share/caddy"),
    # Kubernetes' own examples (the "Debug Services" and "Connecting applications" pages, e2e)
    KnownImage(("registry.k8s.io/serve_hostname", "k8s.gcr.io/serve_hostname",
                "gcr.io/google_containers/serve_hostname"), ((9376, TCP),), ("/serve_hostname",), "hostname"),
    KnownImage(("registry.k8s.io/echoserver", "k8s.gcr.io/echoserver", "gcr.io/google_containers/echoserver"),
               ((8080, TCP),), ()),
    KnownImage(("gcr.io/google-samples/hello-app", "us-docker.pkg.dev/google-samples/containers/gke/hello-app"),
               ((8080, TCP),)),
    KnownImage(("gcr.io/google-samples/kubernetes-bootcamp",), ((8080, TCP),), ()),
    KnownImage(("gcr.io/google-samples/node-hello",), ((8080, TCP),)),
    # "Connect a Frontend to a Backend Using Services": the backend's greeting, and the frontend,
    # an nginx whose configuration passes / to the backend's Service `hello`
    KnownImage(("gcr.io/google-samples/hello-go-gke",), ((80, TCP),), text='{"message":"Hello"}'),
    KnownImage(("gcr.io/google-samples/hello-frontend",), ((80, TCP),), proxy_to="http://hello"),
    # kind's LoadBalancer example and many ingress tutorials
    KnownImage(("hashicorp/http-echo",), ((5678, TCP),), ("/http-echo",), "echo"),
    KnownImage(("stefanprodan/podinfo", "ghcr.io/stefanprodan/podinfo"), ((9898, TCP),), ()),
    # data stores of the guestbook-style examples: Redis's protocol on 6379; the followers are
    # read-only replicas of the guestbook's master Service
    KnownImage(("redis",), ((6379, TCP),), ("docker-entrypoint.sh",), "redis"),
    KnownImage(("registry.k8s.io/redis", "k8s.gcr.io/redis", "gcr.io/google_containers/redis"), ((6379, TCP),),
               serves="redis"),
    KnownImage(("gcr.io/google_samples/gb-redisslave", "gcr.io/google-samples/gb-redisslave"), ((6379, TCP),),
               serves="redis", replica_of=("redis-master", 6379)),
    KnownImage(("gcr.io/google_samples/gb-redis-follower", "gcr.io/google-samples/gb-redis-follower",
                "us-docker.pkg.dev/google-samples/containers/gke/gb-redis-follower"), ((6379, TCP),),
               serves="redis", replica_of=("redis-leader", 6379)),
    KnownImage(("gcr.io/google-samples/gb-frontend", "gcr.io/google_samples/gb-frontend",
                "us-docker.pkg.dev/google-samples/containers/gke/gb-frontend"), ((80, TCP),)),
    # tool images: nothing listens, and args are the command
    KnownImage(("busybox", "alpine", "ubuntu", "debian", "fedora", "centos", "python",
                "registry.k8s.io/busybox", "k8s.gcr.io/busybox", "gcr.io/google-containers/busybox",
                "registry.k8s.io/e2e-test-images/jessie-dnsutils", "nicolaka/netshoot"), (), ()),
)

_BY_REPO = {repo: image for image in KNOWN_IMAGES for repo in image.repos}
_HUB = ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/", "library/")


def repository(image: str) -> str:
    """The image's repository, without tag or digest, Docker Hub's default prefixes removed:
    `docker.io/library/nginx:1.25` -> `nginx`."""
    repo = image.split("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    if ":" in last:
        repo = repo[: len(repo) - len(last)] + last.split(":", 1)[0]
    for prefix in _HUB:
        if repo.startswith(prefix):
            return repo[len(prefix):]
    return repo


def known(image: str) -> KnownImage | None:
    return _BY_REPO.get(repository(image))
