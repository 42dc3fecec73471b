"""Tests of the Helm chart deploy/helm/policy-suite, without Helm and without a cluster.

Helm is not packaged for Debian 12, so the chart is rendered by tools/chart_render (Go's
text/template with Debian's sprig, as `helm template` renders; values checked against
values.schema.json as Helm checks them), built here into $POLICY_BUILD_DIR/deploy_check. Then:

  - every rendered object, for the default values, the production example and a few variants,
    is validated against the Kubernetes API's schema for its kind (tests/deploy/
    validate_manifests.js over the npm packages pinned in tests/deploy/package-lock.json,
    installed with `npm ci` into $POLICY_BUILD_DIR/deploy_check/node);
  - the manifests are asserted to carry what the deployment needs: restricted security
    contexts, resources, native gRPC probes on the health port with the right health service
    names, secrets only through secretKeyRef, every POLICY_<SVC>_* variable being a setting the
    binary registers (read from the C++ sources), peers' addresses, NetworkPolicies' peers,
    autoscalers and disruption budgets, the ServiceMonitor only when asked for, certificates
    when tls.enabled, migrations as hooks before the services, the `helm test` pod;
  - values.schema.json refuses bad values; the renderer behaves as Helm on a small chart.

Needs: go (golang-go) and Debian's Go packages named in tools/chart_render/main.go, python3-yaml,
Node.js and npm with the npm registry reachable the first time (the machine's Node.js; Debian's
nodejs would do with its npm). Run: /usr/bin/python3 -m unittest -v tests.deploy.test_chart
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import textwrap
import unittest
from pathlib import Path

import yaml

from tests.support import policy_testing as pt

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("POLICY_BUILD_DIR") or REPO_ROOT / "build").resolve()
WORK = BUILD_DIR / "deploy_check"
RENDERER = WORK / "chart_render"
NODE_DIR = WORK / "node"
CHART = REPO_ROOT / "deploy" / "helm" / "policy-suite"
PRODUCTION = CHART / "examples" / "values-production.yaml"
DOCKERFILE = REPO_ROOT / "deploy" / "image" / "Dockerfile"

SERVICES = ("keys", "authz", "pii", "region", "audit", "edge")
NAMESPACE = "policy"  # of every rendering below
DATABASE_SERVICES = ("keys", "authz", "region", "audit")
GRPC, HEALTH, METRICS = 50051, 50050, 9090
# Who calls whom, and the setting that names the callee (services/*/*_config.cc).
CALLS = {
    "edge": {"keys": "keys_target", "authz": "authz_target", "pii": "pii_target",
             "region": "region_target", "audit": "audit_target"},
    "authz": {"keys": "keys_address", "audit": "audit_target"},
    "keys": {"audit": "audit_target"},
    "region": {"audit": "audit_target"},
}
# Settings naming files the chart mounts, and the setting given the pod's name.
FILES = {"authz": {"bootstrap_org_file"}, "pii": {"recognizers_file"}}
POD_NAME = {"region": "replica"}
# Settings every deployment sets itself, and those that have no place in one.
CHART_OWNED = {"listen", "metrics_listen", "health_listen", "tls_cert_file", "tls_key_file",
               "tls_ca_file", "tls_require_client_cert", "store", "database_url",
               "apply_migrations", "max_connection_age", "tls_allowed_clients",
               "max_concurrent_streams", "max_connection_idle", "keepalive_min_ping_interval",
               "keepalive_permit_without_calls",
               "shutdown_delay"}
NOT_DEPLOYED = {"ready_file", "migrate_only", "bootstrap_admin"}
# Settings a binary no longer has that config still accepts, ignored, for one release.
DEPRECATED = {"audit": {"max_staleness", "watch_heartbeat"}, "region": {"watch_heartbeat"}}
# Environment variables libpq reads itself.
LIBPQ_ENV = {"PGPASSWORD", "PGSSLROOTCERT"}


# ---------------------------------------------------------------------------------------------
# What the binaries register, read from their sources.
# ---------------------------------------------------------------------------------------------

# Add<Type>("name", <arguments, string literals skipped whole>);
_SETTING_RE = re.compile(
    r'\bAdd(?:String|Int|Bool|Duration|List)\(\s*"([a-z0-9_]+)"((?:"(?:[^"\\]|\\.)*"|[^";])*);')


def _settings(path, function=None):
    """{name: is_secret} of the settings a source file registers (in `function` alone, when
    given: from its definition to the next line that closes a function)."""
    text = (REPO_ROOT / path).read_text()
    if function is not None:
        start = text.index(f"::{function}(config::Parser&")
        text = text[start:text.index("\n}\n", start)]
    return {m.group(1): "Sensitivity::kSecret" in m.group(2) for m in _SETTING_RE.finditer(text)}


def registered_settings(service):
    """{name: is_secret} of every setting `service` reads (POLICY_<SVC>_<NAME>)."""
    config = f"services/{service}/{service}_config.cc"
    settings = {**_settings("common/server/server_runner.cc"),
                **_settings("common/tls/tls_options.cc", "Register"), **_settings(config)}
    source = (REPO_ROOT / config).read_text()
    storage = "common/pg/storage_options.cc"
    # Register: RegisterPolled's settings and watch_heartbeat; RegisterPolled:
    # RegisterDatabase's and max_staleness.
    for function in ("Register", "RegisterPolled", "RegisterDatabase"):
        if f"storage.{function}(" in source:
            break
    else:
        return settings
    chain = ("Register", "RegisterPolled", "RegisterDatabase")
    for f in chain[chain.index(function):]:
        settings.update(_settings(storage, f))
    return settings


def secret_settings(service):
    return {name for name, secret in registered_settings(service).items() if secret}


# ---------------------------------------------------------------------------------------------
# Building the tools, rendering.
# ---------------------------------------------------------------------------------------------

def _run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=kw.pop("timeout", 300),
                          **kw)


def build_renderer():
    go = "/usr/bin/go" if os.access("/usr/bin/go", os.X_OK) else shutil.which("go")
    if go is None:
        raise AssertionError("go is not installed (apt-get install golang-go; tools/dev does)")
    env = {**os.environ, "GO111MODULE": "off", "GOFLAGS": "", "CGO_ENABLED": "0",
           "GOPATH": f"{WORK / 'gopath'}:/usr/share/gocode", "GOCACHE": str(WORK / "gocache")}
    r = _run([go, "build", "-o", str(RENDERER), "tools/chart_render/main.go"], cwd=REPO_ROOT,
             env=env)
    if r.returncode != 0:
        raise AssertionError(f"building tools/chart_render failed:\n{r.stdout}{r.stderr}")


def install_validator():
    """npm ci of tests/deploy/package-lock.json into NODE_DIR, unless already done for it."""
    here = Path(__file__).resolve().parent
    pt.npm_ci(here, NODE_DIR, "the Kubernetes schema check")
    shutil.copy(here / "validate_manifests.js", NODE_DIR)


def setUpModule():
    WORK.mkdir(parents=True, exist_ok=True)
    build_renderer()
    install_validator()


class RenderError(AssertionError):
    pass


def render_raw(*args, chart=CHART):
    r = _run([str(RENDERER), str(chart), *map(str, args)], timeout=60)
    if r.returncode != 0:
        raise RenderError(r.stderr)
    return r.stdout


class Manifests:
    """The documents of one rendering: [(source, object)] in output order."""

    def __init__(self, text):
        self.docs = []
        for doc in re.split(r"^---\n", text, flags=re.M):
            if not doc.strip():
                continue
            source = re.match(r"# Source: (\S+)\n", doc)
            assert source, f"a document without its # Source line:\n{doc}"
            self.docs.append((source.group(1), yaml.safe_load(doc)))

    def objects(self, kind=None):
        return [o for _, o in self.docs if kind is None or o["kind"] == kind]

    def named(self, kind):
        return {o["metadata"]["name"]: o for o in self.objects(kind)}

    def component(self, kind, service):
        """The object of `kind` labelled app.kubernetes.io/component=service (exactly one; not
        counting the edge's internal Service, which an exposed edge has beside its own)."""
        found = [o for o in self.objects(kind)
                 if o["metadata"]["labels"].get("app.kubernetes.io/component") == service
                 and not o["metadata"]["name"].endswith("-edge-internal")]
        assert len(found) == 1, f"{len(found)} {kind} objects of component {service}"
        return found[0]

    def container(self, service):
        containers = self.component("Deployment", service)["spec"]["template"]["spec"][
            "containers"]
        assert len(containers) == 1
        return containers[0]

    def env(self, service):
        return env_map(self.container(service))

    def pod_specs(self):
        """(description, pod spec) of every pod the chart makes: Deployments, Jobs, Pods."""
        for o in self.objects():
            name = f"{o['kind']} {o['metadata']['name']}"
            if o["kind"] in ("Deployment", "Job"):
                yield name, o["spec"]["template"]["spec"]
            elif o["kind"] == "Pod":
                yield name, o["spec"]


def render(*args):
    return Manifests(render_raw("--name", "demo", "--namespace", NAMESPACE, *args))


def env_map(container):
    env = {}
    for e in container.get("env", []):
        assert e["name"] not in env, f"{e['name']} set twice"
        env[e["name"]] = e
    return env


def matches(selector, labels):
    """Whether a matchLabels selector selects `labels`."""
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


# The renderings every structural test looks at.
VARIANTS = {
    "default": (),
    "production": ("-f", PRODUCTION),
    "tls": ("--set", "tls.enabled=true,metrics.serviceMonitor.enabled=true,"
                     "keys.tls.secretName=keys-cert,database.caSecret=pg-ca,"
                     "tls.restrictToCallers=true,metrics.prometheusRule.enabled=true,"
                     # The edge behind a load balancer (the production example's is not).
                     "edge.service.type=LoadBalancer,edge.service.externalTrafficPolicy=Local,"
                     "edge.service.loadBalancerSourceRanges={10.0.0.0/8}"),
    "memory": ("--set", "store=memory,keys.autoscaling.enabled=true,pii.autoscaling.enabled=true"),
    "no-migration-jobs": ("--set", "migrations.enabled=false"),
}
_rendered = {}


def variant(name):
    if name not in _rendered:
        _rendered[name] = render(*VARIANTS[name])
    return _rendered[name]


def fullname(name):
    """The resource-name prefix of variant `name` (production sets fullnameOverride)."""
    return "policy-suite" if name == "production" else "demo-policy-suite"


class KubernetesSchemaTest(unittest.TestCase):
    def test_every_object_matches_its_kubernetes_schema(self):
        items = [{"source": f"[{name}] {source}", "object": obj}
                 for name in VARIANTS for source, obj in variant(name).docs]
        with tempfile.NamedTemporaryFile("w", suffix=".json", dir=WORK, delete=False) as f:
            json.dump(items, f)
        try:
            r = _run(["node", str(NODE_DIR / "validate_manifests.js"), f.name], timeout=120)
        finally:
            os.unlink(f.name)
        self.assertEqual(r.returncode, 0, f"invalid objects:\n{r.stdout}{r.stderr}")

    def test_the_validator_refuses_broken_objects(self):
        # The same check must fail on what a template slip produces: a misspelt field, a
        # string for a port, a missing required field, an unknown kind.
        deployment = json.loads(json.dumps(variant("default").component("Deployment", "keys")))
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        container["readinesProbe"] = container.pop("readinessProbe")
        service = json.loads(json.dumps(variant("default").component("Service", "keys")))
        service["spec"]["ports"][0]["port"] = "grpc"
        hpa = json.loads(json.dumps(variant("production").component("HorizontalPodAutoscaler",
                                                                    "edge")))
        del hpa["spec"]["maxReplicas"]
        typo = {"apiVersion": "apps/v1", "kind": "Deploymnet", "metadata": {"name": "x"}}
        items = [{"source": str(i), "object": o}
                 for i, o in enumerate([deployment, service, hpa, typo])]
        path = WORK / "broken.json"
        path.write_text(json.dumps(items))
        r = _run(["node", str(NODE_DIR / "validate_manifests.js"), str(path)], timeout=120)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("readinesProbe", r.stdout)
        self.assertRegex(r.stdout, r"1: Service .*port")
        self.assertIn("maxReplicas", r.stdout)
        self.assertIn("no schema for apps/v1 Deploymnet", r.stdout)


class WorkloadTest(unittest.TestCase):
    def dockerfile_uid(self):
        m = re.search(r"useradd [^\n]*--uid (\d+)", DOCKERFILE.read_text())
        self.assertIsNotNone(m, "the Dockerfile makes no user with a fixed UID")
        return int(m.group(1))

    def test_every_pod_and_container_is_restricted(self):
        uid = self.dockerfile_uid()
        for name in VARIANTS:
            for what, pod in variant(name).pod_specs():
                with self.subTest(variant=name, pod=what):
                    psc = pod["securityContext"]
                    self.assertIs(psc["runAsNonRoot"], True)
                    self.assertEqual(psc["runAsUser"], uid)
                    self.assertEqual(psc["seccompProfile"], {"type": "RuntimeDefault"})
                    self.assertIs(pod["automountServiceAccountToken"], False)
                    self.assertIs(pod["enableServiceLinks"], False)
                    for c in pod.get("initContainers", []) + pod["containers"]:
                        sc = c["securityContext"]
                        self.assertIs(sc["allowPrivilegeEscalation"], False)
                        self.assertIs(sc["readOnlyRootFilesystem"], True)
                        self.assertIs(sc["runAsNonRoot"], True)
                        self.assertEqual(sc["runAsUser"], uid)
                        self.assertEqual(sc["capabilities"], {"drop": ["ALL"]})
                        self.assertEqual(sc["seccompProfile"], {"type": "RuntimeDefault"})
                        for kind in ("requests", "limits"):
                            self.assertEqual(set(c["resources"][kind]), {"cpu", "memory"})

    def test_a_service_may_run_without_a_cpu_limit_but_not_without_a_memory_limit(self):
        m = render("--set", "edge.resources.limits.cpu=null")
        container = m.component("Deployment", "edge")["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(container["resources"]["limits"], {"memory": "512Mi"})
        self.assertEqual(set(container["resources"]["requests"]), {"cpu", "memory"})
        with self.assertRaises(RenderError) as caught:
            render_raw("--set", "edge.resources.limits.memory=null")
        self.assertIn("memory", str(caught.exception))
        with self.assertRaises(RenderError):
            render_raw("--set", "edge.resources.requests.cpu=null")

    def test_a_priority_class_for_every_pod_when_set(self):
        for name, spec in variant("default").pod_specs():
            self.assertNotIn("priorityClassName", spec, name)
        specs = list(render("--set", "priorityClassName=policy-critical").pod_specs())
        self.assertGreaterEqual(len(specs), len(SERVICES))
        for name, spec in specs:
            self.assertEqual(spec["priorityClassName"], "policy-critical", name)
        with self.assertRaises(RenderError):
            render_raw("--set", "priorityClassName=Not_A_Name")

    def test_each_service_runs_its_binary_from_the_one_image(self):
        dockerfile = DOCKERFILE.read_text()
        for binary in SERVICES + ("policyctl",):
            self.assertRegex(dockerfile, rf"\b{binary}\b")
        self.assertRegex(dockerfile, r"(?m)^FROM debian:12-slim$")
        for name in ("default", "production"):
            m = variant(name)
            self.assertEqual(set(m.named("Deployment")),
                             {f"{fullname(name)}-{s}" for s in SERVICES})
            for service in SERVICES:
                c = m.container(service)
                self.assertEqual(c["command"], [service])
                self.assertEqual(c["image"], "registry.example.com/policy-suite:0.1.0"
                                 if name == "default" else
                                 "registry.internal.example.com/platform/policy-suite:0.1.0")
                self.assertEqual({(p["name"], p["containerPort"]) for p in c["ports"]},
                                 {("grpc", GRPC), ("health", HEALTH), ("metrics", METRICS)})

    def test_probes_are_native_grpc_on_the_health_port(self):
        for name in VARIANTS:
            for service in SERVICES:
                with self.subTest(variant=name, service=service):
                    c = variant(name).container(service)
                    self.assertEqual(c["readinessProbe"]["grpc"], {"port": HEALTH, "service": ""})
                    self.assertEqual(c["livenessProbe"]["grpc"],
                                     {"port": HEALTH, "service": "liveness"})
                    self.assertEqual(c["startupProbe"]["grpc"],
                                     {"port": HEALTH, "service": "liveness"})
                    env = env_map(c)
                    p = f"POLICY_{service.upper()}_"
                    self.assertEqual(env[p + "LISTEN"]["value"], f"0.0.0.0:{GRPC}")
                    self.assertEqual(env[p + "HEALTH_LISTEN"]["value"], f"0.0.0.0:{HEALTH}")
                    self.assertEqual(env[p + "METRICS_LISTEN"]["value"], f"0.0.0.0:{METRICS}")
                    self.assertEqual(env[p + "MAX_CONNECTION_AGE"]["value"], "5m")

    def test_every_variable_is_a_setting_the_binary_reads(self):
        for name in VARIANTS:
            m = variant(name)
            containers = [(s, m.container(s)) for s in SERVICES]
            containers += [(j["spec"]["template"]["spec"]["containers"][0]["command"][0],
                            j["spec"]["template"]["spec"]["containers"][0])
                           for j in m.objects("Job")]
            for service, container in containers:
                settings = registered_settings(service)
                prefix = f"POLICY_{service.upper()}_"
                for var in env_map(container):
                    with self.subTest(variant=name, service=service, variable=var):
                        if var in LIBPQ_ENV:
                            continue
                        self.assertTrue(var.startswith(prefix))
                        self.assertIn(var[len(prefix):].lower(), settings)

    def test_config_accepts_every_setting_the_chart_does_not_own(self):
        schema = json.loads((CHART / "values.schema.json").read_text())
        for service in SERVICES:
            with self.subTest(service=service):
                settings = set(registered_settings(service))
                owned = (CHART_OWNED | NOT_DEPLOYED | secret_settings(service) |
                         set(CALLS.get(service, {}).values()) | FILES.get(service, set()) |
                         {POD_NAME.get(service)}) & settings
                config = set(schema["properties"][service]["properties"]["config"]["properties"])
                deprecated = DEPRECATED.get(service, set())
                self.assertFalse(deprecated & settings)
                self.assertEqual(config, (settings - owned) | deprecated)

    def test_integer_settings_render_as_integers(self):
        m = render("--set", "pii.config.max_document_bytes=16777216",
                   "-f", self.values_file({"pii": {"config": {"max_request_bytes": 2097152}}}))
        env = m.env("pii")
        self.assertEqual(env["POLICY_PII_MAX_DOCUMENT_BYTES"]["value"], "16777216")
        self.assertEqual(env["POLICY_PII_MAX_REQUEST_BYTES"]["value"], "2097152")
        self.assertEqual(variant("production").env("pii")["POLICY_PII_MAX_REQUEST_BYTES"]["value"],
                         "4194304")

    def values_file(self, values):
        f = tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=WORK, delete=False)
        self.addCleanup(os.unlink, f.name)
        with f:
            yaml.safe_dump(values, f)
        return f.name

    def test_pii_scans_on_as_many_threads_as_its_cpu_limit(self):
        # pii's scan_threads default (0) is one per core of the node: on a 64-core node a pod
        # limited to 1 CPU would scan on 64 threads, throttled. The chart passes the limit.
        def threads(cpu):
            values = {"pii": {"resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                            "limits": {"cpu": cpu, "memory": "512Mi"}}}}
            return render("-f", self.values_file(values)).env("pii")[
                "POLICY_PII_SCAN_THREADS"]["value"]
        self.assertEqual(variant("default").env("pii")["POLICY_PII_SCAN_THREADS"]["value"], "1")
        self.assertEqual(variant("production").env("pii")["POLICY_PII_SCAN_THREADS"]["value"],
                         "2")
        for cpu, expected in (("1", "1"), (4, "4"), ("1.5", "2"), ("500m", "1"),
                              ("2500m", "3")):
            with self.subTest(cpu=cpu):
                self.assertEqual(threads(cpu), expected)
        self.assertEqual(render("--set", "pii.config.scan_threads=0").env("pii")[
            "POLICY_PII_SCAN_THREADS"]["value"], "0")
        self.assertNotIn("POLICY_KEYS_SCAN_THREADS", variant("default").env("keys"))

    def test_files_are_mounted_from_configmaps_and_roll_the_pods(self):
        org = "members:\n  - {id: owner, email: owner@example.com, roles: [{role: owner}]}\n"
        m = render("-f", self.values_file({"authz": {"bootstrapOrg": org}}))
        configmap = m.component("ConfigMap", "authz")
        self.assertEqual(configmap["data"], {"org.yaml": org})
        env = m.env("authz")
        self.assertEqual(env["POLICY_AUTHZ_BOOTSTRAP_ORG_FILE"]["value"],
                         "/etc/policy-suite/config/org.yaml")
        pod = m.component("Deployment", "authz")["spec"]["template"]
        self.assertIn("checksum/config", pod["metadata"]["annotations"])
        self.assertIn({"name": "config", "configMap": {"name": configmap["metadata"]["name"]}},
                      pod["spec"]["volumes"])
        self.assertNotIn("POLICY_PII_RECOGNIZERS_FILE", m.env("pii"))
        self.assertEqual(variant("default").objects("ConfigMap"), [])
        other = render("-f", self.values_file({"authz": {"bootstrapOrg": org + "# changed\n"}}))
        self.assertNotEqual(
            other.component("Deployment", "authz")["spec"]["template"]["metadata"]["annotations"],
            pod["metadata"]["annotations"])

    def test_the_organisation_file_may_come_from_a_secret(self):
        # It names people: a Secret's key, mounted read-only, and no ConfigMap.
        m = render("--set", "authz.bootstrapOrgSecret.name=org-file,"
                            "authz.bootstrapOrgSecret.key=owners.yaml")
        self.assertEqual(m.objects("ConfigMap"), [])
        self.assertEqual(m.env("authz")["POLICY_AUTHZ_BOOTSTRAP_ORG_FILE"]["value"],
                         "/etc/policy-suite/secret-files/org.yaml")
        pod = m.component("Deployment", "authz")["spec"]["template"]["spec"]
        [volume] = [v for v in pod["volumes"] if v["name"] == "secret-files"]
        self.assertEqual(volume["projected"]["sources"], [
            {"secret": {"name": "org-file", "items": [{"key": "owners.yaml", "path": "org.yaml"}]}}])
        self.assertEqual(volume["projected"]["defaultMode"], 0o440)
        [mount] = [v for v in pod["containers"][0]["volumeMounts"] if v["name"] == "secret-files"]
        self.assertEqual(mount, {"name": "secret-files", "mountPath": "/etc/policy-suite/secret-files",
                                 "readOnly": True})
        for service in SERVICES:
            if service != "authz":
                volumes = m.component("Deployment", service)["spec"]["template"]["spec"]["volumes"]
                self.assertNotIn("secret-files", [v["name"] for v in volumes])
        with self.assertRaises(RenderError) as caught:
            render_raw("--set", "authz.bootstrapOrg=members: [],authz.bootstrapOrgSecret.name=org")
        self.assertIn("authz.bootstrapOrg and authz.bootstrapOrgSecret.name both give org.yaml",
                      str(caught.exception))

    def test_region_replicas_are_named_after_their_pods(self):
        env = variant("default").env("region")
        self.assertEqual(env["POLICY_REGION_REPLICA"]["valueFrom"],
                         {"fieldRef": {"fieldPath": "metadata.name"}})


class ShutdownTest(unittest.TestCase):
    """On SIGTERM a pod stays in service for shutdownDelay while it is taken out of the
    endpoints, then drains for shutdown_grace: terminationGracePeriodSeconds must cover both."""

    def assertRefused(self, *args, message):
        with self.assertRaises(RenderError) as caught:
            render_raw(*args)
        self.assertIn(message, str(caught.exception))

    @staticmethod
    def shutdown(m, service):
        """(its POLICY_<SVC>_SHUTDOWN_DELAY, its pods' terminationGracePeriodSeconds)."""
        return (m.env(service)[f"POLICY_{service.upper()}_SHUTDOWN_DELAY"]["value"],
                m.component("Deployment", service)["spec"]["template"]["spec"][
                    "terminationGracePeriodSeconds"])

    def test_every_service_serves_on_for_the_shutdown_delay(self):
        for name in VARIANTS:
            m = variant(name)
            for service in SERVICES:
                with self.subTest(variant=name, service=service):
                    delay, termination = self.shutdown(m, service)
                    self.assertEqual(delay, "5s")
                    self.assertGreater(termination, 5 + 10)
            for job in m.objects("Job"):
                self.assertFalse(any(e.endswith("_SHUTDOWN_DELAY") for e in
                                     env_map(job["spec"]["template"]["spec"]["containers"][0])))
        m = render("--set", "shutdownDelay=1m30s,terminationGracePeriodSeconds=120")
        self.assertEqual(self.shutdown(m, "edge"), ("1m30s", 120))

    def test_the_termination_grace_must_cover_delay_and_grace(self):
        self.assertRefused(
            "--set", "edge.config.shutdown_grace=60s",
            message="shutdownDelay (5s) + edge.config.shutdown_grace (60s) must be shorter "
                    "than terminationGracePeriodSeconds (30)")
        self.assertRefused("--set", "shutdownDelay=20s",
                           message="shutdownDelay (20s) + audit.config.shutdown_grace (10s)")
        self.assertRefused("--set", "shutdownDelay=1m",
                           message="must be shorter than terminationGracePeriodSeconds (30)")
        self.assertRefused("--set", "shutdownDelay=0s,terminationGracePeriodSeconds=10",
                           message="terminationGracePeriodSeconds (10)")
        self.assertRefused("--set", "keys.config.shutdown_grace=1h,"
                           "terminationGracePeriodSeconds=3600",
                           message="keys.config.shutdown_grace (1h)")
        # Just inside, in the units the binaries read.
        render_raw("--set", "shutdownDelay=19500ms")
        render_raw("--set", "shutdownDelay=0s,edge.config.shutdown_grace=29.9s")
        render_raw("--set", "edge.config.shutdown_grace=60s,terminationGracePeriodSeconds=66")
        render_raw("--set", "shutdownDelay=1m,keys.config.shutdown_grace=1h,"
                   "terminationGracePeriodSeconds=3661")
        self.assertRefused("--set", "shutdownDelay=5 seconds", message="shutdownDelay")
        self.assertRefused("--set", "shutdownDelay=11m,terminationGracePeriodSeconds=1000",
                           message="shutdownDelay (11m) must be at most 10m")

    def test_a_service_may_have_its_own_delay_and_grace_period(self):
        m = render("--set", "edge.shutdownDelay=25s,edge.terminationGracePeriodSeconds=45")
        for service in SERVICES:
            self.assertEqual(self.shutdown(m, service),
                             ("25s", 45) if service == "edge" else ("5s", 30), service)
        # The checks compare each service's own values, and name them.
        self.assertRefused("--set", "edge.shutdownDelay=25s",
                           message="edge.shutdownDelay (25s) + edge.config.shutdown_grace (10s) "
                                   "must be shorter than terminationGracePeriodSeconds (30)")
        self.assertRefused("--set", "edge.terminationGracePeriodSeconds=10",
                           message="shutdownDelay (5s) + edge.config.shutdown_grace (10s) must "
                                   "be shorter than edge.terminationGracePeriodSeconds (10)")
        self.assertRefused("--set", "edge.shutdownDelay=11m,edge.terminationGracePeriodSeconds=999",
                           message="edge.shutdownDelay (11m) must be at most 10m")
        # Zero is a value of its own, not "unset".
        m = render("--set", "keys.shutdownDelay=0s,keys.terminationGracePeriodSeconds=11")
        self.assertEqual(self.shutdown(m, "keys"), ("0s", 11))
        self.assertRefused("--set", "keys.terminationGracePeriodSeconds=0",
                           message="keys.terminationGracePeriodSeconds (0)")

    def test_the_edge_drains_for_at_least_a_decision(self):
        self.assertRefused("--set", "edge.config.shutdown_grace=1s",
                           message="edge.config.shutdown_grace (1s) must be at least "
                                   "edge.config.max_decision_time (5s)")
        self.assertRefused("--set", "edge.config.max_decision_time=10500ms",
                           message="edge.config.shutdown_grace (10s) must be at least "
                                   "edge.config.max_decision_time (10500ms)")
        render_raw("--set", "edge.config.shutdown_grace=2s,edge.config.max_decision_time=2s")


class SettingChecksTest(unittest.TestCase):
    """Settings the binaries would refuse at start (CrashLoopBackOff) are refused at render
    time: single bounds by values.schema.json, relations and duration ranges by the chart's
    templates/_checks.tpl, with the binaries' defaults for what is not set."""

    def assertRefused(self, *args, message, schema=False):
        with self.assertRaises(RenderError) as caught:
            render_raw(*args)
        error = str(caught.exception)
        self.assertIn(message, error)
        self.assertEqual("values don't meet the specifications of the schema" in error, schema,
                         error)

    def test_heartbeats_shorter_than_the_staleness_bound(self):
        self.assertRefused("--set", "keys.config.watch_heartbeat=2s",
                           message="keys.config.watch_heartbeat (2s) must be shorter than "
                                   "keys.config.max_staleness (1s)")
        # audit has no in-memory state to age; region's ages by its sync_interval.
        for service in ("keys", "authz"):
            with self.subTest(service=service):
                self.assertRefused(
                    "--set", f"{service}.config.max_staleness=200ms",
                    message=f"{service}.config.watch_heartbeat (200ms) must be shorter than "
                            f"{service}.config.max_staleness (200ms)")
        self.assertRefused("--set", "region.config.max_staleness=200ms",
                           message="region.config.sync_interval (200ms) must be shorter than "
                                   "region.config.max_staleness (200ms)")
        render_raw("--set", "keys.config.watch_heartbeat=2s,keys.config.max_staleness=2.5s")
        self.assertRefused("--set", "region.config.sync_interval=1s",
                           message="region.config.sync_interval (1s) must be shorter than "
                                   "region.config.max_staleness (1s)")
        render_raw("--set", "store=memory,region.config.sync_interval=1s")
        self.assertRefused("--set", "authz.config.watch_heartbeat=0s",
                           message="watch_heartbeat", schema=True)

    def test_duration_bounds(self):
        self.assertRefused("--set", "pii.config.max_document_time=0s",
                           message="pii.config.max_document_time", schema=True)
        self.assertRefused("--set", "pii.config.max_document_time=0.000s",
                           message="pii.config.max_document_time", schema=True)
        self.assertRefused("--set", "pii.config.max_document_time=61m",
                           message="pii.config.max_document_time (61m) must be more than 0s "
                                   "and at most 1h")
        render_raw("--set", "pii.config.max_document_time=1h")
        render_raw("--set", "pii.config.max_document_time=1ns")
        self.assertRefused("--set", "edge.config.max_decision_time=5ms",
                           message="edge.config.max_decision_time (5ms) must be between 10ms "
                                   "and 5m")
        self.assertRefused("--set", "region.config.sync_interval=11m,region.config."
                           "max_staleness=1h", message="region.config.sync_interval (11m) must "
                                                       "be between 10ms and 10m")
        self.assertRefused("--set", "audit.config.checkpoint_interval=1ms",
                           message="audit.config.checkpoint_interval (1ms) must be at least 10ms")
        self.assertRefused("--set", "pii.config.tls_reload_interval=500ms",
                           message="pii.config.tls_reload_interval (500ms) must be at least 1s")
        self.assertRefused("--set", "maxConnectionAge=25h",
                           message="maxConnectionAge (25h) must be at most 24h")
        self.assertRefused("--set", "keys.config.sweep_interval=0",
                           message="sweep_interval", schema=True)

    def test_related_limits(self):
        self.assertRefused("--set", "keys.config.default_ttl=9000h",
                           message="keys.config.default_ttl (9000h) must be at most "
                                   "keys.config.max_ttl (8760h)")
        self.assertRefused("--set", "keys.config.max_overlap=1h",
                           message="keys.config.default_overlap (24h) must be at most "
                                   "keys.config.max_overlap (1h)")
        render_raw("--set", "keys.config.default_overlap=1h,keys.config.max_overlap=1h")
        # Whole days, as the binaries take them, are compared as such.
        self.assertRefused("--set", "keys.config.default_ttl=400d",
                           message="keys.config.default_ttl (400d) must be at most "
                                   "keys.config.max_ttl (8760h)")
        self.assertEqual(render("--set", "keys.config.default_ttl=90d").env("keys")[
            "POLICY_KEYS_DEFAULT_TTL"]["value"], "90d")
        self.assertRefused("--set", "keys.config.default_ttl=1.5d", message="default_ttl",
                           schema=True)
        self.assertRefused("--set", "audit.config.max_queued_appends=500",
                           message="audit.config.max_queued_appends (500) must be at least "
                                   "audit.config.max_batch (1000)")
        render_raw("--set", "audit.config.max_queued_appends=500,audit.config.max_batch=500")

    def test_audit_export_write_time_and_pii_scan_budget(self):
        self.assertRefused("--set", "audit.config.max_export_write_time=2h",
                           message="audit.config.max_export_write_time (2h) must be between "
                                   "100ms and 1h")
        self.assertRefused("--set", "audit.config.max_export_write_time=50ms",
                           message="audit.config.max_export_write_time (50ms) must be between")
        render_raw("--set", "audit.config.max_export_write_time=1h")
        render_raw("--set", "audit.config.max_export_write_time=100ms")
        self.assertRefused("--set", "pii.config.max_scan_bytes_in_flight=4194304",
                           message="pii.config.max_scan_bytes_in_flight (4194304) must be 0 "
                                   "(automatic) or at least pii.config.max_request_bytes and "
                                   "pii.config.max_document_bytes (8388608)")
        self.assertRefused("--set", "pii.config.max_scan_bytes_in_flight=8388608,"
                           "pii.config.max_request_bytes=16777216",
                           message="max_scan_bytes_in_flight (8388608) must be 0")
        render_raw("--set", "pii.config.max_scan_bytes_in_flight=8388608")
        render_raw("--set", "pii.config.max_scan_bytes_in_flight=0,"
                   "pii.config.max_request_bytes=16777216")

    def test_verifying_the_database_server_needs_its_ca(self):
        # libpq's verify-ca/verify-full without a root certificate refuse every connection.
        for mode in ("verify-ca", "verify-full"):
            with self.subTest(mode=mode):
                self.assertRefused("--set", f"database.sslMode={mode}",
                                   message=f"database.sslMode {mode} verifies the server against "
                                           "a CA that audit does not have: set database.caSecret")
                env = render("--set", f"database.sslMode={mode},database.caSecret=pg-ca").env(
                    "keys")
                self.assertEqual(env["PGSSLROOTCERT"]["value"],
                                 "/etc/policy-suite/database/ca.crt")
        system = {"name": "PGSSLROOTCERT", "value": "/etc/ssl/certs/ca-certificates.crt"}
        values = {s: {"extraEnv": [system]} for s in DATABASE_SERVICES}
        values["database"] = {"sslMode": "verify-full"}
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=WORK) as f:
            yaml.safe_dump(values, f)
            f.flush()
            self.assertEqual(render("-f", f.name).env("region")["PGSSLROOTCERT"], system)
            values["keys"]["extraEnv"] = []
            f.seek(0)
            f.truncate()
            yaml.safe_dump(values, f)
            f.flush()
            self.assertRefused("-f", f.name, message="a CA that keys does not have")
        render_raw("--set", "database.sslMode=verify-full,store=memory")
        render_raw("--set", "database.sslMode=require")

    def test_the_startup_probe_outlasts_the_wait_for_postgresql(self):
        self.assertRefused("--set", "audit.config.database_start_wait=5m",
                           message="audit.config.database_start_wait (5m) must be shorter than "
                                   "the startup probe's window, probes.startup.periodSeconds x "
                                   "failureThreshold (120s)")
        self.assertRefused("--set", "probes.startup.failureThreshold=30",
                           message="database_start_wait (60s) must be shorter than the startup "
                                   "probe's window, probes.startup.periodSeconds x "
                                   "failureThreshold (60s)")
        render_raw("--set", "audit.config.database_start_wait=5m,probes.startup.failureThreshold=160")
        render_raw("--set", "store=memory,keys.config.database_start_wait=5m")

    def test_grpc_memory_quota_is_below_the_memory_limit(self):
        self.assertRefused("--set", "edge.config.grpc_memory_quota=536870912",
                           message="edge.config.grpc_memory_quota (536870912) must be below "
                                   "edge.resources.limits.memory (512Mi)")
        render_raw("--set", "edge.config.grpc_memory_quota=536870911")
        for limit, refused in (("256Mi", True), (268435456, True), ("300M", False),
                               ("1Gi", False), ("250000k", True)):
            with self.subTest(limit=limit):
                values = {"keys": {"resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                                 "limits": {"cpu": "1", "memory": limit}}}}
                with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=WORK) as f:
                    yaml.safe_dump(values, f)
                    f.flush()
                    if refused:
                        self.assertRefused("-f", f.name, message="keys.config.grpc_memory_quota "
                                           "(268435456) must be below keys.resources.limits."
                                           f"memory ({limit})")
                    else:
                        render_raw("-f", f.name)

    def test_region_breaker_min_reporters_is_1_to_8(self):
        for bad in (0, 9):
            with self.subTest(value=bad):
                self.assertRefused("--set", f"region.config.breaker_min_reporters={bad}",
                                   message="breaker_min_reporters", schema=True)
        for good in (1, 8):
            with self.subTest(value=good):
                env = render("--set", f"region.config.breaker_min_reporters={good}").env("region")
                self.assertEqual(env["POLICY_REGION_BREAKER_MIN_REPORTERS"]["value"], str(good))

    def test_region_probe_timeout_is_positive(self):
        for zero in ("0", "0s", "0.0ms"):
            self.assertRefused("--set", f"region.config.probe_timeout={zero}",
                               message="probe_timeout", schema=True)
        render_raw("--set", "region.config.probe_timeout=1ms")

    def trusted_proxies(self, value):
        """Renders with edge.config.trusted_proxies=`value` (a values file: --set splits at
        commas); the edge's environment."""
        f = tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=WORK, delete=False)
        self.addCleanup(os.unlink, f.name)
        with f:
            yaml.safe_dump({"edge": {"config": {"trusted_proxies": value}}}, f)
        return f.name

    def test_trusted_proxies_are_networks_the_edge_reads(self):
        for bad in ("10.0.0.0/33", "10.0.0.256", "10.0.0", "010.0.0.0/8", "10.0.0.0/08",
                    "10.0.0.0/", "1.2.3.4:80", "localhost", "1::2::3", "1:2:3:4:5:6:7:8:9",
                    "12345::", "::1/129", "10.0.0.0/8,", ",10.0.0.0/8", "10.0.0.0/8;::1"):
            with self.subTest(value=bad):
                self.assertRefused("-f", self.trusted_proxies(bad), message="trusted_proxies",
                                   schema=True)
        for value, message in [
                ("10.0.0.1/8", "edge.config.trusted_proxies[0]: CIDR '10.0.0.1/8' has host bits "
                               "set past its prefix length: the edge refuses to start otherwise"),
                ("127.0.0.0/8, 192.168.1.0/16", "trusted_proxies[1]: CIDR '192.168.1.0/16' has "
                                                "host bits set"),
                ("0.0.0.1/0", "trusted_proxies[0]: CIDR '0.0.0.1/0' has host bits set"),
                ("fd00::1/8", "trusted_proxies[0]: CIDR 'fd00::1/8' has host bits set"),
                ("2001:db8::/28", "trusted_proxies[0]: CIDR '2001:db8::/28' has host bits set"),
                ("::1, 1:2:3:4:5:6:7:9/127", "trusted_proxies[1]: CIDR '1:2:3:4:5:6:7:9/127' has "
                                             "host bits set"),
                ("::ffff:10.0.0.1/104", "trusted_proxies[0]: CIDR '::ffff:10.0.0.1/104' has host "
                                        "bits set"),
                ("::ffff:0:0/64", "trusted_proxies[0]: CIDR '::ffff:0:0/64' is an IPv4-mapped "
                                  "IPv6 network, which needs a prefix length of 96 to 128"),
                (",".join(f"10.0.{i // 256}.{i % 256}" for i in range(257)),
                 "edge.config.trusted_proxies has 257 entries; the edge refuses more than 256"),
                ("10.0.0.1,10.0.0.1", "trusted_proxies[1]: '10.0.0.1' is listed twice"),
                ("10.0.0.1, 10.0.0.1/32", "trusted_proxies[1]: '10.0.0.1/32' is listed twice"),
                ("fd00::/8,FD00::/8", "trusted_proxies[1]: 'FD00::/8' is listed twice")]:
            with self.subTest(value=value):
                self.assertRefused("-f", self.trusted_proxies(value), message=message)
        for good in ("", "127.0.0.0/8,::1", "127.0.0.6", "0.0.0.0/0, ::/0",
                     "10.0.0.0/8 , 192.168.0.0/16,fd00::/8", "2001:db8::/29", "2001:DB8::/32",
                     "::ffff:10.0.0.0/104", "::ffff:0:0/96", "1:2:3:4:5:6:7:8/128",
                     "1:2:3:4:5:6:7:0/112", "1:2:3:4:5:6:7:8/127", "1:2:3:4:5:6:1.2.3.0/120", "fe80::/10",
                     "10.1.2.3/32", "10.1.2.2/31", ",".join(f"10.0.0.{i}" for i in range(256))):
            with self.subTest(value=good):
                env = render("-f", self.trusted_proxies(good)).env("edge")
                self.assertEqual(env["POLICY_EDGE_TRUSTED_PROXIES"]["value"], good)

    def test_settings_audit_no_longer_has_are_accepted_and_ignored(self):
        m = render("--set", "audit.config.max_staleness=2s,audit.config.watch_heartbeat=500ms")
        env = m.env("audit")
        self.assertNotIn("POLICY_AUDIT_MAX_STALENESS", env)
        self.assertNotIn("POLICY_AUDIT_WATCH_HEARTBEAT", env)
        self.assertIn("POLICY_AUDIT_STORE", env)
        for job in m.objects("Job"):
            names = [v["name"] for c in job["spec"]["template"]["spec"]["containers"]
                     for v in c.get("env", [])]
            self.assertFalse({"POLICY_AUDIT_MAX_STALENESS", "POLICY_AUDIT_WATCH_HEARTBEAT"}
                             & set(names))
        # Other services keep theirs.
        env = render("--set", "region.config.max_staleness=2s").env("region")
        self.assertEqual(env["POLICY_REGION_MAX_STALENESS"]["value"], "2s")
        schema = json.loads((CHART / "values.schema.json").read_text())
        config = schema["properties"]["audit"]["properties"]["config"]["properties"]
        for setting in ("max_staleness", "watch_heartbeat"):
            self.assertTrue(config[setting]["description"].startswith("deprecated"))
        self.assertRefused("--set", "audit.config.max_staleness=soon", message="max_staleness",
                           schema=True)
        readme = (CHART / "README.md").read_text()
        self.assertIn("`audit.config.max_staleness` or\n`audit.config.watch_heartbeat` still "
                      "render, and the settings are ignored", readme)

    def test_the_heartbeat_region_never_had_is_accepted_and_ignored(self):
        m = render("--set", "region.config.watch_heartbeat=5s")
        env = m.env("region")
        self.assertNotIn("POLICY_REGION_WATCH_HEARTBEAT", env)
        self.assertIn("POLICY_REGION_STORE", env)
        for job in m.objects("Job"):
            names = [v["name"] for c in job["spec"]["template"]["spec"]["containers"]
                     for v in c.get("env", [])]
            self.assertNotIn("POLICY_REGION_WATCH_HEARTBEAT", names)
        # keys and authz keep theirs.
        self.assertEqual(render("--set", "keys.config.watch_heartbeat=100ms").env("keys")[
            "POLICY_KEYS_WATCH_HEARTBEAT"]["value"], "100ms")
        schema = json.loads((CHART / "values.schema.json").read_text())
        config = schema["properties"]["region"]["properties"]["config"]["properties"]
        self.assertTrue(config["watch_heartbeat"]["description"].startswith("deprecated"))
        self.assertIn("`region.config.watch_heartbeat` still render",
                      (CHART / "README.md").read_text().replace("\n", " "))

    def test_audits_previous_public_keys_are_hex_keys(self):
        a, b = "ab" * 32, "CD" * 32
        m = render("--set", f"audit.config.previous_public_keys={a}\\,{b}")
        self.assertEqual(m.env("audit")["POLICY_AUDIT_PREVIOUS_PUBLIC_KEYS"]["value"], f"{a},{b}")
        for bad in ("ab" * 31, f"{a}\\,", "zz" * 32):
            with self.subTest(bad=bad):
                self.assertRefused("--set", f"audit.config.previous_public_keys={bad}",
                                   message="previous_public_keys", schema=True)

    def test_integer_bounds(self):
        for setting in ("audit.config.max_batch=10001", "audit.config.append_writers=17",
                        "edge.config.admin_threads=65", "region.config.consecutive_failures=1001",
                        "pii.config.max_request_bytes=268435457",
                        "pii.config.max_regex_memory_bytes=1048575"):
            with self.subTest(setting=setting):
                self.assertRefused("--set", setting, message=setting.split("=")[0].split(".")[-1],
                                   schema=True)


class SecretsTest(unittest.TestCase):
    def test_secret_settings_and_the_password_come_only_from_secrets(self):
        for name in VARIANTS:
            m = variant(name)
            for service in SERVICES:
                env = m.env(service)
                with self.subTest(variant=name, service=service):
                    expected = {f"POLICY_{service.upper()}_{s.upper()}"
                                for s in secret_settings(service)}
                    if service in DATABASE_SERVICES and name != "memory":
                        expected.add("PGPASSWORD")
                    from_secrets = {n for n, e in env.items()
                                    if "secretKeyRef" in e.get("valueFrom", {})}
                    self.assertEqual(from_secrets, expected)
                    for var in expected:
                        self.assertNotIn("value", env[var])
            for _, pod in m.pod_specs():
                for c in pod["containers"]:
                    for e in c.get("env", []):
                        # No password in a URL, or anywhere in plain text.
                        self.assertNotRegex(e.get("value", ""), r"://[^/@]*:[^/@]*@")

    def test_secret_names_and_keys(self):
        env = variant("default").env("keys")
        self.assertEqual(env["POLICY_KEYS_PEPPER"]["valueFrom"]["secretKeyRef"],
                         {"name": "demo-policy-suite-keys", "key": "pepper"})
        self.assertEqual(env["PGPASSWORD"]["valueFrom"]["secretKeyRef"],
                         {"name": "demo-policy-suite-database", "key": "password"})
        audit = variant("production").env("audit")
        self.assertEqual(audit["POLICY_AUDIT_SIGNING_KEY"]["valueFrom"]["secretKeyRef"],
                         {"name": "policy-suite-audit", "key": "signing_key"})
        self.assertEqual(audit["POLICY_AUDIT_SUBJECT_KEY"]["valueFrom"]["secretKeyRef"],
                         {"name": "policy-suite-audit", "key": "subject_key"})
        # Each database service's own role and Secret.
        for service in DATABASE_SERVICES:
            with self.subTest(service=service):
                env = variant("production").env(service)
                self.assertEqual(env["PGPASSWORD"]["valueFrom"]["secretKeyRef"],
                                 {"name": f"policy-suite-database-{service}", "key": "password"})
                self.assertEqual(
                    env[f"POLICY_{service.upper()}_DATABASE_URL"]["value"],
                    f"postgresql://policy_{service}@db.internal.example.com:5432/policy"
                    "?sslmode=verify-full")
        # The pseudonym key is optional: pii runs without it.
        self.assertEqual(variant("default").env("pii")["POLICY_PII_PSEUDONYM_KEY"]["valueFrom"],
                         {"secretKeyRef": {"name": "demo-policy-suite-pii",
                                           "key": "pseudonym_key", "optional": True}})

    def test_an_edge_that_hashes_needs_pii_to_have_its_pseudonym_key(self):
        # edge.config.redaction_operator=hash: the edge refuses to serve (stays unready, every
        # Decide UNAVAILABLE) while pii has no pseudonym key. pii's pod then rather does not
        # start, its event naming the missing Secret key, and the notes call it required.
        hashing = ("--set", "edge.config.redaction_operator=hash")
        self.assertEqual(render(*hashing).env("pii")["POLICY_PII_PSEUDONYM_KEY"]["valueFrom"],
                         {"secretKeyRef": {"name": "demo-policy-suite-pii",
                                           "key": "pseudonym_key"}})
        notes = render_raw("--notes", *hashing)
        self.assertIn("-pii: key pseudonym_key\n", notes)
        self.assertNotIn("pseudonym_key (optional)", notes)
        self.assertIn("-pii: key pseudonym_key (optional)\n", render_raw("--notes"))
        for operator in ("mask", "placeholder"):
            env = render("--set", f"edge.config.redaction_operator={operator}").env("pii")
            self.assertIs(env["POLICY_PII_PSEUDONYM_KEY"]["valueFrom"]["secretKeyRef"][
                "optional"], True)

    def test_database_url_and_migrations_setting(self):
        for service in DATABASE_SERVICES:
            p = f"POLICY_{service.upper()}_"
            env = variant("default").env(service)
            self.assertEqual(env[p + "DATABASE_URL"]["value"],
                             "postgresql://policy@postgresql:5432/policy?sslmode=require")
            self.assertEqual(env[p + "STORE"]["value"], "postgres")
            self.assertEqual(env[p + "APPLY_MIGRATIONS"]["value"], "false")
            self.assertEqual(variant("no-migration-jobs").env(service)[p + "APPLY_MIGRATIONS"]
                             ["value"], "true")
            memory = variant("memory").env(service)
            self.assertEqual(memory[p + "STORE"]["value"], "memory")
            self.assertFalse({p + "DATABASE_URL", "PGPASSWORD"} & set(memory))
        for service in ("pii", "edge"):
            self.assertFalse({"PGPASSWORD", f"POLICY_{service.upper()}_DATABASE_URL"} &
                             set(variant("default").env(service)))

    def test_a_database_user_or_name_with_an_at_sign_is_percent_encoded(self):
        # Managed servers such as Azure's name their roles user@server; libpq decodes %40.
        env = render("--set", "database.user=policy@db-server,database.name=policy.prod"
                     ).env("keys")
        self.assertEqual(env["POLICY_KEYS_DATABASE_URL"]["value"],
                         "postgresql://policy%40db-server@postgresql:5432/policy.prod"
                         "?sslmode=require")

    def test_database_ca(self):
        m = variant("tls")
        for service in DATABASE_SERVICES:
            env = m.env(service)
            self.assertEqual(env["PGSSLROOTCERT"]["value"], "/etc/policy-suite/database/ca.crt")
            pod = m.component("Deployment", service)["spec"]["template"]["spec"]
            self.assertIn({"name": "database-ca", "mountPath": "/etc/policy-suite/database",
                           "readOnly": True}, pod["containers"][0]["volumeMounts"])
            volume = {v["name"]: v for v in pod["volumes"]}["database-ca"]
            self.assertEqual(volume["secret"]["secretName"], "pg-ca")
        self.assertNotIn("PGSSLROOTCERT", m.env("edge"))


class PeersTest(unittest.TestCase):
    def test_services_call_each_other_by_service_dns_names(self):
        for name in ("default", "production"):
            m = variant(name)
            services = m.named("Service")
            for caller, callees in CALLS.items():
                env = m.env(caller)
                for callee, setting in callees.items():
                    with self.subTest(variant=name, caller=caller, callee=callee):
                        address = env[f"POLICY_{caller.upper()}_{setting.upper()}"]["value"]
                        host, port = address.rsplit(":", 1)
                        svc_name, ns, svc = host.split(".")
                        self.assertEqual((ns, svc), (NAMESPACE, "svc"))
                        service = services[svc_name]
                        self.assertEqual(service["metadata"]["labels"][
                            "app.kubernetes.io/component"], callee)
                        self.assertIn({"name": "grpc", "port": int(port), "targetPort": "grpc",
                                       "protocol": "TCP"}, service["spec"]["ports"])

    def test_one_service_each_only_the_edge_configurable(self):
        for name in ("default", "production"):
            m = variant(name)
            for service in SERVICES:
                s = m.component("Service", service)
                pods = m.component("Deployment", service)["spec"]["template"]["metadata"]["labels"]
                self.assertTrue(matches({"matchLabels": s["spec"]["selector"]}, pods))
                if service != "edge":
                    # Headless: callers balance over the pods themselves.
                    self.assertEqual(s["spec"]["type"], "ClusterIP")
                    self.assertEqual(s["spec"]["clusterIP"], "None")
                    self.assertNotIn("annotations", s["metadata"])
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=WORK) as f:
            yaml.safe_dump({"edge": {"service": {
                "type": "LoadBalancer", "port": 443, "externalTrafficPolicy": "Local",
                "annotations": {"service.beta.kubernetes.io/aws-load-balancer-internal": "true"},
                "loadBalancerSourceRanges": ["10.0.0.0/8"]}}}, f)
            f.flush()
            edge = render("-f", f.name).component("Service", "edge")
        self.assertEqual(edge["spec"]["type"], "LoadBalancer")
        self.assertEqual(edge["spec"]["externalTrafficPolicy"], "Local")
        self.assertEqual(edge["spec"]["loadBalancerSourceRanges"], ["10.0.0.0/8"])
        # gRPC alone: neither health nor metrics is published outside the cluster; a headless
        # Service of the edge's pods carries those two.
        self.assertEqual(edge["spec"]["ports"], [{"name": "grpc", "port": 443,
                                                  "targetPort": "grpc", "protocol": "TCP"}])
        self.assertIn("service.beta.kubernetes.io/aws-load-balancer-internal",
                      edge["metadata"]["annotations"])
        self.assertEqual(
            render("--set", "edge.service.type=NodePort").component("Service", "edge")["spec"][
                "externalTrafficPolicy"], "Cluster")
        for name in ("default", "production"):
            spec = variant(name).component("Service", "edge")["spec"]
            self.assertEqual(spec["type"], "ClusterIP")
            self.assertNotIn("clusterIP", spec)
            # Kubernetes refuses externalTrafficPolicy on a ClusterIP Service.
            self.assertNotIn("externalTrafficPolicy", spec)
        with self.assertRaises(RenderError) as caught:
            render_raw("--set", "edge.service.externalTrafficPolicy=local")
        self.assertIn("externalTrafficPolicy", str(caught.exception))

    def test_an_exposed_edge_publishes_grpc_alone(self):
        # The "tls" variant's edge is a LoadBalancer: its health and metrics ports are on a
        # headless Service of the same pods, which the helm test, the ServiceMonitor and the
        # alerts use; the default's one ClusterIP Service carries all three.
        m = variant("tls")
        services = m.named("Service")
        public, internal = (services["demo-policy-suite-edge"],
                            services["demo-policy-suite-edge-internal"])
        self.assertEqual([p["name"] for p in public["spec"]["ports"]], ["grpc"])
        self.assertEqual(internal["spec"]["clusterIP"], "None")
        self.assertEqual(internal["spec"]["type"], "ClusterIP")
        self.assertEqual([p["name"] for p in internal["spec"]["ports"]], ["health", "metrics"])
        self.assertEqual(internal["spec"]["selector"], public["spec"]["selector"])
        self.assertEqual(internal["metadata"]["labels"]["app.kubernetes.io/component"], "edge")
        [monitor] = m.objects("ServiceMonitor")
        scraped = [s["metadata"]["name"] for s in m.objects("Service")
                   if matches(monitor["spec"]["selector"], s["metadata"]["labels"])
                   and any(p["name"] == "metrics" for p in s["spec"]["ports"])]
        self.assertEqual(sorted(scraped), sorted(
            f"demo-policy-suite-{s}" if s != "edge" else "demo-policy-suite-edge-internal"
            for s in SERVICES))
        [rule] = m.objects("PrometheusRule")
        exprs = " ".join(r["expr"] for g in rule["spec"]["groups"] for r in g["rules"])
        self.assertIn('job="demo-policy-suite-edge-internal"', exprs)
        self.assertIn("demo-policy-suite-edge-internal|", exprs)
        [pod] = m.objects("Pod")
        self.assertIn(f"demo-policy-suite-edge-internal.{NAMESPACE}.svc:{HEALTH}",
                      pod["spec"]["containers"][0]["command"])
        self.assertNotIn("demo-policy-suite-edge-internal", variant("default").named("Service"))

    def test_production_callers_reach_the_edge_with_their_own_addresses(self):
        # The production example puts a gateway (pods of namespace `gateway`) in front of the
        # edge. The NetworkPolicy must let through whatever path the edge's Service offers, and
        # the edge must believe the addresses the gateway states for its callers: with the
        # default trusted_proxies (loopback), every Decide through the gateway that names a
        # source_ip is refused and the others are judged by the gateway's address.
        values = yaml.safe_load(PRODUCTION.read_text())
        edge_from = values["networkPolicy"]["edgeFrom"]
        service = variant("production").component("Service", "edge")["spec"]
        if service["type"] != "ClusterIP":
            self.assertEqual(service["externalTrafficPolicy"], "Local")
            blocks = {peer["ipBlock"]["cidr"] for peer in edge_from if "ipBlock" in peer}
            self.assertTrue(set(service.get("loadBalancerSourceRanges", [])) <= blocks and blocks,
                            "the edge's NetworkPolicy drops what its load balancer lets in")
        proxies = [peer for peer in edge_from if "ipBlock" not in peer]
        self.assertTrue(proxies, "the example no longer has a gateway in front of the edge")
        env = variant("production").env("edge")
        self.assertIn("POLICY_EDGE_TRUSTED_PROXIES", env,
                      "the edge behind a gateway trusts loopback only: the gateway's calls that "
                      "state a caller's address are refused")
        trusted = [e.strip() for e in env["POLICY_EDGE_TRUSTED_PROXIES"]["value"].split(",")]
        self.assertFalse(set(trusted) <= {"127.0.0.0/8", "::1", ""}, trusted)
        notes = render_raw("--notes", "-f", PRODUCTION)
        self.assertNotIn("trusted_proxies is the edge's default", notes)
        self.assertNotIn("the edge's Service is a", notes)

    def test_notes_say_what_keeps_callers_addresses_from_the_edge(self):
        notes = render_raw("--notes", "--set", "edge.service.type=LoadBalancer")
        self.assertIn("trusted_proxies is the edge's default, loopback only", notes)
        self.assertIn("externalTrafficPolicy Cluster: calls\nthrough it may arrive with a node's "
                      "address", notes)
        self.assertNotIn("admits pods only", notes)  # edgeFrom empty: anyone.
        notes = render_raw("--notes", "-f", PRODUCTION, "--set",
                           "edge.service.type=LoadBalancer,edge.service.externalTrafficPolicy=Local")
        self.assertIn("Note: the edge's Service is a LoadBalancer, but networkPolicy.edgeFrom "
                      "admits pods only", notes)
        self.assertNotIn("externalTrafficPolicy Cluster", notes)

    def test_network_policies(self):
        callers = {s: {c for c, callees in CALLS.items() if s in callees} for s in SERVICES}
        self.assertEqual(callers["keys"], {"edge", "authz"})
        for name in ("default", "production"):
            m = variant(name)
            pods = {s: m.component("Deployment", s)["spec"]["template"]["metadata"]["labels"]
                    for s in SERVICES}
            values = yaml.safe_load((CHART / "values.yaml").read_text())["networkPolicy"]
            if name == "production":
                values.update(yaml.safe_load(PRODUCTION.read_text())["networkPolicy"])
            for service in SERVICES:
                with self.subTest(variant=name, service=service):
                    policy = m.component("NetworkPolicy", service)["spec"]
                    self.assertEqual([s for s in SERVICES
                                      if matches(policy["podSelector"], pods[s])], [service])
                    self.assertEqual(set(policy["policyTypes"]), {"Ingress", "Egress"})
                    ingress = {tuple(p["port"] for p in rule["ports"]): rule.get("from")
                               for rule in policy["ingress"]}
                    self.assertEqual(set(ingress), {(GRPC,), (HEALTH,), (METRICS,)})
                    if service == "edge":
                        self.assertEqual(ingress[(GRPC,)], values["edgeFrom"] or None)
                    else:
                        allowed = {s for s in SERVICES for peer in ingress[(GRPC,)]
                                   if matches(peer["podSelector"], pods[s])}
                        self.assertEqual(allowed, callers[service])
                    self.assertEqual(ingress[(HEALTH,)], [{"podSelector": {}}])
                    self.assertEqual(ingress[(METRICS,)], values["metricsFrom"])
                    egress = [(tuple(p["port"] for p in rule["ports"]), rule.get("to"))
                              for rule in policy["egress"]]
                    expected = [((53, 53), values["dnsTo"] or None)]
                    if service in DATABASE_SERVICES:
                        expected.append(((5432,), values["databaseTo"] or None))
                    self.assertEqual([r for r in egress if r[0] != (GRPC,)], expected)
                    reached = {s for ports, to in egress if ports == (GRPC,) for peer in to
                               for s in SERVICES if matches(peer["podSelector"], pods[s])}
                    self.assertEqual(reached, set(CALLS.get(service, {})))
            migrate = m.component("NetworkPolicy", "migrate")["spec"]
            self.assertNotIn("ingress", migrate)
            self.assertEqual({tuple(p["port"] for p in r["ports"]) for r in migrate["egress"]},
                             {(53, 53), (5432,)})
            for job in m.objects("Job"):
                self.assertTrue(matches(migrate["podSelector"],
                                        job["spec"]["template"]["metadata"]["labels"]))
        self.assertEqual(render("--set", "networkPolicy.enabled=false").objects("NetworkPolicy"),
                         [])


class ScalingTest(unittest.TestCase):
    def test_autoscalers_and_disruption_budgets(self):
        default, production = variant("default"), variant("production")
        self.assertEqual(default.objects("HorizontalPodAutoscaler"), [])
        for service in SERVICES:
            with self.subTest(service=service):
                self.assertEqual(default.component("Deployment", service)["spec"]["replicas"], 2)
                deployment = production.component("Deployment", service)
                self.assertNotIn("replicas", deployment["spec"])
                hpa = production.component("HorizontalPodAutoscaler", service)
                self.assertEqual(hpa["apiVersion"], "autoscaling/v2")
                self.assertEqual(hpa["spec"]["scaleTargetRef"],
                                 {"apiVersion": "apps/v1", "kind": "Deployment",
                                  "name": deployment["metadata"]["name"]})
                self.assertGreaterEqual(hpa["spec"]["minReplicas"], 3)
                for m in (default, production):
                    pdb = m.component("PodDisruptionBudget", service)
                    self.assertEqual(pdb["spec"]["maxUnavailable"], 1)
                    # Unready pods (every pod of a service whose database is down) do not
                    # hold up node drains.
                    self.assertEqual(pdb["spec"]["unhealthyPodEvictionPolicy"], "AlwaysAllow")
                    self.assertTrue(matches(pdb["spec"]["selector"], m.component(
                        "Deployment", service)["spec"]["template"]["metadata"]["labels"]))

    def test_autoscalers_scale_on_memory_and_behave_as_asked(self):
        edge = variant("production").component("HorizontalPodAutoscaler", "edge")["spec"]
        self.assertEqual([m["resource"]["name"] for m in edge["metrics"]], ["cpu"])
        self.assertEqual(edge["behavior"]["scaleDown"]["stabilizationWindowSeconds"], 600)
        self.assertEqual(edge["behavior"]["scaleUp"]["policies"],
                         [{"type": "Percent", "value": 100, "periodSeconds": 30}])
        keys = variant("production").component("HorizontalPodAutoscaler", "keys")["spec"]
        self.assertNotIn("behavior", keys)  # {}: Kubernetes' defaults.
        m = render("-f", PRODUCTION, "--set", "keys.autoscaling.targetMemoryUtilizationPercentage=80")
        metrics = m.component("HorizontalPodAutoscaler", "keys")["spec"]["metrics"]
        self.assertEqual([(x["resource"]["name"], x["resource"]["target"]["averageUtilization"])
                          for x in metrics], [("cpu", 70), ("memory", 80)])
        with self.assertRaises(RenderError):
            render_raw("--set", "keys.autoscaling.targetMemoryUtilizationPercentage=101")

    def test_pods_spread_over_nodes_and_zones_counting_their_own_rollout(self):
        for name, expected in (
                ("default", [("kubernetes.io/hostname", "ScheduleAnyway"),
                             ("topology.kubernetes.io/zone", "ScheduleAnyway")]),
                ("production", [("topology.kubernetes.io/zone", "DoNotSchedule"),
                                ("kubernetes.io/hostname", "ScheduleAnyway")])):
            for service in SERVICES:
                with self.subTest(variant=name, service=service):
                    pod = variant(name).component("Deployment", service)["spec"]["template"]
                    constraints = pod["spec"]["topologySpreadConstraints"]
                    self.assertEqual([(c["topologyKey"], c["whenUnsatisfiable"])
                                      for c in constraints], expected)
                    for c in constraints:
                        self.assertEqual(c["maxSkew"], 1)
                        self.assertEqual(c["matchLabelKeys"], ["pod-template-hash"])
                        self.assertTrue(matches(c["labelSelector"], pod["metadata"]["labels"]))
                        # Only this service's pods count.
                        self.assertEqual(c["labelSelector"]["matchLabels"]
                                         ["app.kubernetes.io/component"], service)
        off = render("--set", "topologySpread.enabled=false").component("Deployment", "edge")
        self.assertNotIn("topologySpreadConstraints", off["spec"]["template"]["spec"])
        with self.assertRaises(RenderError):
            render_raw("--set", "topologySpread.constraints[0].whenUnsatisfiable=Never")

    def test_an_autoscaler_needs_min_replicas_at_most_max(self):
        # Kubernetes would refuse the HorizontalPodAutoscaler in the middle of the install,
        # after the pre-install migrations ran: the chart refuses it before anything is applied.
        with self.assertRaises(RenderError) as caught:
            render_raw("--set", "edge.autoscaling.enabled=true,edge.autoscaling.minReplicas=12")
        self.assertIn("edge.autoscaling.minReplicas (12) must be at most "
                      "edge.autoscaling.maxReplicas (10)", str(caught.exception))
        render_raw("--set", "edge.autoscaling.enabled=true,edge.autoscaling.minReplicas=10")
        render_raw("--set", "edge.autoscaling.minReplicas=12")  # No autoscaler: no matter.
        render_raw("--set", "store=memory,keys.autoscaling.enabled=true,"
                   "keys.autoscaling.minReplicas=12")  # Never autoscaled on the memory store.

    def test_memory_store_keeps_one_replica_of_the_database_services(self):
        m = variant("memory")
        for service in DATABASE_SERVICES:
            self.assertEqual(m.component("Deployment", service)["spec"]["replicas"], 1)
        self.assertEqual({h["metadata"]["labels"]["app.kubernetes.io/component"]
                          for h in m.objects("HorizontalPodAutoscaler")}, {"pii"})
        self.assertEqual(m.objects("Job"), [])


class TlsTest(unittest.TestCase):
    def test_without_tls_nothing_is_mounted(self):
        m = variant("default")
        for service in SERVICES:
            self.assertFalse([v for v in m.env(service) if "_TLS_" in v])
            volumes = m.component("Deployment", service)["spec"]["template"]["spec"]["volumes"]
            self.assertNotIn("tls", {v["name"] for v in volumes})

    def test_with_tls_every_service_mounts_its_certificate(self):
        for name, default_secret in (("tls", "demo-policy-suite-tls"),
                                     ("production", "policy-suite-tls")):
            m = variant(name)
            for service in SERVICES:
                with self.subTest(variant=name, service=service):
                    p = f"POLICY_{service.upper()}_"
                    env = m.env(service)
                    self.assertEqual(env[p + "TLS_CERT_FILE"]["value"],
                                     "/etc/policy-suite/tls/tls.crt")
                    self.assertEqual(env[p + "TLS_KEY_FILE"]["value"],
                                     "/etc/policy-suite/tls/tls.key")
                    self.assertEqual(env[p + "TLS_CA_FILE"]["value"],
                                     "/etc/policy-suite/tls/ca.crt")
                    self.assertEqual(env[p + "TLS_REQUIRE_CLIENT_CERT"]["value"],
                                     "false" if service == "edge" else "true")
                    pod = m.component("Deployment", service)["spec"]["template"]["spec"]
                    mount = {v["name"]: v for v in pod["containers"][0]["volumeMounts"]}["tls"]
                    # The directory, never subPath: only then do rotated files show up.
                    self.assertEqual(mount, {"name": "tls", "mountPath": "/etc/policy-suite/tls",
                                             "readOnly": True})
                    volume = {v["name"]: v for v in pod["volumes"]}["tls"]
                    expected = "keys-cert" if (name, service) == ("tls", "keys") \
                        else default_secret
                    self.assertEqual(volume["secret"]["secretName"], expected)
            for job in m.objects("Job"):
                env = env_map(job["spec"]["template"]["spec"]["containers"][0])
                self.assertFalse([v for v in env if "_TLS_" in v])


    def test_restricted_services_admit_only_their_callers_certificates(self):
        m = variant("tls")
        callers = {s: {c for c, callees in CALLS.items() if s in callees} for s in SERVICES}
        for service in SERVICES:
            with self.subTest(service=service):
                allowed = m.env(service).get(f"POLICY_{service.upper()}_TLS_ALLOWED_CLIENTS")
                if service == "edge":  # Outside callers present no certificate.
                    self.assertIsNone(allowed)
                    continue
                self.assertEqual(set(allowed["value"].split(",")),
                                 {f"demo-policy-suite-{c}.{NAMESPACE}.svc"
                                  for c in callers[service]})
        for service in SERVICES:  # Off unless asked for.
            self.assertNotIn(f"POLICY_{service.upper()}_TLS_ALLOWED_CLIENTS",
                             variant("production").env(service))


class MonitoringTest(unittest.TestCase):
    def test_service_monitor_only_when_enabled(self):
        self.assertEqual(variant("default").objects("ServiceMonitor"), [])
        m = variant("production")
        [monitor] = m.objects("ServiceMonitor")
        self.assertEqual(monitor["metadata"]["labels"]["release"], "kube-prometheus-stack")
        self.assertEqual(monitor["spec"]["endpoints"][0]["port"], "metrics")
        selected = [s for s in m.objects("Service")
                    if matches(monitor["spec"]["selector"], s["metadata"]["labels"])]
        self.assertEqual(len(selected), len(SERVICES))
        for service in selected:
            self.assertIn({"name": "metrics", "port": METRICS, "targetPort": "metrics",
                           "protocol": "TCP"}, service["spec"]["ports"])


    def test_alerts_pass_promtool_and_fire_on_what_they_watch(self):
        self.assertEqual(variant("default").objects("PrometheusRule"), [])
        # The cases' edge is scraped as job demo-policy-suite-edge: a ClusterIP edge.
        [rule] = render("--set", "metrics.prometheusRule.enabled=true,"
                                 "metrics.serviceMonitor.enabled=true").objects("PrometheusRule")
        # Without the chart's ServiceMonitor (a scrape configuration of one's own), no alert
        # says that it is not selected.
        [own] = render("--set", "metrics.prometheusRule.enabled=true").objects("PrometheusRule")
        self.assertNotIn("PolicySuiteNotScraped",
                         [r["alert"] for g in own["spec"]["groups"] for r in g["rules"]])
        promtool = "/usr/bin/promtool"
        self.assertTrue(os.access(promtool, os.X_OK), "promtool (Debian's prometheus) missing")
        with tempfile.TemporaryDirectory(dir=WORK) as directory:
            rules = Path(directory) / "rules.yaml"
            rules.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
            checked = _run([promtool, "check", "rules", str(rules)], timeout=60)
            self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)
            self.assertIn("SUCCESS: 20 rules found", checked.stdout)
            # The cases were written for release "demo" in namespace "policy", as rendered here.
            cases = Path(directory) / "alerts_test.yaml"
            cases.write_text((Path(__file__).parent / "alerts_test.yaml").read_text()
                             .replace("RULES_FILE", str(rules)))
            tested = _run([promtool, "test", "rules", str(cases)], timeout=60)
            self.assertEqual(tested.returncode, 0, tested.stdout + tested.stderr)

    def test_production_scrapes_and_alerts(self):
        # The production starting point has the suite's alerts, selected by the Prometheus
        # that scrapes it.
        m = variant("production")
        [monitor] = m.objects("ServiceMonitor")
        [rule] = m.objects("PrometheusRule")
        self.assertEqual(rule["metadata"]["labels"]["release"],
                         monitor["metadata"]["labels"]["release"])
        self.assertIn("kube-prometheus-stack", PRODUCTION.read_text().split("fullnameOverride")[0])

    def test_alerts_watch_metrics_the_services_export(self):
        # Each metric an alert reads is registered by the C++ sources (services/, common/; not
        # their tests): a renamed metric would leave its alert silent for ever.
        [rule] = variant("tls").objects("PrometheusRule")
        exprs = " ".join(r["expr"] for g in rule["spec"]["groups"] for r in g["rules"])
        names = set()
        for m in re.finditer(r"\b((?:policy|grpc)_[a-z_]*(?:\([a-z_|]+\)[a-z_]*)*)", exprs):
            pattern = m.group(1)
            alternatives = [""]
            for part in re.split(r"(\([a-z_|]+\))", pattern):
                choices = part[1:-1].split("|") if part.startswith("(") else [part]
                alternatives = [a + c for a in alternatives for c in choices]
            names.update(alternatives)
        names = {n for n in names if not n.endswith("_") and n != "grpc_code"}
        self.assertIn("policy_edge_denial_budget_refusals_total", names)
        self.assertIn("policy_region_audit_outbox_failed", names)
        sources = "\n".join(p.read_text() for d in ("services", "common")
                             for p in (REPO_ROOT / d).rglob("*.cc")
                             if not p.name.endswith(("_test.cc", "_fuzzer.cc")))
        for name in sorted(names - {"up"}):
            with self.subTest(metric=name):
                if f'"{name}"' in sources:
                    continue
                # grpc_server_<what>, built as StrCat("grpc_", side, "_<what>") by the metrics
                # every server runner has; policy_<svc>_<what> as StrCat("policy_", service,
                # "_<what>"), with the service's name given where it is built.
                m = re.fullmatch(r"(policy|grpc)_([a-z]+)(_[a-z_]+)", name)
                self.assertIsNotNone(m, f"{name} is registered nowhere")
                prefix, part, rest = m.groups()
                variable = "side" if prefix == "grpc" else "service"
                self.assertTrue(f'"{prefix}_", {variable}, "{rest}"' in sources,
                                f"{name} is registered nowhere")
                if prefix == "grpc":
                    self.assertEqual(part, "server")
                    self.assertIn("metrics::GrpcServerMetrics grpc_metrics_;",
                                  (REPO_ROOT / "common/server/server_runner.h").read_text())
                else:
                    main = (REPO_ROOT / "services" / part / "main.cc").read_text()
                    self.assertIn(f'"{part}"', main, f"{part} never names its {name}")

    def test_every_alert_is_documented_and_has_promtool_cases(self):
        [rule] = variant("tls").objects("PrometheusRule")
        alerts = {(r["alert"], r["labels"]["severity"]) for g in rule["spec"]["groups"]
                  for r in g["rules"] if "alert" in r}
        readme = (CHART / "README.md").read_text()
        documented = set(re.findall(r"(?m)^\| `(PolicySuite\w+)` \| (\w+) \|", readme))
        self.assertEqual(documented, alerts, "README.md's alert table and the PrometheusRule")
        cases = yaml.safe_load((Path(__file__).parent / "alerts_test.yaml").read_text())
        for name, _ in alerts:
            with self.subTest(alert=name):
                evaluations = [t for case in cases["tests"] for t in case["alert_rule_test"]
                               if t["alertname"] == name]
                self.assertTrue(any(t["exp_alerts"] for t in evaluations),
                                "no promtool case shows it firing")


class MigrationTest(unittest.TestCase):
    def test_a_hook_job_migrates_each_database_service_before_the_services(self):
        m = variant("default")
        jobs = m.named("Job")
        self.assertEqual(set(jobs), {f"demo-policy-suite-{s}-migrate" for s in DATABASE_SERVICES})
        for service in DATABASE_SERVICES:
            with self.subTest(service=service):
                job = jobs[f"demo-policy-suite-{service}-migrate"]
                annotations = job["metadata"]["annotations"]
                self.assertEqual(annotations["helm.sh/hook"], "pre-install,pre-upgrade")
                self.assertEqual(annotations["helm.sh/hook-delete-policy"], "before-hook-creation")
                pod = job["spec"]["template"]["spec"]
                self.assertEqual(pod["restartPolicy"], "Never")
                container = pod["containers"][0]
                self.assertEqual(container["command"], [service, "--migrate_only"])
                self.assertEqual(container["image"], m.container(service)["image"])
                env, served = env_map(container), m.env(service)
                # The service's own database and secrets; no ports, peers or certificates.
                for var, entry in env.items():
                    self.assertEqual(entry, served[var])
                self.assertIn(f"POLICY_{service.upper()}_DATABASE_URL", env)
                self.assertNotIn(f"POLICY_{service.upper()}_LISTEN", env)
        # Plain resources first, then the hooks: the order `helm template` prints and the
        # order Helm applies (pre-install hooks run before anything else is created).
        kinds = [o["kind"] for _, o in m.docs]
        first_hook = min(i for i, (_, o) in enumerate(m.docs)
                         if "helm.sh/hook" in o["metadata"].get("annotations", {}))
        self.assertNotIn("Job", kinds[:first_hook])
        self.assertEqual(variant("no-migration-jobs").objects("Job"), [])

    def test_the_jobs_network_policy_exists_before_they_run(self):
        # In a namespace whose policies deny egress by default, the Jobs reach PostgreSQL only
        # through their own NetworkPolicy: on the first install it must exist before the
        # pre-install Jobs run, so it is a hook of the same events with a lower weight.
        for name in ("default", "production"):
            m = variant(name)
            policy = m.component("NetworkPolicy", "migrate")
            annotations = policy["metadata"]["annotations"]
            for job in m.objects("Job"):
                with self.subTest(variant=name, job=job["metadata"]["name"]):
                    job_annotations = job["metadata"]["annotations"]
                    self.assertEqual(annotations["helm.sh/hook"], job_annotations["helm.sh/hook"])
                    self.assertLess(int(annotations["helm.sh/hook-weight"]),
                                    int(job_annotations["helm.sh/hook-weight"]))
                    self.assertEqual(annotations["helm.sh/hook-delete-policy"],
                                     "before-hook-creation")
        # The services' own policies stay release objects.
        for service in SERVICES:
            self.assertNotIn("annotations",
                             variant("default").component("NetworkPolicy", service)["metadata"])

    def test_audits_job_gets_no_key(self):
        """audit --migrate_only needs neither the signing key nor the subject key: its Job is
        given no Secret but the database password."""
        for name in ("default", "production"):
            with self.subTest(variant=name):
                m = variant(name)
                job = self.job_env(m, "audit")
                self.assertIn("POLICY_AUDIT_DATABASE_URL", job)
                self.assertNotIn("POLICY_AUDIT_SIGNING_KEY", job)
                self.assertNotIn("POLICY_AUDIT_SUBJECT_KEY", job)
                refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in job.values()
                        if "secretKeyRef" in e.get("valueFrom", {})}
                self.assertEqual(refs, {job["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"]})
                self.assertNotIn(fullname(name) + "-audit", refs)
                # The service itself still reads both.
                served = m.env("audit")
                self.assertIn("POLICY_AUDIT_SIGNING_KEY", served)
                self.assertIn("POLICY_AUDIT_SUBJECT_KEY", served)

    def job_env(self, m, service):
        job = m.named("Job")[f"{m.component('Deployment', service)['metadata']['name']}-migrate"]
        return env_map(job["spec"]["template"]["spec"]["containers"][0])

    def test_migrations_may_run_as_another_role_than_the_services(self):
        # The owner migrates; keys, authz and audit serve as roles of their own (members of
        # policy_<svc>_runtime), region as the shared `database.user`.
        m = render("--set", "migrations.database.user=policy_owner,"
                   "migrations.database.existingSecret=pg-owner,migrations.database.passwordKey=pw,"
                   "keys.database.user=policy_keys,keys.database.existingSecret=pg-keys,"
                   "authz.database.user=policy_authz,authz.database.existingSecret=pg-authz,"
                   "audit.database.user=policy_audit,audit.database.existingSecret=pg-audit,"
                   "database.caSecret=pg-ca")
        for service in DATABASE_SERVICES:
            with self.subTest(service=service):
                url = f"POLICY_{service.upper()}_DATABASE_URL"
                job, served = self.job_env(m, service), m.env(service)
                self.assertEqual(job[url]["value"],
                                 "postgresql://policy_owner@postgresql:5432/policy?sslmode=require")
                self.assertEqual(job["PGPASSWORD"]["valueFrom"],
                                 {"secretKeyRef": {"name": "pg-owner", "key": "pw"}})
                user, secret = ((f"policy_{service}", f"pg-{service}") if service != "region" else
                                ("policy", "demo-policy-suite-database"))
                self.assertEqual(served[url]["value"],
                                 f"postgresql://{user}@postgresql:5432/policy?sslmode=require")
                self.assertEqual(served["PGPASSWORD"]["valueFrom"],
                                 {"secretKeyRef": {"name": secret, "key": "password"}})
                # Everything else as the service's: the server's CA, its secrets.
                for var, entry in job.items():
                    if var not in (url, "PGPASSWORD"):
                        self.assertEqual(entry, served[var])
                self.assertEqual(job["PGSSLROOTCERT"]["value"],
                                 "/etc/policy-suite/database/ca.crt")
        notes = render_raw("--notes", "--set", "migrations.database.user=policy_owner,"
                           "migrations.database.existingSecret=pg-owner")
        self.assertIn("pg-owner: key password (password of the PostgreSQL role policy_owner, "
                      "the migration Jobs')", notes)
        # The production example: the owner migrates, each service serves as policy_<svc>.
        prod = variant("production")
        for service in DATABASE_SERVICES:
            with self.subTest(example="production", service=service):
                url = f"POLICY_{service.upper()}_DATABASE_URL"
                self.assertEqual(
                    self.job_env(prod, service)[url]["value"],
                    "postgresql://policy@db.internal.example.com:5432/policy?sslmode=verify-full")
                self.assertEqual(self.job_env(prod, service)["PGPASSWORD"]["valueFrom"],
                                 {"secretKeyRef": {"name": "policy-suite-database",
                                                   "key": "password"}})
                self.assertEqual(
                    prod.env(service)[url]["value"],
                    f"postgresql://policy_{service}@db.internal.example.com:5432/policy"
                    "?sslmode=verify-full")
                self.assertEqual(prod.env(service)["PGPASSWORD"]["valueFrom"],
                                 {"secretKeyRef": {"name": f"policy-suite-database-{service}",
                                                   "key": "password"}})

    def test_notes_name_the_services_that_log_in_as_the_migrating_owner(self):
        # region and audit log in as the role the Jobs migrate as, keys and authz as their own.
        notes = render_raw("--notes", "--set", "migrations.database.user=policy,"
                           "migrations.database.existingSecret=pg-owner,"
                           "keys.database.user=policy_keys,authz.database.user=policy_authz")
        for service in ("region", "audit"):
            self.assertIn(f"Note: {service} logs in as policy, the role that runs the migrations "
                          "and owns its\ntables", notes)
            self.assertIn(f"a member of\npolicy_{service}_runtime ({service}.database;", notes)
        for service in ("keys", "authz"):
            self.assertNotIn(f"Note: {service} logs in as", notes)
        for values in (("-f", PRODUCTION), ()):  # Every role its own; no migration role.
            self.assertNotIn("the role that runs the migrations", render_raw("--notes", *values))

    def test_notes_count_the_postgresql_connections(self):
        # Pools (database_pool_size, 8) per pod and a LISTEN session per keys and authz pod, at
        # the most pods (maxReplicas when autoscaled): what PostgreSQL's max_connections must
        # allow, or pods that scale out cannot connect.
        self.assertIn("PostgreSQL connections: up to 68 from the services",
                      render_raw("--notes"))  # 2 x (8 + 1) x 2 + 2 x 8 x 2
        # keys 9 x (16 + 1), authz 9 x (16 + 1), region 6 x 8, audit 6 x 16.
        self.assertIn("PostgreSQL connections: up to 450 from the services",
                      render_raw("--notes", "-f", PRODUCTION))
        self.assertIn("max_connections at least 500", PRODUCTION.read_text())
        self.assertIn("PostgreSQL connections: up to 72 from the services", render_raw(
            "--notes", "--set", "audit.config.database_pool_size=10"))
        self.assertNotIn("PostgreSQL connections", render_raw("--notes", "--set", "store=memory"))

    def test_notes_say_when_every_service_owns_its_tables(self):
        # The default values: each Job migrates as its service, so each service logs in as the
        # owner of its tables (and audit could rewrite its ledger). The operator is told.
        for values in ((), ("--set", "migrations.enabled=false")):
            with self.subTest(values=values):
                notes = render_raw("--notes", *values)
                self.assertIn("Note: these services log in as the role that applies their "
                              "migrations", notes)
                self.assertIn("audit (as policy), authz (as policy), keys (as policy), "
                              "region (as policy).", notes)
        notes = render_raw("--notes", "--set", "keys.database.user=policy_keys")
        self.assertIn("keys (as policy_keys)", notes)
        for values in (("-f", PRODUCTION), ("--set", "store=memory")):
            with self.subTest(values=values):
                self.assertNotIn("these services log in as", render_raw("--notes", *values))

    def test_by_default_each_job_migrates_as_its_service(self):
        m = render("--set", "audit.database.user=policy_audit,audit.database.existingSecret=pg-audit")
        for service in DATABASE_SERVICES:
            with self.subTest(service=service):
                job, served = self.job_env(m, service), m.env(service)
                for var in (f"POLICY_{service.upper()}_DATABASE_URL", "PGPASSWORD"):
                    self.assertEqual(job[var], served[var])
        self.assertEqual(self.job_env(m, "audit")["POLICY_AUDIT_DATABASE_URL"]["value"],
                         "postgresql://policy_audit@postgresql:5432/policy?sslmode=require")

    def test_a_migration_role_needs_its_secret_and_the_jobs(self):
        def refused(settings, message):
            with self.assertRaises(RenderError) as caught:
                render_raw("--set", settings)
            self.assertIn(message, str(caught.exception))
        refused("migrations.database.user=policy_owner",
                "migrations.database.user (policy_owner) needs migrations.database.existingSecret")
        refused("migrations.database.existingSecret=pg-owner",
                "migrations.database.existingSecret (pg-owner) is set without "
                "migrations.database.user")
        refused("migrations.database.user=policy_owner,migrations.database.existingSecret=pg-owner,"
                "migrations.enabled=false",
                "migrations.database.user (policy_owner) is set with migrations.enabled=false")
        # The store=memory trial of production values has no database at all.
        render_raw("--set", "migrations.database.user=policy_owner,"
                   "migrations.database.existingSecret=pg-owner,migrations.enabled=false,"
                   "store=memory")
        with self.assertRaises(RenderError) as caught:
            render_raw("--set", "migrations.database.user=policy:owner")
        self.assertIn("values don't meet the specifications of the schema", str(caught.exception))

    def test_helm_waits_for_the_migrations_longer_than_they_may_run(self):
        # Helm waits for hooks only --timeout (5m by default): a Job allowed 10 or 15 minutes
        # would fail the release while it still migrates. Every install in README.md says how
        # long to wait, and it is longer than the Job's deadline of the values it uses.
        readme = (CHART / "README.md").read_text()
        commands = re.findall(r"helm install policy-suite [^\n`]*(?:\\\n[^\n`]*)*", readme)
        self.assertEqual(len(commands), 2, commands)
        deadline = {
            "default": yaml.safe_load((CHART / "values.yaml").read_text())["migrations"][
                "activeDeadlineSeconds"],
            "production": yaml.safe_load(PRODUCTION.read_text())["migrations"][
                "activeDeadlineSeconds"]}
        for command in commands:
            with self.subTest(command=command):
                timeout = re.search(r"--timeout[ =](\d+)m\b", command)
                self.assertIsNotNone(timeout, "Helm's default --timeout is 5m")
                values = "production" if "-f my-values.yaml" in command else "default"
                self.assertGreater(int(timeout.group(1)) * 60, deadline[values])
        self.assertIn("`--timeout` (`helm install` and `helm upgrade` alike)", readme)

    def test_the_secrets_the_readme_makes_are_those_its_install_reads(self):
        # An operator copies the Secret snippet and then the install: every Secret the
        # rendered release reads must be one the snippet created.
        readme = (CHART / "README.md").read_text()
        releases = set(re.findall(r"helm (?:install|template) (\S+) deploy/helm/policy-suite -n (\S+)",
                                  readme))
        self.assertEqual(len(releases), 1, releases)  # Every command installs the same release.
        release = re.search(r"helm install (\S+) deploy/helm/policy-suite -n (\S+)", readme)
        prefix = re.search(r"^NS=(\S+); P=(\S+)", readme, flags=re.M)
        self.assertEqual(prefix.group(1), release.group(2))
        made = {m.replace("$P", prefix.group(2))
                for m in re.findall(r"create secret generic (\$P-\w+)", readme)}
        manifests = Manifests(render_raw(
            "--name", release.group(1), "--namespace", release.group(2), "--set",
            "image.repository=registry.internal.example.com/platform/policy-suite,"
            "database.host=db.internal.example.com"))
        read = set()
        for _, spec in manifests.pod_specs():
            for container in spec.get("containers", []) + spec.get("initContainers", []):
                for e in container.get("env", []):
                    ref = e.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        read.add(ref["name"])
        self.assertTrue(read, "the release reads no Secret")
        self.assertLessEqual(read - made, set(), (read, made))

    def test_the_choice_is_explained(self):
        template = (CHART / "templates" / "job-migrate.yaml").read_text()
        readme = (CHART / "README.md").read_text()
        for text in (template, readme):
            self.assertIn("init container", text)
            self.assertIn("kubectl apply", text)
            self.assertIn("Argo CD", text)


class HelmTestPodTest(unittest.TestCase):
    def test_the_test_pod_checks_every_service_health(self):
        for name in ("default", "production"):
            m = variant(name)
            [pod] = m.objects("Pod")
            self.assertEqual(pod["metadata"]["annotations"]["helm.sh/hook"], "test")
            self.assertEqual(pod["spec"]["restartPolicy"], "Never")
            [container] = pod["spec"]["containers"]
            command = container["command"]
            self.assertEqual(command[:2], ["policyctl", "health"])
            targets = [a for a in command[2:] if not a.startswith("--")]
            services = m.named("Service")
            checked = set()
            for target in targets:
                host, port = target.rsplit(":", 1)
                svc_name, ns, _ = host.split(".")
                self.assertEqual(ns, NAMESPACE)
                service = services[svc_name]
                self.assertIn({"name": "health", "port": int(port), "targetPort": "health",
                               "protocol": "TCP"}, service["spec"]["ports"])
                checked.add(service["metadata"]["labels"]["app.kubernetes.io/component"])
            self.assertEqual(checked, set(SERVICES))
            self.assertEqual(container["image"], m.container("edge")["image"])
        self.assertEqual(render("--skip-tests").objects("Pod"), [])

    def test_the_test_pod_may_reach_the_health_ports_under_default_deny(self):
        # A namespace whose policies deny egress by default would fail every `helm test`: the
        # pod gets its own policy (a test hook before it) letting it out to DNS and to the
        # health port of this release's pods, and to nothing else.
        for name in ("default", "production"):
            m = variant(name)
            [pod] = m.objects("Pod")
            [policy] = [p for p in m.objects("NetworkPolicy")
                        if matches(p["spec"]["podSelector"], pod["metadata"]["labels"])]
            annotations = policy["metadata"]["annotations"]
            self.assertEqual(annotations["helm.sh/hook"], "test")
            self.assertLess(int(annotations["helm.sh/hook-weight"]),
                            int(pod["metadata"]["annotations"].get("helm.sh/hook-weight", 0)))
            egress = {tuple(p["port"] for p in rule["ports"]): rule.get("to")
                      for rule in policy["spec"]["egress"]}
            values = yaml.safe_load((CHART / "values.yaml").read_text())["networkPolicy"]
            if name == "production":
                values.update(yaml.safe_load(PRODUCTION.read_text())["networkPolicy"])
            self.assertEqual(egress[(53, 53)], values["dnsTo"] or None)
            [peer] = egress[(HEALTH,)]
            reached = {s for s in SERVICES if matches(peer["podSelector"], m.component(
                "Deployment", s)["spec"]["template"]["metadata"]["labels"])}
            self.assertEqual(reached, set(SERVICES))
            self.assertEqual(set(egress), {(53, 53), (HEALTH,)})
            self.assertNotIn("ingress", policy["spec"])
        self.assertEqual([p for p in render("--skip-tests").objects("NetworkPolicy")
                          if p["metadata"]["labels"]["app.kubernetes.io/component"] == "test"],
                         [])
        self.assertEqual(render("--set", "networkPolicy.enabled=false").objects("NetworkPolicy"),
                         [])


class LabelsAndNotesTest(unittest.TestCase):
    def test_recommended_labels_on_every_object(self):
        for name in VARIANTS:
            for source, o in variant(name).docs:
                with self.subTest(variant=name, object=f"{o['kind']} {o['metadata']['name']}"):
                    labels = o["metadata"]["labels"]
                    for key in ("name", "instance", "version", "component", "part-of",
                                "managed-by"):
                        self.assertTrue(labels.get(f"app.kubernetes.io/{key}"), key)
                    self.assertEqual(labels["app.kubernetes.io/managed-by"], "Helm")
                    self.assertEqual(o["metadata"]["namespace"], NAMESPACE)

    def test_a_new_chart_version_alone_rolls_no_pod(self):
        # Pods carry the recommended labels but the chart's version, whose change would
        # otherwise replace every pod on an upgrade that changes nothing of them.
        for service in SERVICES:
            deployment = variant("default").component("Deployment", service)
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            self.assertNotIn("helm.sh/chart", labels, service)
            self.assertIn("helm.sh/chart", deployment["metadata"]["labels"], service)
            self.assertEqual({k: v for k, v in deployment["metadata"]["labels"].items()
                              if k != "helm.sh/chart"}, labels)

    def test_notes(self):
        notes = render_raw("--notes", "--name", "demo", "--namespace", NAMESPACE)
        self.assertIn("helm test demo -n policy", notes)
        self.assertIn("demo-policy-suite-keys: key pepper", notes)
        self.assertIn("demo-policy-suite-database: key password", notes)
        production = render_raw("--notes", "-f", PRODUCTION)
        self.assertIn("policy-suite-tls: tls.crt, tls.key, ca.crt", production)
        self.assertIn("store=memory", render_raw("--notes", "--set", "store=memory"))


class ValuesSchemaTest(unittest.TestCase):
    def assertRefused(self, *args, message):
        with self.assertRaises(RenderError) as caught:
            render_raw(*args)
        self.assertIn("values don't meet the specifications of the schema", str(caught.exception))
        self.assertIn(message, str(caught.exception))

    def test_bad_values_are_refused(self):
        self.assertRefused("--set", "keys.replicas=-1", message="keys.replicas")
        self.assertRefused("--set", "replicaCount=3", message="replicaCount")
        self.assertRefused("--set", "edge.config.listen=0.0.0.0:1", message="listen")
        self.assertRefused("--set", "keys.config.sweep_interval=5 minutes",
                           message="sweep_interval")
        self.assertRefused("--set", "store=sqlite", message="store")
        self.assertRefused("--set", "database.host=null", message="host")
        self.assertRefused("--set", "database.user=policy:secret", message="database.user")
        self.assertRefused("--set-string", "database.name=policy/other", message="database.name")
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=WORK) as f:
            yaml.safe_dump({"keys": {"extraEnv": [{"name": "POLICY_KEYS_PEPPER",
                                                   "value": "plain text"}]}}, f)
            f.flush()
            self.assertRefused("-f", f.name, message="extraEnv")

    def test_good_values_pass(self):
        render_raw("--set", "keys.replicas=3,edge.config.redaction_operator=mask,"
                   "keys.config.sweep_interval=1h30m,audit.podDisruptionBudget.maxUnavailable=50%")


class ValuesFileTest(unittest.TestCase):
    KEY = re.compile(r"^(\s*)([A-Za-z_][\w.-]*):(\s|$)")

    def uncommented_keys(self, text):
        """The keys of `text` (a values file) with neither a comment line right above them nor
        one at the end of their own line."""
        lines = text.splitlines()
        bare = []
        for i, line in enumerate(lines):
            if not self.KEY.match(line) or "#" in line.split(":", 1)[1]:
                continue
            above = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            if not above.strip().startswith("#"):
                bare.append(line.strip())
        return bare

    def test_every_value_has_a_comment(self):
        self.assertEqual(self.uncommented_keys((CHART / "values.yaml").read_text()), [])
        # The check itself: a key without a comment is found.
        self.assertEqual(self.uncommented_keys("# a\na: 1\nb:\n  # c\n  c: 2\n"), ["b:"])


class RendererTest(unittest.TestCase):
    """tools/chart_render behaves as `helm template` on a chart made for the purpose."""

    def setUp(self):
        self.chart = Path(tempfile.mkdtemp(dir=WORK))
        self.addCleanup(shutil.rmtree, self.chart)
        files = {
            "Chart.yaml": "apiVersion: v2\nname: probe\nversion: 1.2.3\nappVersion: '9.9'\n",
            "values.yaml": "a: {b: 1, c: keep, d: drop}\nname: base\nitems: [x]\n"
                           "text: '{{ .Values.name }}-tpl'\n",
            "values.schema.json": json.dumps({"type": "object", "properties": {
                "name": {"type": "string", "maxLength": 10}}}),
            "templates/_defs.tpl": '{{- define "probe.label" -}}L-{{ . }}{{- end }}\n',
            "templates/b.yaml": textwrap.dedent("""\
                apiVersion: apps/v1
                kind: Deployment
                metadata:
                  name: {{ .Release.Name }}-{{ .Chart.Name }}
                  annotations: {t: {{ include "probe.label" .Chart.AppVersion | quote }}}
                data: {{ toJson .Values.a }}
                tpl: {{ tpl .Values.text . }}
                ns: {{ .Release.Namespace }}-{{ .Release.Service }}-{{ .Values.missing }}
                items: {{ .Values.items | toYaml | nindent 2 }}
                ---
                apiVersion: v1
                kind: Service
                metadata: {name: svc}
                """),
            "templates/a.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: t\n"
                                "  annotations: {helm.sh/hook: test}\n",
            "templates/NOTES.txt": "notes for {{ .Release.Name }}\n",
        }
        for path, text in files.items():
            (self.chart / path).parent.mkdir(parents=True, exist_ok=True)
            (self.chart / path).write_text(text)

    def rendered(self, *args):
        return Manifests(render_raw(*args, chart=self.chart))

    def test_values_files_and_set(self):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=WORK) as f1, \
                tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=WORK) as f2:
            f1.write("a: {b: 2, d: null}\nname: first\n")
            f2.write("name: second\n")
            f1.flush(), f2.flush()
            m = self.rendered("-f", f1.name, "-f", f2.name, "--set", "a.e=true,items={p,7}",
                              "--name", "rel", "--namespace", "ns")
        d = m.named("Deployment")["rel-probe"]
        self.assertEqual(d["metadata"]["annotations"], {"t": "L-9.9"})
        self.assertEqual(d["data"], {"b": 2, "c": "keep", "e": True})
        self.assertEqual(d["tpl"], "second-tpl")
        self.assertEqual(d["ns"], "ns-Helm-")
        self.assertEqual(d["items"], ["p", 7])
        # Install order by kind, hooks (the test pod) last.
        self.assertEqual([o["kind"] for _, o in m.docs], ["Service", "Deployment", "Pod"])
        self.assertEqual(self.rendered("--skip-tests").objects("Pod"), [])
        self.assertEqual(render_raw("--notes", "--name", "x", chart=self.chart), "notes for x\n")

    def test_errors(self):
        with self.assertRaisesRegex(RenderError, "name: String length must be less"):
            render_raw("--set", "name=much-too-long", chart=self.chart)
        (self.chart / "templates" / "c.yaml").write_text('{{ required "c needs x" .Values.x }}')
        with self.assertRaisesRegex(RenderError, "c needs x"):
            render_raw(chart=self.chart)
        (self.chart / "templates" / "c.yaml").write_text(
            '{{ lookup "v1" "Secret" "ns" "n" }}')
        with self.assertRaisesRegex(RenderError, "lookup is not supported"):
            render_raw(chart=self.chart)
        (self.chart / "templates" / "c.yaml").write_text("kind: [\n")
        with self.assertRaisesRegex(RenderError, "YAML parse error on probe/templates/c.yaml"):
            render_raw(chart=self.chart)


if __name__ == "__main__":
    unittest.main()
